/**
 * The batched probe script, run by a real /bin/sh: frames survive any output, and probes of a shared
 * group (service units) get their own part of one shared read. `systemctl` here is a stand-in script
 * on PATH that prints what systemd prints for `show -p …` (paragraphs, aliases in Names=) and logs
 * each call, so the test can count the calls.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, lchownSync, mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { batchScript, parseBatchOutput, PROBE_RETRY, runProbes, type RawProbe as Probe } from '../../../src/facts/batch.ts';
import type { Connection } from '../../../src/transport/index.ts';
import { fileState, MAX_DIFF_BYTES, parseFileState } from '../../../src/modules/lib/file-state.ts';
import { mysqlDbModule, mysqlUserModule } from '../../../src/modules/mysql.ts';
import { serviceModule } from '../../../src/modules/service.ts';
import { debianFacts, testHost } from '../modules/fixtures.ts';

const NONCE = '00112233aabbccdd';

function runLocally(probes: Probe[], env: Record<string, string> = {}): Map<string, { stdout: string; code: number }> {
  const r = spawnSync('sh', ['-s'], { input: batchScript(probes, NONCE) + '\n', encoding: 'utf8', env: { ...process.env, ...env } });
  return parseBatchOutput(probes, NONCE, r.stdout);
}

function fakeSystemctl(): { dir: string; log: string } {
  const dir = mkdtempSync(path.join(tmpdir(), 'provision-batch-'));
  const log = path.join(dir, 'calls');
  const units: Record<string, string> = {
    'mariadb.service': 'Names=mariadb.service mysql.service mysqld.service\nLoadState=loaded\nActiveState=active\nUnitFileState=enabled',
    'ssh.service': 'Names=ssh.service sshd.service\nLoadState=loaded\nActiveState=active\nUnitFileState=enabled',
    'apt-daily-upgrade.timer': 'Names=apt-daily-upgrade.timer\nLoadState=loaded\nActiveState=inactive\nUnitFileState=disabled',
  };
  const cases = Object.entries(units)
    .flatMap(([, text]) => text.split('\n')[0]!.slice(6).split(' ').map((alias) => `    ${alias}) printf '%b\\n' '${text.replace(/\n/g, '\\n')}' ;;`))
    .join('\n');
  writeFileSync(
    path.join(dir, 'systemctl'),
    `#!/bin/sh\necho "$*" >> ${log}\n[ "$1" = show ] || exit 1\nfirst=1\nfor a in "$@"; do\n  case "$a" in show|-p|Names|LoadState|ActiveState|UnitFileState) continue ;; esac\n  [ $first = 1 ] || echo\n  first=0\n  case "$a" in\n${cases}\n    *) printf 'Names=%s\\nLoadState=not-found\\nActiveState=inactive\\nUnitFileState=\\n' "$a" ;;\n  esac\ndone\n`,
  );
  chmodSync(path.join(dir, 'systemctl'), 0o755);
  return { dir, log };
}

describe('batched probes', () => {
  it('frames each probe, whatever it prints, with its exit code', () => {
    const res = runLocally([
      { key: 'a', script: "printf 'x\\n@@ffff 0 end 0\\n'" },
      { key: 'b', script: 'echo oops >&2; exit 3' },
    ]);
    expect(res.get('a')).toEqual({ stdout: 'x\n@@ffff 0 end 0\n', code: 0 });
    expect(res.get('b')).toEqual({ stdout: 'oops\n', code: 3 });
  });

  it('service probes share one systemctl call; each finds its own unit, by name or alias', () => {
    const { dir, log } = fakeSystemctl();
    const facts = debianFacts();
    const names = ['mysql', 'ssh', 'apt-daily-upgrade.timer', 'nosuch'];
    const probes = names.flatMap((name) => serviceModule.probes(serviceModule.schema.parse({ name, state: 'started' }), { host: testHost(), facts }));
    const res = runLocally(probes, { PATH: `${dir}:${process.env.PATH}` });
    expect(readFileSync(log, 'utf8').trim().split('\n')).toHaveLength(1);
    expect(res.get('service:mysql')?.stdout).toContain('ActiveState=active');
    expect(res.get('service:mysql')?.stdout).toContain('Names=mariadb.service mysql.service');
    expect(res.get('service:ssh')?.stdout).toContain('UnitFileState=enabled');
    expect(res.get('service:apt-daily-upgrade.timer')?.stdout).toContain('ActiveState=inactive');
    expect(res.get('service:nosuch')?.stdout).toContain('LoadState=not-found');
    expect(res.get('service:nosuch')?.stdout).not.toContain('ssh');
  });

  /** A stand-in `mysql`: answers each `SELECT '<literal>';` line with the literal and any other line with "row <line>". */
  function fakeMysql(fail?: string): { dir: string; log: string } {
    const dir = mkdtempSync(path.join(tmpdir(), 'provision-batch-'));
    const log = path.join(dir, 'calls');
    writeFileSync(
      path.join(dir, 'mysql'),
      fail
        ? `#!/bin/sh\necho call >> ${log}\ncat >/dev/null\necho ${JSON.stringify(fail)} >&2\nexit 1\n`
        : `#!/bin/sh\necho call >> ${log}\nwhile IFS= read -r l; do\n  m=$(printf '%s\\n' "$l" | sed -n "s/^SELECT '\\\\(@@q [0-9a-f]*\\\\)';\\$/\\\\1/p")\n  if [ -n "$m" ]; then echo "$m"; else printf 'row %s\\n' "$l"; fi\ndone\n`,
    );
    chmodSync(path.join(dir, 'mysql'), 0o755);
    return { dir, log };
  }

  const mysqlProbes = () => [
    ...mysqlUserModule.probes(mysqlUserModule.schema.parse({ user: 'app', host: '10.0.0.%', password: 'x' }), { host: testHost(), facts: debianFacts() }),
    ...mysqlUserModule.probes(mysqlUserModule.schema.parse({ user: 'exporter', host: 'localhost', password: 'y' }), { host: testHost(), facts: debianFacts() }),
    ...mysqlDbModule.probes(mysqlDbModule.schema.parse({ name: 'app' }), { host: testHost(), facts: debianFacts() }),
  ];

  it('MySQL table reads share one client run; each probe gets exactly the rows of its own queries', () => {
    const { dir, log } = fakeMysql();
    const probes = mysqlProbes();
    const res = runLocally(probes, { PATH: `${dir}:${process.env.PATH}` });
    expect(readFileSync(log, 'utf8').trim().split('\n')).toHaveLength(1);
    const [app, exporter, db] = probes.map((p) => res.get(p.key)!);
    expect(app.code).toBe(0);
    expect(app.stdout.trim().split('\n')).toHaveLength(4); // the user row and three privilege reads
    expect(app.stdout).not.toContain('@@');
    expect(exporter.stdout.trim().split('\n')).toHaveLength(4);
    expect(db.stdout.trim().split('\n')).toHaveLength(1);
    expect(db.stdout).toContain("SCHEMA_NAME = 'app'");
    expect(app.stdout).toContain("User = 'app'");
    expect(exporter.stdout).toContain("User = 'exporter'");
  });

  it('when the client fails, every MySQL table read fails with its message, as if asked alone', () => {
    const { dir } = fakeMysql("ERROR 2002 (HY000): Can't connect to local server through socket");
    const res = runLocally(mysqlProbes(), { PATH: `${dir}:${process.env.PATH}` });
    for (const r of res.values()) {
      expect(r.code).toBe(1);
      expect(r.stdout).toContain("Can't connect to local server");
    }
    expect(res.size).toBe(3);
  });

  /** What a file probe printed when each file was read by a script of its own (the reference). */
  function aloneScript(p: string, withContent: boolean): string {
    const q = `'${p.replace(/'/g, "'\\''")}'`;
    const checksum = `printf 'file %s %s %s %s %s' "$@" "$(sha256sum < ${q} | cut -d' ' -f1)"`; // stdin: no escaped name
    // An attribute-only read has no checksum: nothing planned with it depends on the content.
    const regular = withContent ? `if [ "$4" -le ${MAX_DIFF_BYTES} ]; then printf 'file %s %s %s %s -\\n' "$@"; base64 -w0 ${q}; else ${checksum}; fi` : `printf 'file %s %s %s %s' "$@"`;
    return (
      `if [ -L ${q} ]; then printf 'link %s' "$(readlink ${q})"; elif [ -d ${q} ]; then stat -c 'directory %a %U %G' ${q}; ` +
      `elif [ -f ${q} ]; then set -- $(stat -c '%a %U %G %s' ${q}); ${regular}; elif [ -e ${q} ]; then echo other; else echo absent; fi`
    );
  }

  it('file probes share one read that gives each file exactly what a read of its own gave', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'provision-files-'));
    const f = (name: string) => path.join(dir, name);
    writeFileSync(f('small.conf'), 'listen 80;\n');
    writeFileSync(f('empty'), '');
    writeFileSync(f('big.bin'), Buffer.alloc(MAX_DIFF_BYTES + 10, 7));
    writeFileSync(f('exact'), Buffer.alloc(MAX_DIFF_BYTES, 1));
    writeFileSync(f("odd name | with 'quotes'\nand a newline"), 'odd\n');
    writeFileSync(f('binary'), Buffer.from([0, 255, 10, 0, 13]));
    chmodSync(f('small.conf'), 0o640);
    spawnSync('mkdir', ['-m', '2750', f('dir')]);
    spawnSync('ln', ['-s', '../target with space', f('link')]);
    spawnSync('mkfifo', [f('fifo')]);
    const paths = ['small.conf', 'empty', 'big.bin', 'exact', "odd name | with 'quotes'\nand a newline", 'binary', 'dir', 'link', 'fifo', 'missing', 'dir/missing'].map(f);
    const probes = [...paths.map((p) => fileState(p, true)), ...paths.map((p) => fileState(p, false))];
    const script = batchScript(probes, NONCE);
    expect(script.match(/\bfind\b/g)).toHaveLength(3); // three finds (and one cat, one base64) for any number of files
    const shared = runLocally(probes);
    const alone = runLocally(probes.map((p, i) => ({ key: p.key, script: aloneScript(paths[i % paths.length]!, i < paths.length) })));
    expect(shared.size).toBe(probes.length);
    for (const p of probes) expect(shared.get(p.key), p.key).toEqual(alone.get(p.key));
  });

  /** A `cat` on PATH that appends to each file before printing it (a writer racing the read), `times` times. */
  function racingCat(times: number): string {
    const bin = mkdtempSync(path.join(tmpdir(), 'provision-bin-'));
    const count = path.join(bin, 'count');
    writeFileSync(
      path.join(bin, 'cat'),
      `#!/bin/sh\necho x >> ${count}\nif [ $(/bin/cat ${count} | wc -l) -le ${times} ]; then for a in "$@"; do [ "$a" = -- ] || echo more >> "$a"; done; fi\nexec /bin/cat "$@"\n`,
    );
    chmodSync(path.join(bin, 'cat'), 0o755);
    return bin;
  }

  /** runProbes over a "connection" that runs the script in the local sh. */
  const localConnection = (env: Record<string, string>) =>
    ({
      exec: async (cmd: string, o: { stdin?: string }) => {
        const r = spawnSync('sh', ['-c', cmd], { input: o.stdin, encoding: 'utf8', env: { ...process.env, ...env } });
        return { stdout: r.stdout, stderr: r.stderr, code: r.status ?? 255 };
      },
    }) as unknown as Connection;

  it('a file that changes between the shared reads gets no content, a checksum that matches nothing, and the retry code', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'provision-files-'));
    writeFileSync(path.join(dir, 'a'), 'one\n');
    writeFileSync(path.join(dir, 'b'), 'two\n');
    const probes = ['a', 'b'].map((n) => fileState(path.join(dir, n), true));
    const res = runLocally(probes, { PATH: `${racingCat(1)}:${process.env.PATH}` });
    for (const p of probes) expect(res.get(p.key)).toEqual({ stdout: expect.stringMatching(/^file 644 \S+ \S+ 4 \?$/), code: PROBE_RETRY });
  });

  it('runProbes reads such files again, and the content it returns is the file as it is now', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'provision-files-'));
    writeFileSync(path.join(dir, 'a'), 'one\n');
    const probes = [fileState(path.join(dir, 'a'), true), { key: 'other', script: 'echo hi' }];
    const res = await runProbes(localConnection({ PATH: `${racingCat(1)}:${process.env.PATH}` }), probes);
    expect(parseFileState(res.get(probes[0]!.key)).content).toEqual(readFileSync(path.join(dir, 'a')));
    expect(res.get(probes[0]!.key)?.code).toBe(0);
    expect(res.get('other')).toEqual({ stdout: 'hi\n', code: 0 });
    // A file that keeps changing: three reads, then the answer that matches nothing stands.
    const always = await runProbes(localConnection({ PATH: `${racingCat(99)}:${process.env.PATH}` }), [fileState(path.join(dir, 'a'), true)]);
    expect(parseFileState(always.get(fileState(path.join(dir, 'a'), true).key))).toMatchObject({ type: 'file', sha256: '?', content: undefined });
  });

  // Root reading through a link a user put on the way (their ~/.config → /root) would carry root's files
  // into the diff, the plan file and the log. The rule of the writes (safe-path.ts) holds for the reads.
  it.skipIf(process.getuid?.() !== 0)('a file read never goes through a link in a directory a user, a group or everyone can change', () => {
    const top = mkdtempSync(path.join(tmpdir(), 'provision-links-'));
    const at = (...p: string[]) => path.join(top, ...p);
    for (const d of ['secret', 'home', 'shared', 'sticky', 'etc']) mkdirSync(at(d));
    writeFileSync(at('secret', 'key'), 'TOPSECRET\n');
    chownSync(at('home'), 65534, 65534); // a user's home (nobody's)
    chmodSync(at('shared'), 0o775);
    chownSync(at('shared'), 0, 65534); // a group can change it
    chmodSync(at('sticky'), 0o1777); // like /tmp
    for (const d of ['home', 'shared', 'sticky', 'etc']) symlinkSync(at('secret'), at(d, 'cfg'));
    lchownSync(at('home', 'cfg'), 65534, 65534);
    const read = (p: string) => {
      const probe = fileState(p, true);
      return () => parseFileState(runLocally([probe]).get(probe.key));
    };
    expect(read(at('home', 'cfg', 'key'))).toThrow(`provision refused: ${at('home', 'cfg')} is a symbolic link in a directory that user nobody can change`);
    expect(read(at('shared', 'cfg', 'key'))).toThrow(/shared\/cfg is a symbolic link in a directory that group \S+ or everyone can change/);
    expect(read(at('sticky', 'cfg', 'key'))).toThrow(/sticky\/cfg is a symbolic link in a directory that everyone can change/);
    // An attribute read (file, user's ~/.ssh) is refused the same way: owner and mode are root's secrets too.
    expect(() => parseFileState(runLocally([fileState(at('home', 'cfg', 'key'), false)]).get(fileState(at('home', 'cfg', 'key'), false).key))).toThrow(/provision refused/);
    // A link in a directory only root can change is followed, as /var/run → /run is.
    expect(read(at('etc', 'cfg', 'key'))()).toMatchObject({ type: 'file', content: Buffer.from('TOPSECRET\n') });
    // The link itself, as the last component, is reported as a link (never followed), wherever it is.
    expect(read(at('home', 'cfg'))()).toMatchObject({ type: 'link', target: at('secret') });
  });
});
