import { cpSync, existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { InputError } from '../util/errors.js';
import { PACKAGE_ROOT } from '../util/paths.js';
import { EXIT } from './exit-codes.js';
import { compareText } from '../util/compare-text.js';

/** The example project `provision init` copies (README, inventory, playbook, a YAML and a TS role, a module with its cases, tests). */
export const SCAFFOLD_DIR = path.join(PACKAGE_ROOT, 'src', 'project', 'scaffold');

/** The lab host the example inventory points at: web-01 of a lab instance (its key, known_hosts and address). */
export interface LabTarget {
  sshKey: string;
  knownHosts: string;
  /** "10.82.0.0/24" */
  subnet: string;
}

export function labInventory(lab: LabTarget): string {
  const prefix = lab.subnet.replace(/\.0\/24$/, '');
  return `# One host of the built-in lab (provision lab up --only web-01). Point it at your own hosts:
# address, user, identity_file and known_hosts (host keys are always checked).
defaults:
  user: root
  identity_file: ${lab.sshKey}
  known_hosts: ${lab.knownHosts}
  connect_timeout: 5
hosts:
  web-01: { address: ${prefix}.11, groups: [web] }
`;
}

/**
 * Scaffolds a project in DIR (made when missing). A DIR that holds anything is refused (exit 4):
 * init never overwrites or mixes into someone's files.
 */
export function initProject(dir: string, lab: LabTarget): string[] {
  const target = path.resolve(dir);
  if (existsSync(target)) {
    if (!statSync(target).isDirectory()) throw new InputError(`init: ${target} exists and is not a folder`);
    const inside = readdirSync(target);
    if (inside.length) throw new InputError(`init: ${target} is not empty (${inside.slice(0, 3).join(', ')}${inside.length > 3 ? ', …' : ''})`, 'init scaffolds an empty or new folder: it never writes over files');
  }
  mkdirSync(target, { recursive: true });
  cpSync(SCAFFOLD_DIR, target, { recursive: true });
  mkdirSync(path.join(target, 'inventory'), { recursive: true });
  writeFileSync(path.join(target, 'inventory', 'lab.yml'), labInventory(lab));
  const listed: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true }).sort((a, b) => compareText(a.name, b.name))) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else listed.push(path.relative(target, p));
    }
  };
  walk(target);
  return listed;
}

export function registerInitCommand(program: Command, setCode: (c: number) => void): void {
  program
    .command('init')
    .description('scaffold a project: inventory/, playbooks/, roles/ (a YAML and a TypeScript role), modules/ (one, with its test cases), test/')
    .argument('<dir>', 'the new project folder (must be empty or absent)')
    .option('--lab <name>', 'the lab instance the example inventory targets', 'default')
    .action(async (dir: string, o: { lab: string }) => {
      const { labPaths } = await import('../lab/index.js');
      let lab: LabTarget;
      try {
        lab = labPaths(o.lab);
      } catch (err) {
        throw new InputError(`init: --lab ${o.lab}: ${(err as Error).message}`);
      }
      const files = initProject(dir, lab);
      process.stdout.write(`created ${path.resolve(dir)}:\n${files.map((f) => `  ${f}\n`).join('')}next: provision lab up --only web-01${o.lab === 'default' ? '' : ` --name ${o.lab}`}; provision --project ${dir} -i lab --check\n`);
      setCode(EXIT.OK);
    });
}
