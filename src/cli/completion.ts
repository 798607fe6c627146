import type { Command } from 'commander';
import { InputError } from '../util/errors.js';
import { HELP_TOPICS } from './help-topics.js';

const optionWords = (cmd: Command) => cmd.options.flatMap((o) => [o.long, o.short].filter((x): x is string => Boolean(x)));

/** Words a shell may offer: after a command, its options; after `help`, topics and commands; else commands and the run's options. */
function words(program: Command): { commands: string[]; byCommand: Array<[string, string[]]>; top: string[] } {
  const commands = program.commands.map((c) => c.name());
  const byCommand = program.commands.map((c): [string, string[]] => [c.name(), c.name() === 'help' ? [...new Set([...Object.keys(HELP_TOPICS), ...commands.filter((n) => n !== 'help')])] : ['--help', ...optionWords(c)]]);
  return { commands, byCommand, top: [...commands, '--help', ...optionWords(program)] };
}

/** One word list as a single-quoted shell word (every word is ours: letters, digits, - and ,). */
const shellWords = (list: string[]) => `'${list.join(' ')}'`;

function bashScript(program: Command): string {
  const w = words(program);
  return `# provision completion for bash: add to ~/.bashrc
#   eval "$(provision completion bash)"
_provision_complete() {
  local cur=\${COMP_WORDS[COMP_CWORD]} cmd='' i
  for ((i = 1; i < COMP_CWORD; i++)); do
    case " ${w.commands.join(' ')} " in *" \${COMP_WORDS[i]} "*) cmd=\${COMP_WORDS[i]}; break ;; esac
  done
  local words
  case $cmd in
${w.byCommand.map(([c, list]) => `    ${c}) words=${shellWords(list)} ;;`).join('\n')}
    *) words=${shellWords(w.top)} ;;
  esac
  COMPREPLY=($(compgen -W "$words" -- "$cur"))
}
complete -o default -F _provision_complete provision
`;
}

/** zsh runs bash's completion functions through bashcompinit (part of zsh). */
function zshScript(program: Command): string {
  return `# provision completion for zsh: add to ~/.zshrc
#   eval "$(provision completion zsh)"
autoload -U +X compinit && compinit
autoload -U +X bashcompinit && bashcompinit
${bashScript(program).split('\n').slice(2).join('\n')}`;
}

export const COMPLETION_SHELLS = ['bash', 'zsh'] as const;

export function completionScript(program: Command, shell: string): string {
  if (shell === 'bash') return bashScript(program);
  if (shell === 'zsh') return zshScript(program);
  throw new InputError(`completion: no script for shell "${shell}"`, `shells: ${COMPLETION_SHELLS.join(', ')}`);
}
