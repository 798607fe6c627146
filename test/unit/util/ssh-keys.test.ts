/**
 * ed25519KeyPair(): every key is well-formed. ssh2's own generator makes one key in 256 with a
 * 31-byte public key (it strips a leading zero byte of the key itself); ssh2 then drops such a key
 * from an agent's answer and sshd may refuse it as a host key. Over 2000 keys the raw generator
 * gives a short one with probability 1 - (255/256)^2000 > 0.9996, so this test fails without the
 * redraw.
 */
import { describe, expect, it } from 'vitest';
import { ed25519KeyPair } from '../../../src/util/ssh-keys.ts';

const blobLength = (publicLine: string) => Buffer.from(publicLine.split(' ')[1]!, 'base64').length;

describe('ed25519KeyPair', () => {
  it('2000 keys in a row all carry a 32-byte public key (51-byte blob)', () => {
    const lengths = new Set<number>();
    for (let i = 0; i < 2000; i++) lengths.add(blobLength(ed25519KeyPair().public));
    expect([...lengths]).toEqual([51]);
  });

  it('keeps the comment and makes a private key OpenSSH can read', () => {
    const pair = ed25519KeyPair({ comment: 'root@web-01' });
    expect(pair.public).toMatch(/^ssh-ed25519 \S+ root@web-01$/);
    expect(pair.private).toContain('-----BEGIN OPENSSH PRIVATE KEY-----');
  });
});
