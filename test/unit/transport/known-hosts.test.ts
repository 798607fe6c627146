/**
 * known_hosts matching, row by row against OpenSSH: every row of the table is written to a file and
 * looked up both by our code and by `ssh-keygen -l -F NAME -f FILE`; the lines found (with their
 * markers) must be the same, and the verdict derived from OpenSSH's findings (ssh's
 * check_hostkeys_by_key_or_type, and its port-less retry on other ports) must be ours.
 * The rows that differ on purpose (a line we cannot read refuses its host; OpenSSH skips it) say so.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HostKeyCheck, fingerprint, hashHostName, hostPattern, judgePlainKey, lookupHost, matchPattern, parseKnownHosts, readKnownHosts } from '../../../src/transport/hostkeys/index.ts';
import { ConnectionError } from '../../../src/util/errors.ts';
import { hashFile, keygen, sshKeygenFind, type TestKey } from './ssh-keygen.ts';

type Verdict = 'match' | 'no match' | 'changed' | 'revoked' | 'cert-authority' | 'unreadable';
type KeyName = 'K1' | 'K2' | 'K3' | 'CA';

interface Row {
  why: string;
  lines: string[];
  host: string;
  port: number;
  offer: KeyName;
  verdict: Verdict;
  /** OpenSSH's verdict, where ours differs on purpose. */
  openssh?: Verdict;
}

const rows: Row[] = [
  { why: 'plain entry, same key', lines: ['10.0.0.5 K1'], host: '10.0.0.5', port: 22, offer: 'K1', verdict: 'match' },
  { why: 'plain entry, another key: changed', lines: ['10.0.0.5 K2'], host: '10.0.0.5', port: 22, offer: 'K1', verdict: 'changed' },
  { why: 'several keys per host: any one matches', lines: ['10.0.0.5 K2', '10.0.0.5 K3', '10.0.0.5 K1'], host: '10.0.0.5', port: 22, offer: 'K1', verdict: 'match' },
  { why: 'key type aware: an rsa key offered where ed25519 is known is a changed key', lines: ['10.0.0.5 K1'], host: '10.0.0.5', port: 22, offer: 'K3', verdict: 'changed' },
  { why: 'another host only', lines: ['10.0.0.6 K1'], host: '10.0.0.5', port: 22, offer: 'K1', verdict: 'no match' },
  { why: '[host]:port matches its own port', lines: ['[10.0.0.5]:2222 K1'], host: '10.0.0.5', port: 2222, offer: 'K1', verdict: 'match' },
  { why: '[host]:port with another key: changed', lines: ['[10.0.0.5]:2222 K2'], host: '10.0.0.5', port: 2222, offer: 'K1', verdict: 'changed' },
  { why: '[host]:port does not match port 22', lines: ['[10.0.0.5]:2222 K1'], host: '10.0.0.5', port: 22, offer: 'K1', verdict: 'no match' },
  { why: '[host]:port does not match another port', lines: ['[10.0.0.5]:2222 K1'], host: '10.0.0.5', port: 2200, offer: 'K1', verdict: 'no match' },
  { why: 'a plain entry does not match a non-standard port: another key there is new, not changed', lines: ['10.0.0.5 K2'], host: '10.0.0.5', port: 2222, offer: 'K1', verdict: 'no match' },
  { why: "a plain entry's own key on a non-standard port is accepted (ssh's port-less retry)", lines: ['10.0.0.5 K1'], host: '10.0.0.5', port: 2222, offer: 'K1', verdict: 'match' },
  { why: '[host]:port entry wins over the plain one on its port', lines: ['10.0.0.5 K1', '[10.0.0.5]:2222 K2'], host: '10.0.0.5', port: 2222, offer: 'K1', verdict: 'changed' },
  { why: '* matches every name, [host]:port included', lines: ['* K1'], host: '10.0.0.5', port: 2222, offer: 'K1', verdict: 'match' },
  { why: 'wildcard inside brackets', lines: ['[10.0.0.*]:2222 K1'], host: '10.0.0.5', port: 2222, offer: 'K1', verdict: 'match' },
  { why: '* spans dots', lines: ['10.* K1'], host: '10.0.0.5', port: 22, offer: 'K1', verdict: 'match' },
  { why: '? is exactly one character', lines: ['10.0.0.? K1'], host: '10.0.0.5', port: 22, offer: 'K1', verdict: 'match' },
  { why: '? is not two characters', lines: ['10.0.0.? K1'], host: '10.0.0.50', port: 22, offer: 'K1', verdict: 'no match' },
  { why: 'a dot is a dot, not any character', lines: ['10.0.0.5 K1'], host: '10.0.0x5', port: 22, offer: 'K1', verdict: 'no match' },
  { why: 'a backslash is itself', lines: ['10\\.0\\.0\\.5 K1'], host: '10.0.0.5', port: 22, offer: 'K1', verdict: 'no match' },
  { why: 'comma list', lines: ['web-01,10.0.0.5,[10.0.0.5]:2222 K1'], host: '10.0.0.5', port: 22, offer: 'K1', verdict: 'match' },
  { why: 'comma list, bracket form', lines: ['web-01,10.0.0.5,[10.0.0.5]:2222 K1'], host: '10.0.0.5', port: 2222, offer: 'K1', verdict: 'match' },
  { why: 'negation excludes', lines: ['!10.0.0.7,10.0.0.* K1'], host: '10.0.0.7', port: 22, offer: 'K1', verdict: 'no match' },
  { why: 'negation wins wherever it is in the list', lines: ['10.0.0.*,!10.0.0.7 K1'], host: '10.0.0.7', port: 22, offer: 'K1', verdict: 'no match' },
  { why: 'negation leaves the others', lines: ['!10.0.0.7,10.0.0.* K1'], host: '10.0.0.8', port: 22, offer: 'K1', verdict: 'match' },
  { why: 'a negation alone matches nothing', lines: ['!10.0.0.7 K1'], host: '10.0.0.8', port: 22, offer: 'K1', verdict: 'no match' },
  { why: 'host names are compared in lower case', lines: ['WEB-01.Example.COM K1'], host: 'web-01.example.com', port: 22, offer: 'K1', verdict: 'match' },
  { why: 'an unbalanced bracket is a literal name, not an error', lines: ['[10.0.0.9:2222 K1', '10.0.0.9 K2'], host: '10.0.0.9', port: 2222, offer: 'K1', verdict: 'no match' },
  { why: 'the same, for its literal name', lines: ['[10.0.0.9:2222 K1'], host: '[10.0.0.9:2222', port: 22, offer: 'K1', verdict: 'match' },
  { why: 'regex characters are literal', lines: ['10.0.0.(5|6)+ K1'], host: '10.0.0.5', port: 22, offer: 'K1', verdict: 'no match' },
  { why: '@revoked key refused even if listed as good', lines: ['10.0.0.5 K1', '@revoked * K1'], host: '10.0.0.5', port: 22, offer: 'K1', verdict: 'revoked' },
  { why: '@revoked for another pattern does not apply', lines: ['10.0.0.5 K1', '@revoked 10.0.0.6 K1'], host: '10.0.0.5', port: 22, offer: 'K1', verdict: 'match' },
  { why: '@revoked of another key leaves this one', lines: ['10.0.0.5 K1', '@revoked * K2'], host: '10.0.0.5', port: 22, offer: 'K1', verdict: 'match' },
  { why: '@revoked on [host]:port', lines: ['[10.0.0.5]:2222 K1', '@revoked [10.0.0.5]:2222 K1'], host: '10.0.0.5', port: 2222, offer: 'K1', verdict: 'revoked' },
  { why: '@cert-authority only: the host must show a certificate', lines: ['@cert-authority *.example.com CA'], host: 'web-01.example.com', port: 22, offer: 'K1', verdict: 'cert-authority' },
  { why: '@cert-authority for other names', lines: ['@cert-authority *.example.com CA'], host: '10.0.0.5', port: 22, offer: 'K1', verdict: 'no match' },
  { why: '@cert-authority * covers [host]:port', lines: ['@cert-authority * CA'], host: '10.0.0.5', port: 2222, offer: 'K1', verdict: 'cert-authority' },
  { why: 'a plain entry is checked as such even with a CA', lines: ['@cert-authority * CA', '10.0.0.5 K1'], host: '10.0.0.5', port: 22, offer: 'K1', verdict: 'match' },
  { why: 'comments, blank lines, indentation and a trailing comment', lines: ['# a comment', '', '   ', '\t10.0.0.5 K1 root@web-01 (2024)'], host: '10.0.0.5', port: 22, offer: 'K1', verdict: 'match' },
  { why: 'a commented-out entry is a comment', lines: ['#10.0.0.5 K1'], host: '10.0.0.5', port: 22, offer: 'K1', verdict: 'no match' },
  { why: 'Windows line ends', lines: ['10.0.0.5 K1\r'], host: '10.0.0.5', port: 22, offer: 'K1', verdict: 'match' },
  // Lines that cannot be read. OpenSSH skips them silently; we refuse the host they name (its key,
  // or its revocation, could not be checked) and leave every other host alone.
  { why: 'key that is not base64 refuses its host', lines: ['10.0.0.5 K1', '10.0.0.5 ssh-ed25519 AAAAnot!!base64'], host: '10.0.0.5', port: 22, offer: 'K1', verdict: 'unreadable', openssh: 'match' },
  { why: '... and not another host', lines: ['10.0.0.6 K1', '10.0.0.5 ssh-ed25519 AAAAnot!!base64'], host: '10.0.0.6', port: 22, offer: 'K1', verdict: 'match' },
  { why: 'truncated line (no key)', lines: ['10.0.0.5'], host: '10.0.0.5', port: 22, offer: 'K1', verdict: 'unreadable', openssh: 'no match' },
  { why: 'unknown key type', lines: ['10.0.0.5 ssh-foo AAAAB3NzaC1yc2EAAAADAQABAAABAQ=='], host: '10.0.0.5', port: 22, offer: 'K1', verdict: 'unreadable', openssh: 'no match' },
  { why: 'unknown marker', lines: ['@revokd 10.0.0.5 K1'], host: '10.0.0.5', port: 22, offer: 'K1', verdict: 'unreadable', openssh: 'no match' },
  { why: 'truncated key data', lines: ['10.0.0.5 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq='], host: '10.0.0.5', port: 22, offer: 'K1', verdict: 'unreadable', openssh: 'no match' },
  { why: 'unreadable line for [host]:port', lines: ['[10.0.0.5]:2222 ssh-ed25519'], host: '10.0.0.5', port: 2222, offer: 'K1', verdict: 'unreadable', openssh: 'no match' },
  { why: 'unreadable line for another port leaves this one', lines: ['10.0.0.5 K1', '[10.0.0.5]:2200 ssh-ed25519'], host: '10.0.0.5', port: 22, offer: 'K1', verdict: 'match' },
];

let dir: string;
const keys = {} as Record<KeyName, TestKey>;

beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'provision-known-hosts-'));
  keys.K1 = keygen(dir, 'k1', 'ed25519');
  keys.K2 = keygen(dir, 'k2', 'ecdsa');
  keys.K3 = keygen(dir, 'k3', 'rsa', 2048);
  keys.CA = keygen(dir, 'ca', 'ed25519');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Replaces the key names of a row's lines (K1 … CA, as whole words after the host field) by real keys. */
function expand(lines: string[]): string {
  return lines.map((l) => l.replace(/ (K1|K2|K3|CA)\b/, (_, k: KeyName) => ` ${keys[k].pub}`)).join('\n') + '\n';
}

function ourVerdict(file: string, host: string, port: number, offer: Buffer): Verdict {
  const found = lookupHost(readKnownHosts(file), host, port);
  if (found.unreadable.length) return 'unreadable';
  if (found.route === 'certificate') return 'cert-authority';
  const v = judgePlainKey(offer, found.entries, found.bare);
  return v.kind === 'known' ? 'match' : v.kind === 'unknown' ? 'no match' : v.kind;
}

/** ssh's decision (sshconnect.c check_host_key) from the lines ssh-keygen finds. */
function opensshVerdict(file: string, host: string, port: number, offer: Buffer): Verdict {
  const fp = fingerprint(offer);
  const found = sshKeygenFind(file, hostPattern(host, port));
  if (found.some((f) => f.marker === 'revoked' && f.fingerprint === fp)) return 'revoked';
  const plain = found.filter((f) => f.marker === 'none');
  if (plain.some((f) => f.fingerprint === fp)) return 'match';
  if (plain.length) return 'changed';
  if (port !== 22 && opensshVerdict(file, host, 22, offer) === 'match') return 'match';
  if (found.some((f) => f.marker === 'cert-authority')) return 'cert-authority';
  return 'no match';
}

describe('known_hosts lines × host:port, against ssh-keygen -F', () => {
  it.each(rows.map((r, i) => [i + 1, r.why, r] as const))('row %i: %s', (i, _why, row) => {
    const file = path.join(dir, `row-${i}`);
    writeFileSync(file, expand(row.lines));
    const offer = keys[row.offer].blob;
    const name = hostPattern(row.host, row.port);

    // The same lines found, with the same markers, as OpenSSH's own lookup.
    const ours = lookupHost(readKnownHosts(file), row.host, row.port).entries;
    const oursFound = [...ours.plain, ...ours.revoked, ...ours.authorities].map((e) => ({ line: e.line, marker: e.marker, fingerprint: fingerprint(e.key.blob) }));
    expect(oursFound.sort((a, b) => a.line - b.line)).toEqual(sshKeygenFind(file, name));

    expect(ourVerdict(file, row.host, row.port, offer)).toBe(row.verdict);
    expect(opensshVerdict(file, row.host, row.port, offer)).toBe(row.openssh ?? row.verdict);
  });
});

describe('hashed entries (ssh-keygen -H)', () => {
  it('match exactly the names they were made from, as OpenSSH finds them', () => {
    const file = path.join(dir, 'hashed');
    writeFileSync(file, expand(['10.0.0.5 K1', '[10.0.0.5]:2222 K2', 'web-01.example.com,10.0.0.8 K3', '@revoked 10.0.0.6 K1']));
    hashFile(file);
    const text = readKnownHosts(file);
    // ssh-keygen -H writes one hashed line per name of a list, and leaves marker lines as they are.
    expect(text.entries.map((e) => e.hosts.startsWith('|1|'))).toEqual([true, true, true, true, false]);
    expect(text.unreadable).toEqual([]);
    const cases: Array<[string, number, KeyName, Verdict]> = [
      ['10.0.0.5', 22, 'K1', 'match'],
      ['10.0.0.5', 22, 'K2', 'changed'],
      ['10.0.0.5', 2222, 'K2', 'match'],
      ['10.0.0.5', 2222, 'K3', 'changed'],
      ['10.0.0.5', 2200, 'K1', 'match'], // the port-less retry, through the hashed bare name
      ['web-01.example.com', 22, 'K3', 'match'],
      ['10.0.0.8', 22, 'K3', 'match'],
      ['10.0.0.6', 22, 'K1', 'revoked'],
      ['10.0.0.7', 22, 'K1', 'no match'],
    ];
    for (const [host, port, offer, verdict] of cases) {
      const ours = lookupHost(text, host, port).entries;
      expect([...ours.plain, ...ours.revoked].map((e) => e.line).sort(), `${host}:${port}`).toEqual(sshKeygenFind(file, hostPattern(host, port)).map((f) => f.line));
      expect(ourVerdict(file, host, port, keys[offer].blob), `${host}:${port} ${offer}`).toBe(verdict);
      expect(opensshVerdict(file, host, port, keys[offer].blob), `${host}:${port} ${offer}`).toBe(verdict);
    }
  });

  it('a hashed field is one name, not a list; a hash of our own making is found by ssh-keygen', () => {
    const file = path.join(dir, 'hashed-own');
    const salt = Buffer.alloc(20, 7);
    writeFileSync(file, `${hashHostName('[10.0.0.5]:2222', salt)} ${keys.K1.pub}\n${hashHostName('10.0.0.5', salt)},10.0.0.6 ${keys.K1.pub}\n`);
    expect(sshKeygenFind(file, '[10.0.0.5]:2222').map((f) => f.line)).toEqual([1]);
    expect(ourVerdict(file, '10.0.0.5', 2222, keys.K1.blob)).toBe('match');
    for (const host of ['10.0.0.5', '10.0.0.6']) {
      expect(sshKeygenFind(file, host)).toEqual([]);
      expect(ourVerdict(file, host, 22, keys.K1.blob)).toBe('no match');
    }
  });

  it('a hashed field that cannot be read is reported, and refuses no host that has a good entry', () => {
    const file = path.join(dir, 'hashed-bad');
    writeFileSync(file, `|1|abc|def ${keys.K1.pub}\n10.0.0.6 ${keys.K1.pub}\n`);
    const found = lookupHost(readKnownHosts(file), '10.0.0.6', 22);
    expect(found.entries.unreadableAnyHost.map((u) => u.line)).toEqual([1]);
    expect(ourVerdict(file, '10.0.0.6', 22, keys.K1.blob)).toBe('match');
  });
});

describe('patterns are matched without regular expressions', () => {
  it('a pattern that would backtrack exponentially as a regex answers at once', () => {
    const name = 'a'.repeat(80);
    expect(matchPattern(name, '*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b')).toBe(false);
    expect(matchPattern(name, '*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*')).toBe(true);
  });

  it('a sub-pattern of 1023 characters or more matches nothing (as OpenSSH)', () => {
    const file = path.join(dir, 'long');
    writeFileSync(file, `${'x'.repeat(1030)},10.0.0.5 ${keys.K1.pub}\n`);
    expect(sshKeygenFind(file, '10.0.0.5')).toEqual([]);
    expect(ourVerdict(file, '10.0.0.5', 22, keys.K1.blob)).toBe('no match');
  });
});

describe('lines that cannot be read', () => {
  const target = (file: string, address: string, acceptNew = false) => ({ label: 'web-01', address, port: 22, knownHosts: file, acceptNew, timeoutMs: 5000 });
  const noStream = () => Promise.reject(new Error('no certificate fetch expected'));

  it('refuse the host they name with file:line and the reason (a ConnectionError of level hostkey), never a regex error', async () => {
    const file = path.join(dir, 'malformed');
    writeFileSync(file, expand(['# fleet', '10.0.0.5 K1', '10.0.0.5 ssh-ed25519 AAAA!!', '[10.0.0.9:2222 K1', '10.0.0.6 K1']));
    const refused = await HostKeyCheck.prepare(target(file, '10.0.0.5'), noStream).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(refused).toBeInstanceOf(ConnectionError);
    expect((refused as ConnectionError).level).toBe('hostkey');
    expect((refused as ConnectionError).message).toContain(`${file}:3: the ssh-ed25519 key is not valid base64`);
    expect((refused as ConnectionError).message).not.toMatch(/regular expression/i);
  });

  it('leave the other hosts of the file alone', async () => {
    const file = path.join(dir, 'malformed-others');
    writeFileSync(file, expand(['10.0.0.5 ssh-ed25519 AAAA!!', '[10.0.0.9:2222 K1', '@bogus 10.0.0.5 K1', '10.0.0.6 K1']));
    const check = await HostKeyCheck.prepare(target(file, '10.0.0.6'), noStream);
    expect(check.verify(keys.K1.blob)).toBe(true);
    expect(check.verify(keys.K2.blob)).toBe(false);
    expect(check.problem).toContain('HOST KEY CHANGED for 10.0.0.6');
    expect(readKnownHosts(file).unreadable.map((u) => [u.line, u.reason])).toEqual([
      [1, 'the ssh-ed25519 key is not valid base64'],
      [3, 'unknown marker "@bogus" (only @cert-authority and @revoked exist)'],
    ]);
  });

  it('parse every kind of damage without throwing', () => {
    const damaged = [
      '@cert-authority',
      '@revoked @cert-authority * ' + keys.K1.pub,
      'host',
      'host ',
      'host # comment',
      'host ssh-ed25519',
      'host ssh-ed25519 # comment',
      'host 1024 35 12345',
      `host ssh-rsa ${keys.K1.pub.split(' ')[1]}`,
      `host ssh-ed25519-cert-v01@openssh.com ${keys.K1.pub.split(' ')[1]}`,
      'host ssh-ed25519 ====',
      `host ssh-ed25519 ${keys.K1.pub.split(' ')[1]}AAAA`,
      '\u0000\u0001 \u00ff \u2028',
    ];
    const parsed = parseKnownHosts(damaged.join('\n'), 'kh');
    expect(parsed.entries).toEqual([]);
    expect(parsed.unreadable.map((u) => u.line)).toEqual(damaged.map((_, i) => i + 1));
    for (const u of parsed.unreadable) expect(u.reason.length).toBeGreaterThan(0);
  });
});

describe('accept_new_host_keys', () => {
  const target = (file: string, port: number, acceptNew: boolean) => ({ label: 'web-01', address: '10.0.0.5', port, knownHosts: file, acceptNew, timeoutMs: 5000 });
  const noStream = () => Promise.reject(new Error('no certificate fetch expected'));
  const verify = async (file: string, port: number, key: TestKey, acceptNew = true) => {
    const check = await HostKeyCheck.prepare(target(file, port, acceptNew), noStream);
    return { ok: check.verify(key.blob), problem: check.problem };
  };

  it('records a never-seen host once, as [host]:port, and then matches it (no second line)', async () => {
    const file = path.join(dir, 'accept-new', 'known_hosts');
    expect((await verify(file, 2222, keys.K1)).ok).toBe(true);
    const once = readKnownHosts(file);
    expect(once.entries.map((e) => `${e.hosts} ${e.key.type}`)).toEqual(['[10.0.0.5]:2222 ssh-ed25519']);
    expect(sshKeygenFind(file, '[10.0.0.5]:2222').map((f) => f.fingerprint)).toEqual([fingerprint(keys.K1.blob)]);
    expect((await verify(file, 2222, keys.K1)).ok).toBe(true);
    expect(readKnownHosts(file).entries).toHaveLength(1);
  });

  it('never records a changed key: the second and third key of the same host are refused', async () => {
    const file = path.join(dir, 'accept-changed');
    writeFileSync(file, '');
    expect((await verify(file, 2222, keys.K1)).ok).toBe(true);
    for (const other of [keys.K2, keys.K3]) {
      const r = await verify(file, 2222, other);
      expect(r.ok).toBe(false);
      expect(r.problem).toMatch(/HOST KEY CHANGED for \[10\.0\.0\.5\]:2222: it now offers \S+ SHA256:\S+, which is not the key recorded in .*:1\); refusing to connect/);
    }
    expect(readKnownHosts(file).entries).toHaveLength(1);
  });

  it('records nothing for a host that has any entry: plain, hashed, CA, on its port-22 name, or an unreadable line that may be it', async () => {
    const cases: Record<string, string> = {
      plain: `[10.0.0.5]:2222 ${keys.K2.pub}\n`,
      hashed: `${hashHostName('[10.0.0.5]:2222', Buffer.alloc(20, 1))} ${keys.K2.pub}\n`,
      'port 22 name': `10.0.0.5 ${keys.K2.pub}\n`,
      'broken hash': `|1|abc|def ${keys.K2.pub}\n`,
    };
    for (const [what, text] of Object.entries(cases)) {
      const file = path.join(dir, `accept-${what.replace(/ /g, '-')}`);
      writeFileSync(file, text);
      const r = await verify(file, 2222, keys.K1);
      expect(r.ok, what).toBe(false);
      expect(readKnownHosts(file).entries.length + readKnownHosts(file).unreadable.length, what).toBe(1);
    }
    // A CA entry: the host must show a certificate; with no way to fetch one it is refused, nothing recorded.
    const file = path.join(dir, 'accept-ca');
    writeFileSync(file, `@cert-authority * ${keys.CA.pub}\n`);
    await expect(HostKeyCheck.prepare(target(file, 2222, true), () => Promise.reject(new ConnectionError('refused', 'socket')))).rejects.toThrow('refused');
    expect(readKnownHosts(file).entries).toHaveLength(1);
  });

  it('a @revoked line alone is no entry (a fleet-wide revocation leaves recording on), but a revoked key is never recorded', async () => {
    const file = path.join(dir, 'accept-revoked');
    writeFileSync(file, `@revoked * ${keys.K2.pub}\n`);
    const revokedKey = await verify(file, 2222, keys.K2);
    expect(revokedKey.ok).toBe(false);
    expect(revokedKey.problem).toContain(`is marked @revoked at ${file}:1`);
    expect(readKnownHosts(file).entries).toHaveLength(1);
    expect((await verify(file, 2222, keys.K1)).ok).toBe(true);
    expect(readKnownHosts(file).entries.map((e) => `${e.marker} ${e.hosts}`)).toEqual(['revoked *', 'none [10.0.0.5]:2222']);
  });

  it('an unknown key is refused without accept_new_host_keys, and nothing is written', async () => {
    const file = path.join(dir, 'no-accept');
    writeFileSync(file, `10.0.0.6 ${keys.K1.pub}\n`);
    const r = await verify(file, 22, keys.K1, false);
    expect(r.ok).toBe(false);
    expect(r.problem).toContain('unknown host key for 10.0.0.5 (ssh-ed25519 SHA256:');
    expect(readKnownHosts(file).entries).toHaveLength(1);
  });
});

describe('a known_hosts file read by every connect of a run', () => {
  it('is parsed once while it is unchanged (a fleet of N hosts is not N × N lines parsed)', () => {
    const file = path.join(dir, 'fleet');
    writeFileSync(file, expand(Array.from({ length: 50 }, (_, i) => `10.0.1.${i + 1} K1`)));
    const first = readKnownHosts(file);
    expect(first.entries).toHaveLength(50);
    expect(readKnownHosts(file)).toBe(first);
  });

  it('is read again after any change: an appended host, an edit of the same size, a replaced file', async () => {
    const file = path.join(dir, 'fleet-changes');
    writeFileSync(file, expand(['10.0.2.1 K1']));
    expect(lookupHost(readKnownHosts(file), '10.0.2.1', 22).entries.plain.map((e) => e.key.type)).toEqual(['ssh-ed25519']);
    // accept_new_host_keys appends a host: the next connect of the same run sees it.
    const check = await HostKeyCheck.prepare({ label: 'new', address: '10.0.2.2', port: 22, knownHosts: file, acceptNew: true, timeoutMs: 5000 }, () => Promise.reject(new Error('no fetch')));
    expect(check.verify(keys.K2.blob)).toBe(true);
    expect(lookupHost(readKnownHosts(file), '10.0.2.2', 22).entries.plain).toHaveLength(1);
    // The same length, another host name: a same-size edit is seen too.
    writeFileSync(file, expand(['10.0.2.9 K1']));
    expect(lookupHost(readKnownHosts(file), '10.0.2.1', 22).entries.plain).toHaveLength(0);
    expect(lookupHost(readKnownHosts(file), '10.0.2.9', 22).entries.plain).toHaveLength(1);
    rmSync(file);
    expect(readKnownHosts(file).entries).toHaveLength(0);
  });
});
