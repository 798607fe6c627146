import { z } from 'zod';
import type { Facts, Probe } from '../facts/index.js';
import { ModuleError } from '../util/errors.js';
import { shellJoin } from '../util/quote.js';
import { planFileContent } from './copy.js';
import { accountName, groupsProbe, parseGroupLines } from './group.js';
import { authorizedKeyBlobs, connectionKeys } from './lib/connection-keys.js';
import { attributeChanges, currentFile, fileProbe, type FileState } from './lib/file-state.js';
import { makeDirectoryCommand, setAttributesCommand } from './lib/write-file.js';
import type { Change, Command, ModuleContext, ModuleDef, Plan, PredictedState } from './types.js';

const params = z.strictObject({
  name: accountName,
  state: z.enum(['present', 'absent']).default('present'),
  uid: z.number().int().min(0).optional(),
  /** Primary group (must exist). New users otherwise get a group of their own name. */
  group: accountName.optional(),
  /** Supplementary groups (must exist). */
  groups: z.array(accountName).optional(),
  /** true: add to `groups`, keep others; false: exactly `groups`. */
  append: z.boolean().default(true),
  home: z.string().startsWith('/', 'an absolute path').optional(),
  shell: z.string().startsWith('/', 'an absolute path').optional(),
  system: z.boolean().default(false),
  /** Default: true for ordinary users, false for system users. */
  create_home: z.boolean().optional(),
  /** Exactly these keys in ~/.ssh/authorized_keys (mode 600, ~/.ssh 700, owned by the user). */
  authorized_keys: z.array(z.string().regex(/^[^\n]+$/, 'one key per entry, no newlines')).optional(),
  password_locked: z.boolean().optional(),
  /** With state: absent, also delete the home directory and mail spool. */
  remove: z.boolean().default(false),
  /**
   * For the user this run logs in as: let authorized_keys drop every key the run logs in with (the
   * next run then cannot connect). Without it, such a change is refused before anything is applied.
   */
  allow_removing_connection_key: z.boolean().default(false),
});
export type UserParams = z.input<typeof params>;
type Params = z.output<typeof params>;

/** Home as probes and plan both see it: the param, else the host's, else useradd's default. */
function homeOf(p: Params, facts: Facts): string {
  return p.home ?? facts.users.get(p.name)?.home ?? `/home/${p.name}`;
}

function userProbe(name: string): Probe {
  const n = shellJoin([name]);
  return {
    key: `user:${name}`,
    script:
      `if getent passwd ${n}; then echo "@@primary $(id -gn ${n})"; echo "@@groups $(id -Gn ${n})"; ` +
      `echo "@@status $(passwd -S ${n} 2>/dev/null)"; else exit 2; fi`,
  };
}

interface UserEntry {
  uid: number;
  gid: number;
  home: string;
  shell: string;
  primary: string;
  supplementary: string[];
  /** L (locked), P (usable password), NP (no password). */
  passwordStatus: string;
}

function parseUser(stdout: string | undefined, name: string): UserEntry | undefined {
  const lines = (stdout ?? '').split('\n');
  const pw = lines.find((l) => l.startsWith(`${name}:`))?.split(':');
  if (!pw || pw.length < 7) return undefined;
  const tagged = (tag: string) => lines.find((l) => l.startsWith(`@@${tag} `))?.slice(tag.length + 3).trim() ?? '';
  const primary = tagged('primary');
  return {
    uid: Number(pw[2]),
    gid: Number(pw[3]),
    home: pw[5]!,
    shell: pw[6]!.trim(),
    primary,
    supplementary: [...new Set(tagged('groups').split(/\s+/).filter((g) => g && g !== primary))],
    passwordStatus: tagged('status').split(/\s+/)[1] ?? '',
  };
}

function wantedGroups(p: Params): string[] {
  return [...(p.group ? [p.group] : []), ...(p.groups ?? [])];
}

/**
 * Replacing the authorized_keys of the user this run logs in as must keep a key the run logs in
 * with, or the next run is locked out. Only keys the file grants today count: a run that gets in
 * some other way (another key file, a certificate) is not locked out by this file.
 */
async function refuseLockout(name: string, wanted: string, current: FileState, ctx: ModuleContext): Promise<void> {
  if (current.type !== 'file' || current.content?.equals(Buffer.from(wanted))) return;
  const runKeys = await connectionKeys(ctx.host.connection);
  const granted = current.content === undefined ? undefined : authorizedKeyBlobs(current.content.toString('latin1'));
  // A file too big to read is assumed to hold our keys: refusing is the safe mistake.
  const inUse = runKeys.filter((k) => granted === undefined || granted.some((b) => b.equals(k.blob)));
  if (!inUse.length) return;
  const kept = authorizedKeyBlobs(wanted);
  if (runKeys.some((k) => kept.some((b) => b.equals(k.blob)))) return;
  const named = inUse.map((k) => `${k.fingerprint} (${k.source})`).join(', ');
  throw new ModuleError(
    `user ${name}: the new authorized_keys leaves out the key this run logs in with, ${named}: the next run could not connect as ${name}. ` +
      'Keep that key in authorized_keys, or set allow_removing_connection_key: true',
  );
}

export const userModule: ModuleDef<Params> = {
  name: 'user',
  schema: params,
  probes(p, _host, facts) {
    const out: Probe[] = [userProbe(p.name)];
    if (p.state === 'present' && wantedGroups(p).length) out.push(groupsProbe(wantedGroups(p)));
    if (p.state === 'present' && p.authorized_keys) {
      const home = homeOf(p, facts);
      out.push(fileProbe(`${home}/.ssh`, false), fileProbe(`${home}/.ssh/authorized_keys`, true));
    }
    return out;
  },
  async plan(p, ctx): Promise<Plan> {
    const have = parseUser(ctx.results.get(`user:${p.name}`)?.stdout, p.name);
    const change = (action: string, extra: Partial<Change> = {}): Change => ({ kind: 'user', target: p.name, action, ...extra });

    if (p.state === 'absent') {
      if (!have) return { changes: [], commands: [] };
      return {
        changes: [change(p.remove ? 'remove (with home directory)' : 'remove')],
        commands: [{ kind: 'shell', cmd: shellJoin(['userdel', ...(p.remove ? ['--remove'] : []), p.name]) }],
        predict: (s) => void s.users.delete(p.name),
      };
    }

    // Groups must exist on the host or be made by an earlier task of this run.
    const groupsWanted = wantedGroups(p);
    if (groupsWanted.length) {
      const onHost = parseGroupLines(ctx.results.get(groupsProbe(groupsWanted).key));
      const missing = groupsWanted.filter((g) => !onHost.has(g) && !ctx.predicted.groups.has(g));
      if (missing.length) throw new ModuleError(`user ${p.name}: group${missing.length > 1 ? 's' : ''} ${missing.join(', ')} not found (create with the group module first)`);
    }

    const changes: Change[] = [];
    const commands: Command[] = [];
    const predicts: Array<(s: PredictedState) => void> = [];
    const shell = (args: string[]) => commands.push({ kind: 'shell', cmd: shellJoin(args) });
    // In a dry run, a user an earlier task would create counts as existing (with the attributes it was given).
    const predictedOnly = !have && ctx.predicted.users.has(p.name);

    if (!have && !predictedOnly) {
      if (p.password_locked === false) throw new ModuleError(`user ${p.name}: a new user has no password to unlock (password_locked: false)`);
      const createHome = p.create_home ?? !p.system;
      const args = ['useradd'];
      if (p.system) args.push('--system');
      if (p.uid !== undefined) args.push('--uid', String(p.uid));
      if (p.group) args.push('--gid', p.group);
      if (p.groups?.length) args.push('--groups', p.groups.join(','));
      if (p.home) args.push('--home-dir', p.home);
      if (p.shell) args.push('--shell', p.shell);
      args.push(createHome ? '--create-home' : '--no-create-home', p.name);
      const details = [p.uid !== undefined ? `uid ${p.uid}` : '', p.groups?.length ? `groups ${p.groups.join(',')}` : '', p.shell ?? ''].filter(Boolean);
      changes.push(change(`create${details.length ? ` (${details.join(', ')})` : ''}`));
      shell(args);
      predicts.push((s) => void s.users.add(p.name));
    } else if (have) {
      const mod: string[] = [];
      if (p.uid !== undefined && have.uid !== p.uid) {
        changes.push(change(`uid ${have.uid} → ${p.uid}`));
        mod.push('--uid', String(p.uid));
      }
      if (p.group && have.primary !== p.group) {
        changes.push(change(`primary group ${have.primary} → ${p.group}`));
        mod.push('--gid', p.group);
      }
      if (p.home && have.home !== p.home) {
        changes.push(change(`home ${have.home} → ${p.home}`));
        mod.push('--home', p.home);
      }
      if (p.shell && have.shell !== p.shell) {
        changes.push(change(`shell ${have.shell} → ${p.shell}`));
        mod.push('--shell', p.shell);
      }
      if (mod.length) shell(['usermod', ...mod, p.name]);
      if (p.groups) {
        const want = [...new Set(p.groups)].filter((g) => g !== (p.group ?? have.primary));
        if (p.append) {
          const missing = want.filter((g) => !have.supplementary.includes(g));
          if (missing.length) {
            changes.push(change(`add to group${missing.length > 1 ? 's' : ''} ${missing.join(',')}`));
            shell(['usermod', '--append', '--groups', missing.join(','), p.name]);
          }
        } else {
          const same = want.length === have.supplementary.length && want.every((g) => have.supplementary.includes(g));
          if (!same) {
            changes.push(change(`groups ${have.supplementary.join(',') || '(none)'} → ${want.join(',') || '(none)'}`));
            shell(['usermod', '--groups', want.join(','), p.name]);
          }
        }
      }
      if (p.password_locked !== undefined) {
        const locked = have.passwordStatus === 'L';
        if (p.password_locked !== locked) {
          changes.push(change(p.password_locked ? 'lock password' : 'unlock password'));
          shell(['usermod', p.password_locked ? '--lock' : '--unlock', p.name]);
        }
      }
    }

    if (p.authorized_keys) {
      const home = homeOf(p, ctx.facts);
      const group = p.group ?? (have ? have.primary : p.name);
      const dir = `${home}/.ssh`;
      const keysFile = `${dir}/authorized_keys`;
      // A user made by this task has no files yet, whatever an old home directory held.
      const hostCtx = have ? ctx : { ...ctx, results: new Map() };
      const content = p.authorized_keys.map((k) => k.trim()).join('\n') + (p.authorized_keys.length ? '\n' : '');
      if (p.name === ctx.host.connection.user && !p.allow_removing_connection_key) await refuseLockout(p.name, content, currentFile(hostCtx, keysFile, true), ctx);
      // ~/.ssh and the key file are in a directory the user controls: both commands reach them
      // without following the user's links and write the keys as the user (lib/safe-path.ts).
      const dirState = have ? currentFile(ctx, dir, false) : ({ type: 'absent' } as const);
      if (dirState.type === 'absent') {
        changes.push({ kind: 'file', target: dir, action: 'create directory' });
        commands.push(makeDirectoryCommand(dir, { mode: '700', owner: p.name, group }));
        predicts.push((s) => void s.directories.add(dir));
      } else if (dirState.type === 'directory') {
        const attrs = attributeChanges(dir, dirState, { mode: '700', owner: p.name, group });
        changes.push(...attrs.changes);
        if (attrs.changes.length) commands.push(setAttributesCommand(dir, 'directory', attrs.needed));
      } else {
        throw new ModuleError(`${dir} is a ${dirState.type}, not a directory`);
      }
      const keys = planFileContent(
        { dest: keysFile, mode: '600', owner: p.name, group, backup: false, sensitive: false, make_parents: false },
        content,
        hostCtx,
      );
      changes.push(...keys.changes);
      commands.push(...keys.commands);
      if (keys.predict) predicts.push(keys.predict);
    }

    if (!changes.length) return { changes: [], commands: [] };
    return { changes, commands, predict: (s) => predicts.forEach((f) => f(s)) };
  },
};
