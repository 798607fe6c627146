import { readFileSync } from 'node:fs';
import path from 'node:path';
import { InputError } from '../util/errors.js';
import { PACKAGE_ROOT } from '../util/paths.js';
import { editDistance } from '../util/edit-distance.js';

/**
 * `provision help TOPIC`: man-style pages cut from the README shipped with the package, so the
 * help and the README never say two different things. A topic is one or more README sections
 * (a section runs to the next heading of its level or higher).
 */
export const HELP_TOPICS: Readonly<Record<string, { summary: string; sections: string[] }>> = {
  inventory: { summary: 'hosts, groups, vars and connection settings', sections: ['Inventory'] },
  'ansible-inventory': { summary: "Ansible's INI/YAML inventories, group_vars and host_vars", sections: ['Ansible inventories'] },
  playbooks: { summary: 'plays, tasks, roles, templates', sections: ['Playbooks and roles'] },
  'ansible-modules': { summary: "Ansible's module names (ansible.builtin.apt …) and what is supported", sections: ['Ansible module names'] },
  secrets: { summary: 'secrets: environment, 0600 file, ansible-vault, secrets_command, in tasks', sections: ['Secrets in tasks', 'ansible-vault', 'Secrets from a program: secrets_command'] },
  check: { summary: 'check mode, diffs, saved plans and drift', sections: ['Check, diff, plans and drift'] },
  'exit-codes': { summary: 'what each exit code means', sections: ['Exit codes'] },
  cli: { summary: 'every command and option', sections: ['CLI reference'] },
  config: { summary: 'provision.yml: the project defaults of the options', sections: ['provision.yml'] },
  lab: { summary: 'the built-in lab of real hosts', sections: ['The lab'] },
};

/** A README section's lines (heading included), up to the next heading of its level or higher. */
function section(readme: string[], title: string): string[] {
  const start = readme.findIndex((l) => /^#{2,4} /.test(l) && l.replace(/^#+ /, '').trim() === title);
  if (start < 0) throw new Error(`README.md has no section "${title}"`);
  const level = /^#+/.exec(readme[start]!)![0].length;
  let end = start + 1;
  let fenced = false;
  for (; end < readme.length; end++) {
    if (readme[end]!.startsWith('```')) fenced = !fenced;
    const m = !fenced && /^(#+) /.exec(readme[end]!);
    if (m && m[1]!.length <= level) break;
  }
  return readme.slice(start, end);
}

/** Markdown as a terminal page: headings in capitals, code fences dropped (their lines indented), links as text. */
function manText(lines: string[]): string[] {
  let fenced = false;
  const out: string[] = [];
  for (const l of lines) {
    if (l.startsWith('```')) {
      fenced = !fenced;
      continue;
    }
    if (fenced) out.push(`    ${l}`);
    else if (/^#+ /.test(l)) out.push(l.replace(/^#+ /, '').toUpperCase());
    else out.push(l.replace(/\[([^\]]+)\]\([^)]+\)/g, '$1'));
  }
  return out;
}

export function helpTopicText(topic: string, readmeFile = path.join(PACKAGE_ROOT, 'README.md')): string {
  const entry = HELP_TOPICS[topic];
  if (!entry) {
    const near = Object.keys(HELP_TOPICS).find((t) => editDistance(t, topic) <= 2);
    throw new InputError(`help: no topic or command "${topic}"${near ? ` (did you mean "${near}"?)` : ''}`, `topics: ${Object.keys(HELP_TOPICS).join(', ')}; commands: provision help COMMAND`);
  }
  const readme = readFileSync(readmeFile, 'utf8').split('\n');
  const body = entry.sections.flatMap((s) => [...manText(section(readme, s)), '']);
  return [`PROVISION-${topic.toUpperCase()}(7)`, '', ...body].join('\n').replace(/\n{3,}/g, '\n\n').trimEnd();
}

/** The topics as `provision help` lists them. */
export function helpTopicList(): string {
  const width = Math.max(...Object.keys(HELP_TOPICS).map((t) => t.length));
  return ['Help topics (provision help TOPIC):', ...Object.entries(HELP_TOPICS).map(([t, e]) => `  ${t.padEnd(width)}  ${e.summary}`)].join('\n');
}
