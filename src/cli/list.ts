import type { Playbook } from '../executor/index.js';
import { selectHosts, type Inventory } from '../inventory/index.js';
import { InputError } from '../util/errors.js';
import { editDistance } from '../util/yaml.js';

/** The plays' hosts after --limit: what a run would contact, in the order it would. */
function playHosts(inventory: Inventory, playbook: Playbook, limit: string | undefined) {
  const selected = new Set(selectHosts(inventory, limit));
  return playbook.plays.map((play) => ({ play, hosts: selectHosts(inventory, play.hosts).filter((h) => selected.has(h)) }));
}

/** `--list-hosts`: per play, the hosts it would run on (nothing is contacted). */
export function listHosts(inventory: Inventory, playbook: Playbook, limit?: string): string[] {
  return playHosts(inventory, playbook, limit).flatMap(({ play, hosts }) => [
    `play "${play.name}" (hosts: ${play.hosts}): ${hosts.length} host${hosts.length === 1 ? '' : 's'}`,
    ...hosts.map((h) => `  ${h}`),
  ]);
}

const tagText = (tags: readonly string[] | undefined) => (tags?.length ? `  [tags: ${tags.join(', ')}]` : '');

/**
 * `--list-tasks`: per play, its roles and its tasks, with their tags (nothing is contacted). A
 * role's tasks are built per host from its facts, so a role is listed by name; `provision plan`
 * shows its tasks.
 */
export function listTasks(inventory: Inventory, playbook: Playbook, limit?: string): string[] {
  return playHosts(inventory, playbook, limit).flatMap(({ play, hosts }) => [
    `play "${play.name}" (hosts: ${play.hosts}, ${hosts.length} selected)`,
    ...play.roles.map((r) => `  role ${r}  [tags: ${r}] (its tasks are built per host from facts: provision plan lists them)`),
    ...play.tasks.map((t) => `  ${t.name}  (${t.module})${tagText(t.tags)}`),
  ]);
}

/**
 * `--start-at-task NAME` before any connection: a name that is no task of the playbook is bad
 * input — unless a play has roles, whose task names are known only per host.
 */
export function checkStartAtTask(playbook: Playbook, name: string): void {
  const names = playbook.plays.flatMap((p) => p.tasks.map((t) => t.name));
  if (names.includes(name) || playbook.plays.some((p) => p.roles.length)) return;
  const near = names.map((n) => ({ n, d: editDistance(n.toLowerCase(), name.toLowerCase()) })).sort((a, b) => a.d - b.d)[0];
  throw new InputError(
    `--start-at-task: no task named "${name}" in ${playbook.file}`,
    near && near.d <= Math.max(2, Math.floor(name.length / 4)) ? `did you mean "${near.n}"?` : `tasks: ${names.join(', ')}`,
  );
}
