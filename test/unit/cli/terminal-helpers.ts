/**
 * Running the real CLI the way a person does: under a pseudo-terminal (util-linux `script`), and
 * with its output piped into `head -1`. Shared by the unit tests (unreachable hosts need no lab)
 * and the lab tests (failing and changing hosts).
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { quote, shellJoin } from '../../../src/util/quote.ts';
import { runBounded, type RunResult } from '../helpers/run.ts';

export const ROOT = path.resolve(import.meta.dirname, '../../..');
const BIN = path.join(ROOT, 'bin/provision.cjs');

export type ShellResult = RunResult;

/** The CLI as one shell word list. */
export function cliLine(args: string[]): string {
  return shellJoin([process.execPath, BIN, ...args]);
}

/** What a person's terminal gives the CLI: no CI variable (which turns the live view off), colours on. */
function terminalEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, TERM: 'xterm-256color', ...extra };
  delete env.CI;
  delete env.NO_COLOR;
  return env;
}

/** Run a bash script; bounded by `timeoutMs` (then killed, code 124). */
export function bash(script: string, env: NodeJS.ProcessEnv = terminalEnv(), timeoutMs = 120_000): Promise<ShellResult> {
  return runBounded('bash', ['-c', script], { cwd: ROOT, env, timeoutMs });
}

/**
 * The CLI under a pseudo-terminal of 120×40 (a bare `script` terminal reports no width, and the
 * CLI then rightly falls back to plain lines). Returns its exit code and everything the terminal
 * showed (stdout and stderr both go to the terminal), without colours and carriage returns.
 */
export async function underTerminal(args: string[], opts: { columns?: number } = {}): Promise<{ code: number; screen: string; raw: string }> {
  const inner = `stty cols ${opts.columns ?? 120} rows 40 2>/dev/null; exec ${cliLine(args)}`;
  const r = await bash(`exec script -qec ${quote(inner)} /dev/null`);
  const raw = r.stdout + r.stderr;
  return { code: r.code, raw, screen: plainText(raw) };
}

/** Strip terminal control sequences and carriage returns. */
export function plainText(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '').replace(/\r/g, '');
}

/** listr2's live renderer hides the cursor while it draws: the mark that the live view ran. */
export const LIVE_VIEW_MARK = '\x1b[?25l';

export type OutputMode = 'live' | 'plain' | 'json';

/**
 * `provision ARGS | head -1` in one output mode. Returns the CLI's own exit code (not head's), its
 * stderr, and the one line head printed. For the live view the terminal's output is what is piped
 * (`script … | head -1`); the CLI's stderr goes to a file so a stack trace would be seen.
 */
export async function intoHeadOne(mode: OutputMode, args: string[]): Promise<{ code: number; stderr: string; firstLine: string }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'provision-head-'));
  const errFile = path.join(dir, 'stderr');
  const codeFile = path.join(dir, 'code');
  if (mode === 'live') {
    const inner = `stty cols 120 rows 40 2>/dev/null; ${cliLine(args)} 2>${quote(errFile)}; echo $? > ${quote(codeFile)}`;
    const r = await bash(`script -qec ${quote(inner)} /dev/null | head -1`);
    return { code: Number(readFileSync(codeFile, 'utf8').trim()), stderr: readFileSync(errFile, 'utf8'), firstLine: plainText(r.stdout).trim() };
  }
  const all = mode === 'json' ? [...args, '--json'] : args;
  // PIPESTATUS[0]: the CLI's exit code; head's is always 0.
  const r = await bash(`${cliLine(all)} 2>${quote(errFile)} | head -1; echo "$\{PIPESTATUS[0]}" > ${quote(codeFile)}`, { ...process.env, CI: '1', NO_COLOR: '1' });
  return { code: Number(readFileSync(codeFile, 'utf8').trim()), stderr: readFileSync(errFile, 'utf8'), firstLine: r.stdout.trim() };
}

/** A Node stack trace, in any output: "    at fn (file:line:col)", "node:internal", "Node.js v20". */
export const STACK_TRACE = /^\s*at .*(\(|file:|node:)|node:internal|^Node\.js v\d/m;

/** A scratch inventory file. */
export function writeFile(dir: string, name: string, text: string): string {
  const file = path.join(dir, name);
  writeFileSync(file, text);
  return file;
}

export function scratchDir(): string {
  return mkdtempSync(path.join(tmpdir(), 'provision-terminal-'));
}

/** The recap line of a host on the screen, e.g. "web1  ok=0  changed=0  failed=0  unreachable=1 …". */
export function recapLine(screen: string, host: string): string | undefined {
  return screen.split('\n').find((l) => new RegExp(`^${host}\\s+ok=\\d+`).test(l));
}

/**
 * What an interactive shell does with its job when the terminal hangs up: it is the session leader,
 * gets SIGHUP, and passes it on. This one also records how the job ended (the terminal is gone).
 */
const SHELL_LIKE = `
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
const [endFile, ...cmd] = process.argv.slice(2);
const job = spawn(cmd[0], cmd.slice(1), { stdio: 'inherit' });
process.on('SIGHUP', () => job.kill('SIGHUP'));
job.on('exit', (code, signal) => writeFileSync(endFile, signal ? 'signal ' + signal : 'exit ' + code));
`;

/**
 * Run the CLI under a pseudo-terminal and hang the terminal up (its \`script\` killed) as soon as the
 * run has started. Returns how the CLI ended: "exit N" or "signal NAME".
 */
export async function hangUpMidRun(args: string[]): Promise<string> {
  const dir = mkdtempSync(path.join(tmpdir(), 'provision-hup-'));
  const shell = writeFile(dir, 'shell.mjs', SHELL_LIKE);
  const endFile = path.join(dir, 'end');
  const inner = `stty cols 120 rows 40 2>/dev/null; exec ${shellJoin([process.execPath, shell, endFile])} ${cliLine(args)}`;
  const env = terminalEnv();
  const term = spawn('script', ['-qec', inner, '/dev/null'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'ignore'] });
  await new Promise<void>((resolve, reject) => {
    let seen = '';
    const timer = setTimeout(() => reject(new Error(`the run did not start: ${seen}`)), 60_000);
    term.stdout.on('data', (d) => {
      seen += d;
      if (!seen.includes('host(s) of')) return;
      clearTimeout(timer);
      term.kill('SIGKILL'); // the terminal is gone: its pseudo-terminal hangs up
      resolve();
    });
  });
  for (let i = 0; i < 240 && !existsSync(endFile); i++) await new Promise((r) => setTimeout(r, 250));
  return existsSync(endFile) ? readFileSync(endFile, 'utf8') : 'still running after 60 s';
}
