import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { parseFileState } from '../../../src/modules/lib/file-state.js';

describe('file probe output', () => {
  it('content instead of a checksum: the checksum is computed from the bytes read', () => {
    const text = 'hello\nwörld\n';
    const s = parseFileState({ code: 0, stdout: `file 644 root root ${Buffer.byteLength(text)} -\n${Buffer.from(text).toString('base64')}` });
    expect(s).toMatchObject({ type: 'file', mode: '644', owner: 'root', group: 'root', content: Buffer.from(text) });
    expect(s.sha256).toBe(createHash('sha256').update(text).digest('hex'));
  });
  it('an empty file has the checksum of nothing', () => {
    const s = parseFileState({ code: 0, stdout: 'file 600 root root 0 -\n' });
    expect(s.content).toEqual(Buffer.alloc(0));
    expect(s.sha256).toBe(createHash('sha256').digest('hex'));
  });
  it('a checksum without content (big files, attribute reads) is kept as read', () => {
    const s = parseFileState({ code: 0, stdout: `file 644 root root 999999 ${'a'.repeat(64)}` });
    expect(s.sha256).toBe('a'.repeat(64));
    expect(s.content).toBeUndefined();
  });
});
