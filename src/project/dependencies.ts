import { getRole } from '../roles/index.js';
import { PlaybookError } from '../util/errors.js';
import { dependencySource } from './yaml-role.js';

/**
 * A play's roles with each one's dependencies (meta/main.yml) before it, each role once per play
 * (as Ansible runs a dependency once unless it allows duplicates). A cycle is bad input: exit 4,
 * naming where the dependency that closes it is declared and the whole cycle.
 */
export function withDependencies(roles: readonly string[]): string[] {
  const ordered: string[] = [];
  const done = new Set<string>();
  const visit = (name: string, stack: string[], declaredAt: string | undefined): void => {
    if (done.has(name)) return;
    const loop = stack.indexOf(name);
    if (loop >= 0) {
      const cycle = [...stack.slice(loop), name].join(' → ');
      throw new PlaybookError(`${declaredAt ?? `role ${name}`}: role dependency cycle: ${cycle}`, 'a role cannot depend on itself, directly or through other roles');
    }
    const role = getRole(name);
    if (!role) throw new PlaybookError(`${declaredAt ?? `role ${stack[stack.length - 1]}`}: unknown role "${name}" (a dependency of ${stack[stack.length - 1]})`);
    (role.dependencies ?? []).forEach((dep, i) => visit(dep, [...stack, name], dependencySource(role, i)));
    done.add(name);
    ordered.push(name);
  };
  for (const name of roles) visit(name, [], undefined);
  return ordered;
}

/** Every play of a playbook gets its roles' dependencies (in place, right after loading it, before any check). */
export function expandRoleDependencies(playbook: { plays: Array<{ roles: string[] }> }): void {
  for (const play of playbook.plays) play.roles = withDependencies(play.roles);
}
