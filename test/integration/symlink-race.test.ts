/**
 * Root writing where a user can swap the path under it (issue 12, item 3), on a real lab host.
 *
 * mallory has a shell on the host and owns her home. When provision manages her ~/.ssh, she turns
 * it into a link to a directory of root's (/etc/fil-canary, standing for /etc/sudoers.d): as it is
 * when the run starts, right after the run's read (deterministically, from a guard of an earlier
 * task that runs after the read), and in a loop that swaps it back and forth during several runs.
 * Whatever the timing, nothing outside her home may be written, chmodded or chowned: the canary
 * directory and /etc/sudoers.d are compared (names, modes, owners, sizes, mtimes, checksums) before
 * and after. Files copied into her home are written as her, and a link there is never followed.
 *
 *     npx vitest run --project lab test/integration/symlink-race.test.ts
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ed25519KeyPair } from '../../src/util/ssh-keys.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostExec, labDown, labUp } from '../../src/lab/index.ts';
import { provision, type CliResult } from '../e2e/lab-env.ts';
import { failures, writeInventory, writePlaybook } from './faults-helpers.ts';

const NAME = 'fil';
const PREFIX = '10.92.0';
const HOST = 'web-01';
const CANARY = '/etc/fil-canary';
const HOME = '/home/mallory';
let dir: string;
let inventory: string;

const sh = (script: string) => hostExec(HOST, ['sh', '-c', script], NAME);

async function mustSh(script: string): Promise<string> {
  const r = await sh(script);
  if (r.code !== 0) throw new Error(`${script}\nexited ${r.code}: ${r.stderr}`);
  return r.stdout;
}

/** Everything outside mallory's home that an attack could reach: the canary and sudoers.d, every attribute and byte. */
const outsideHome = () =>
  mustSh(`find ${CANARY} /etc/sudoers.d -printf '%p %y %m %u %g %s %T@\\n' | sort; find ${CANARY} /etc/sudoers.d -type f -exec sha256sum {} + | sort`);

function newKey(comment: string): string {
  return ed25519KeyPair({ comment }).public.trim();
}

const run = (play: string): Promise<CliResult> => provision(['-i', inventory, '-p', writePlaybook(dir, play), '--limit', HOST, '--json'], { timeoutMs: 240_000 });

const userPlay = (key: string, before = '') => `
- name: mallory's keys
  hosts: all
  tasks:${before}
    - name: mallory's authorized keys
      user: { name: mallory, authorized_keys: ["${key}"] }
`;

/** A fresh mallory whose ~/.ssh is a directory of root's, mode 755 (so the run plans a chmod and a chown), and the canary. */
async function reset(): Promise<void> {
  await mustSh(
    [
      `id mallory >/dev/null 2>&1 || useradd -m -s /bin/sh mallory`,
      `rm -rf ${HOME}/.ssh ${HOME}/.ssh.real ${HOME}/notes ${HOME}/docs ${CANARY}`,
      `mkdir -m 755 ${HOME}/.ssh`,
      `mkdir -m 755 ${CANARY} && echo keep > ${CANARY}/keep && touch -d 2020-01-01 ${CANARY}/keep ${CANARY}`,
    ].join(' && '),
  );
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'provision-fil-'));
  await labDown(NAME);
  await labUp({ name: NAME, subnet: `${PREFIX}.0/24`, only: [HOST], pebble: false });
  inventory = writeInventory(dir, NAME, PREFIX);
});

afterAll(async () => {
  await labDown(NAME);
});

describe("a user's ~/.ssh swapped for a link to a directory of root's", () => {
  it('a link there when the run starts: refused, nothing outside the home changes', async () => {
    await reset();
    await mustSh(`rmdir ${HOME}/.ssh && ln -s ${CANARY} ${HOME}/.ssh && chown -h mallory:mallory ${HOME}/.ssh`);
    const before = await outsideHome();
    const r = await run(userPlay(newKey('static')));
    expect(r.code).toBe(1);
    expect(String(failures(r, HOST)[0]?.msg)).toMatch(/\.ssh is a link|symbolic link/);
    expect(await outsideHome()).toBe(before);
  });

  it('swapped in after the run read it (the guard of an earlier task swaps it): refused, nothing outside the home changes', async () => {
    await reset();
    const before = await outsideHome();
    // Shared file reads come first in the batch, guards after: the user task plans with the
    // directory it read, and its commands meet the link.
    const swap = `runuser -u mallory -- sh -c 'cd ${HOME} && mv -T .ssh .ssh.real && ln -s ${CANARY} .ssh'`;
    const r = await run(
      userPlay(
        newKey('hook'),
        `
    - name: mallory swaps ~/.ssh for a link
      command: { cmd: "true", unless: "${swap}" }`,
      ),
    );
    expect(await mustSh(`readlink ${HOME}/.ssh`)).toBe(`${CANARY}\n`);
    expect(r.code).toBe(1);
    const msg = String(failures(r, HOST)[0]?.msg);
    expect(msg).toContain(`provision refused: ${HOME}/.ssh is a symbolic link in a directory that user mallory can change`);
    expect(await outsideHome()).toBe(before);
  });

  it('swapped back and forth by a loop during several runs: whatever the timing, nothing outside the home is written or chowned', async () => {
    await reset();
    await mustSh(`chown mallory:mallory ${HOME}/.ssh`);
    const before = await outsideHome();
    // Bounded in count and time; killed by its pid when the runs are done.
    const loop =
      `cd ${HOME}; i=0; while [ $i -lt 200000 ]; do ` +
      `if [ -d .ssh ] && [ ! -L .ssh ]; then rm -rf .ssh.real; mv -T .ssh .ssh.real; fi; ` +
      `ln -s ${CANARY} .ssh 2>/dev/null; rm -f .ssh 2>/dev/null; mv -T .ssh.real .ssh 2>/dev/null; i=$((i + 1)); done`;
    await mustSh(`setsid timeout 300 runuser -u mallory -- sh -c '${loop}' </dev/null >/dev/null 2>&1 & echo $! > /run/fil-swapper.pid`);
    const outcomes: string[] = [];
    try {
      for (let i = 0; i < 6; i++) {
        const r = await run(userPlay(newKey(`loop-${i}`)));
        outcomes.push(r.code === 2 ? 'written (as mallory)' : `exit ${r.code}: ${String(failures(r, HOST)[0]?.msg ?? r.stderr).split('\n')[0]}`);
      }
    } finally {
      await sh('kill -- -$(cat /run/fil-swapper.pid) 2>/dev/null; rm -f /run/fil-swapper.pid');
    }
    console.log(`FIGURE symlink race, 6 runs against a swapping loop:\n  ${outcomes.join('\n  ')}`);
    expect(await outsideHome()).toBe(before);
    // Whatever was written inside the home is mallory's: root never wrote there.
    expect(await mustSh(`find ${HOME} ! -user mallory -printf '%p\\n'`)).toBe('');
  });
});

describe("copy and file in a user's directory", () => {
  it("a file is written as the user; one for another owner is refused; a link is followed neither by copy nor by file's chown", async () => {
    await reset();
    await mustSh(`runuser -u mallory -- ln -s ${CANARY} ${HOME}/docs`);
    const before = await outsideHome();
    const written = await run(`
- name: files in mallory's home
  hosts: all
  tasks:
    - name: notes
      copy: { dest: ${HOME}/notes/hello.txt, content: "hello\\n", make_parents: true }
`);
    expect(written.code).toBe(2);
    expect(await mustSh(`stat -c '%U:%G %a' ${HOME}/notes ${HOME}/notes/hello.txt`)).toBe('mallory:mallory 755\nmallory:mallory 644\n');

    const forRoot = await run(`
- name: a root-owned file in mallory's home
  hosts: all
  tasks:
    - name: notes for root
      copy: { dest: ${HOME}/notes/root.txt, content: "mine\\n", owner: root }
`);
    expect(forRoot.code).toBe(1);
    expect(String(failures(forRoot, HOST)[0]?.msg)).toContain(`${HOME}/notes belongs to user mallory`);
    expect(await mustSh(`ls ${HOME}/notes`)).toBe('hello.txt\n');

    for (const task of [`copy: { dest: ${HOME}/docs/planted, content: "x\\n" }`, `file: { path: ${HOME}/docs/keep, owner: mallory, mode: "0666" }`]) {
      const r = await run(`
- name: through mallory's link
  hosts: all
  tasks:
    - name: through the link
      ${task}
`);
      expect(r.code, task).toBe(1);
      expect(String(failures(r, HOST)[0]?.msg), task).toContain(`${HOME}/docs is a symbolic link in a directory that user mallory can change`);
    }
    expect(await outsideHome()).toBe(before);
  });
});
