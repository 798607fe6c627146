// Generates the Ansible side of `npm run bench`: an Ansible playbook that manages exactly what our
// site manages on each host, made from our own expanded task list (same packages, files with the
// same rendered content, services, users, firewall rules), so the two no-change runs do the same work.
//
//   tsx bench/ansible/generate.ts INVENTORY PLAYBOOK OUT_DIR SECRETS_FILE
//
// Writes OUT_DIR/tasks/HOST.yml (one task file per host, included by bench/ansible/site.yml) and
// SECRETS_FILE (the inventory's secrets as Ansible vars, mode 0600, outside the repository): secret
// values in rendered content are written as "{{ name }}" and those tasks carry no_log.
import { chmodSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { stringify } from 'yaml';
import { ConnectionPool, expandPlay, loadPlaybook } from '../../src/executor/index.js';
import { gatherFacts } from '../../src/facts/index.js';
import { loadInventory, selectHosts, type Host } from '../../src/inventory/index.js';
import type { Task } from '../../src/modules/index.js';
import { renderTemplate } from '../../src/modules/template.js';
import '../../src/roles/builtin.js';
import { Secret } from '../../src/util/secrets.js';

type AnsibleTask = Record<string, unknown>;

const [inventoryName, playbookFile, outDir, secretsFile] = process.argv.slice(2);
if (!inventoryName || !playbookFile || !outDir || !secretsFile) {
  process.stderr.write('usage: generate.ts INVENTORY PLAYBOOK OUT_DIR SECRETS_FILE\n');
  process.exit(4);
}

/** Every Secret reachable from the inventory's vars, by name. */
function collectSecrets(v: unknown, out: Map<string, string>): void {
  if (v instanceof Secret) out.set(v.name, v.reveal());
  else if (Array.isArray(v)) v.forEach((x) => collectSecrets(x, out));
  else if (v && typeof v === 'object') Object.values(v).forEach((x) => collectSecrets(x, out));
}

const inventory = loadInventory(inventoryName);
const playbook = loadPlaybook(path.resolve(playbookFile));
const secrets = new Map<string, string>();
for (const h of inventory.hosts.values()) collectSecrets(h.vars, secrets);

const raw = (t: string): string => (t.includes('{{') || t.includes('{%') || t.includes('{#') ? `{% raw %}${t}{% endraw %}` : t);

/** Secret values become Jinja references, the rest stays literal; `hidden`: a secret was found (then: no_log). */
function hide(s: string): { text: string; hidden: boolean } {
  const byLength = [...secrets].filter(([, v]) => v.length >= 4).sort((a, b) => b[1].length - a[1].length);
  const parts: string[] = [];
  let rest = s;
  let hidden = false;
  for (;;) {
    let at = -1;
    let found: [string, string] | undefined;
    for (const [n, v] of byLength) {
      const i = rest.indexOf(v);
      if (i >= 0 && (at < 0 || i < at)) [at, found] = [i, [n, v]];
    }
    if (!found) break;
    hidden = true;
    parts.push(raw(rest.slice(0, at)), `{{ ${found[0]} }}`);
    rest = rest.slice(at + found[1].length);
  }
  parts.push(raw(rest));
  return { text: parts.join(''), hidden };
}

const str = (v: unknown): string => (v instanceof Secret ? v.reveal() : String(v));
const mode = (m: unknown): string | undefined => (m === undefined ? undefined : typeof m === 'number' ? m.toString(8).padStart(4, '0') : String(m).padStart(4, '0'));
const clean = (o: Record<string, unknown>): Record<string, unknown> => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));

/**
 * File content as an Ansible template file (not copy's content:, which Ansible turns into JSON
 * data when it looks like JSON): secret values become "{{ name }}", everything else is raw.
 */
function fileContentTask(name: string, content: string, p: Record<string, unknown>, host: Host): AnsibleTask {
  const { text, hidden } = hide(content);
  const file = `templates/${host.name}/${String(p.dest).replace(/^\//, '').replace(/\//g, '__')}.j2`;
  mkdirSync(path.join(outDir!, path.dirname(file)), { recursive: true });
  writeFileSync(path.join(outDir!, file), text);
  return clean({
    name,
    'ansible.builtin.template': clean({ src: file, dest: p.dest, mode: mode(p.mode), owner: p.owner, group: p.group, validate: viaShell(p.validate) }),
    no_log: hidden || undefined,
  });
}

/** Our make_parents: Ansible's template module does not make a missing directory, so a file task does first. */
function parentsTask(name: string, p: Record<string, unknown>): AnsibleTask[] {
  return p.make_parents ? [{ name: `${name} (its directory)`, 'ansible.builtin.file': { path: path.posix.dirname(String(p.dest)), state: 'directory' } }] : [];
}

/** Ansible runs `validate` without a shell (%s replaced, then split into words); ours are shell commands. */
function viaShell(v: unknown): string | undefined {
  return typeof v === 'string' ? `sh -c '${v.replace(/'/g, `'\\''`)}'` : undefined;
}

let guardCount = 0;

/** Our task (parameters already parsed, defaults filled) as Ansible task(s). */
function toAnsible(task: Task, p: Record<string, unknown>, host: Host, probes: () => string[]): AnsibleTask[] {
  const name = task.name;
  switch (task.module) {
    case 'apt':
      return [{
        name,
        'ansible.builtin.apt': clean({
          name: p.packages, state: p.state, update_cache: p.update_cache, cache_valid_time: p.update_cache ? p.cache_valid_time : undefined,
          install_recommends: p.install_recommends, purge: p.purge || undefined, lock_timeout: p.lock_timeout,
        }),
      }];
    case 'copy': {
      const content = p.content !== undefined ? str(p.content) : readFileSync(String(p.src), 'utf8');
      return [...parentsTask(name, p), fileContentTask(name, content, p, host)];
    }
    case 'template': {
      const vars = { ...host.vars, inventory_hostname: host.name, ...((p.vars as Record<string, unknown>) ?? {}) };
      return [...parentsTask(name, p), fileContentTask(name, renderTemplate(String(p.src), vars), p, host)];
    }
    case 'file': {
      const touch = p.state === 'touch';
      return [{
        name,
        'ansible.builtin.file': clean({
          path: p.path, state: p.state, src: p.src, mode: mode(p.mode), owner: p.owner, group: p.group,
          access_time: touch ? 'preserve' : undefined, modification_time: touch ? 'preserve' : undefined,
        }),
      }];
    }
    case 'service':
      return [{ name, 'ansible.builtin.systemd': clean({ name: p.name, state: p.state, enabled: p.enabled, daemon_reload: p.daemon_reload || undefined }) }];
    case 'group':
      return [{ name, 'ansible.builtin.group': clean({ name: p.name, state: p.state, gid: p.gid, system: p.system }) }];
    case 'user': {
      const out: AnsibleTask[] = [{
        name,
        'ansible.builtin.user': clean({
          name: p.name, state: p.state, uid: p.uid, group: p.group, groups: p.groups, append: p.groups ? p.append : undefined,
          home: p.home, shell: p.shell, system: p.system, create_home: p.create_home, password_lock: p.password_locked, remove: p.remove || undefined,
        }),
      }];
      if (p.state === 'present' && Array.isArray(p.authorized_keys)) {
        out.push({ name: `${name}: authorized keys`, 'ansible.posix.authorized_key': { user: p.name, key: (p.authorized_keys as string[]).join('\n'), exclusive: true } });
      }
      return out;
    }
    case 'lineinfile':
      return [{
        name,
        'ansible.builtin.lineinfile': clean({
          path: p.path, line: p.line, regexp: p.regexp, state: p.state, insertafter: p.insertafter, insertbefore: p.insertbefore,
          create: p.create, mode: mode(p.mode), owner: p.owner, group: p.group, validate: viaShell(p.validate),
        }),
      }];
    case 'command': {
      const out: AnsibleTask[] = [];
      let when: string | undefined;
      // Ansible's command has creates/removes but no unless/onlyif: a read-only guard task, like our guard probe.
      for (const [kind, guard] of [['unless', p.unless], ['onlyif', p.onlyif]] as const) {
        if (typeof guard !== 'string') continue;
        const reg = `guard_${++guardCount}`;
        out.push({ name: `${name}: ${kind} guard`, 'ansible.builtin.shell': guard, register: reg, changed_when: false, failed_when: false });
        when = [when, kind === 'unless' ? `${reg}.rc != 0` : `${reg}.rc == 0`].filter(Boolean).join(' and ');
      }
      const { text, hidden } = hide(String(p.cmd));
      out.push(clean({
        name,
        'ansible.builtin.shell': clean({ cmd: text, creates: p.creates, removes: p.removes, chdir: p.chdir, stdin: p.stdin === undefined ? undefined : hide(str(p.stdin)).text }),
        when,
        no_log: hidden || p.stdin !== undefined || undefined,
      }));
      return out;
    }
    case 'ufw': {
      const out: AnsibleTask[] = [];
      const rules = (p.rules as Array<Record<string, unknown>>) ?? [];
      if (rules.length) {
        out.push({
          name: `${name}: rules`,
          'community.general.ufw': {
            rule: '{{ item.rule }}', from_ip: '{{ item.from | default("any") }}', to_ip: '{{ item.to | default("any") }}',
            port: '{{ item.port | default(omit) }}', proto: '{{ item.proto | default("any") }}', comment: '{{ item.comment | default(omit) }}',
          },
          loop: rules.map((r) => clean({ ...r, port: r.port === undefined ? undefined : String(r.port) })),
        });
      }
      for (const [dir, key] of [['incoming', 'default_incoming'], ['outgoing', 'default_outgoing'], ['routed', 'default_routed']] as const) {
        if (p[key]) out.push({ name: `${name}: default ${dir}`, 'community.general.ufw': { default: p[key], direction: dir } });
      }
      if (p.logging) out.push({ name: `${name}: logging`, 'community.general.ufw': { logging: p.logging } });
      if (p.state) out.push({ name: `${name}: state`, 'community.general.ufw': { state: p.state } });
      return out;
    }
    default: {
      // No module in ansible-core for it (mysql_* needs PyMySQL on the host): read the same state
      // our module reads, with the same scripts, as a read-only task.
      const { text, hidden } = hide(probes().join('\n'));
      return [clean({ name, 'ansible.builtin.shell': text, changed_when: false, no_log: hidden || undefined })];
    }
  }
}

const pool = new ConnectionPool(inventory);
const tasksDir = path.join(outDir, 'tasks');
rmSync(tasksDir, { recursive: true, force: true });
rmSync(path.join(outDir, 'templates'), { recursive: true, force: true });
mkdirSync(tasksDir, { recursive: true });
const summary: Record<string, Record<string, number>> = {};
try {
  for (const host of inventory.hosts.values()) {
    const conn = await pool.connect(host);
    const facts = await gatherFacts(conn);
    const out: AnsibleTask[] = [];
    const counts: Record<string, number> = {};
    for (const play of playbook.plays) {
      if (!selectHosts(inventory, play.hosts).includes(host.name)) continue;
      const expanded = expandPlay(play, host, facts, inventory, playbook.file);
      if (!expanded.ok) throw expanded.error;
      for (const task of expanded.play.tasks) {
        if (!('def' in task)) {
          if (task.error) throw new Error(task.error);
          continue; // when: false
        }
        const p = task.params as Record<string, unknown>;
        counts[task.meta.module] = (counts[task.meta.module] ?? 0) + 1;
        out.push(...toAnsible({ ...task.meta, notify: [...task.meta.notify], tags: [...task.meta.tags], params: p }, p, host, () => task.probes.map((x) => `( ${x.script}\n) >/dev/null 2>&1 || true`)));
      }
    }
    summary[host.name] = counts;
    writeFileSync(path.join(tasksDir, `${host.name}.yml`), `# Generated by bench/ansible/generate.ts from our expanded task list for ${host.name}.\n` + stringify(out, { lineWidth: 0 }));
  }
} finally {
  await pool.closeAll();
}
writeFileSync(secretsFile, stringify(Object.fromEntries(secrets)), { mode: 0o600 });
chmodSync(secretsFile, 0o600);
process.stdout.write(JSON.stringify(summary) + '\n');
