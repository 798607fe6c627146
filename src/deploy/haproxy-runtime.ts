import { HAPROXY_ADMIN_SOCKET, HAPROXY_WEB_BACKEND } from '../roles/haproxy/index.js';
import { sh } from '../util/quote.js';

/**
 * HAProxy's runtime API over its admin socket on a load balancer. socat when the host has it,
 * else python3 (Debian's haproxy needs neither; one of them is on every Debian/Ubuntu server image).
 * One line of commands, one connection: the API's non-interactive mode answers and closes.
 */
export function runtimeCommand(line: string, socket = HAPROXY_ADMIN_SOCKET): string {
  const py =
    'import socket,sys\n' +
    's=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(sys.argv[2].encode()+b"\\n")\n' +
    'sys.stdout.write(b"".join(iter(lambda: s.recv(65536), b"")).decode())';
  return (
    sh`if command -v socat >/dev/null 2>&1; then printf '%s\\n' ${line} | socat -t 5 - ${`UNIX-CONNECT:${socket}`}; ` +
    sh`elif command -v python3 >/dev/null 2>&1; then python3 -c ${py} ${socket} ${line}; ` +
    `else echo 'neither socat nor python3 to reach the HAProxy admin socket' >&2; exit 127; fi`
  );
}

export type ServerState = 'ready' | 'drain' | 'maint';

export function setStateLine(server: string, state: ServerState, backend = HAPROXY_WEB_BACKEND): string {
  if (!/^[A-Za-z0-9._-]+$/.test(server)) throw new Error(`not a HAProxy server name: ${server}`);
  return `set server ${backend}/${server} state ${state}`;
}

export const SHOW_STAT = 'show stat';

export interface ServerStat {
  /** Current sessions on the server. */
  scur: number;
  /** UP, DOWN, DRAIN, MAINT, "UP 1/3" (going down), "DOWN 1/2" (going up), no check… */
  status: string;
}

/**
 * `show stat` (CSV, its header line "# pxname,svname,…") → the servers by "backend/server". Columns
 * are found by the header's names, not by position: HAProxy versions add columns.
 */
export function parseShowStat(csv: string): Map<string, ServerStat> {
  const lines = csv.split('\n');
  const header = lines.find((l) => l.startsWith('# '));
  if (!header) throw new Error(`not the output of "show stat": ${csv.slice(0, 200)}`);
  const cols = header.slice(2).split(',');
  const at = (name: string) => {
    const i = cols.indexOf(name);
    if (i < 0) throw new Error(`"show stat" has no column ${name}`);
    return i;
  };
  const [px, sv, scur, status] = [at('pxname'), at('svname'), at('scur'), at('status')];
  const out = new Map<string, ServerStat>();
  for (const line of lines) {
    if (!line || line.startsWith('#')) continue;
    const f = line.split(',');
    if (f[sv] === 'FRONTEND' || f[sv] === 'BACKEND') continue;
    out.set(`${f[px]}/${f[sv]}`, { scur: Number(f[scur]) || 0, status: f[status] ?? '' });
  }
  return out;
}

/** A `set server` answers nothing when it worked; anything else is HAProxy's complaint. */
export function runtimeError(output: string): string | undefined {
  const t = output.trim();
  return t ? t : undefined;
}

/** Is this server taking traffic again (UP with every check passing)? */
export const isUp = (s: ServerStat | undefined): boolean => s?.status === 'UP';
