/**
 * The fence around a failed primary: its database port closed by a firewall rule of our own, recorded
 * on the host, so that no client (nor a replica) reaches a server that may still believe it is the
 * writer; lifted by `provision db rejoin` once the server is a replica again.
 *
 * The rule is an iptables rule in INPUT, first, tagged with a comment: it takes precedence over ufw's
 * chains (which ufw reloads without touching rules it did not make), and it is found again by its
 * comment to be removed. TCP resets, not drops: clients learn at once that this server is gone and
 * try the next one. Established connections are cut too (the rule matches every packet to the port).
 * Loopback included: an application on the same host reaches the server by its private address.
 */
import { STATE_DIR } from '../host-paths.js';
import { quote } from '../util/quote.js';

/** Written on the fenced host: the rule and why it is there. */
export const FENCE_RECORD = `${STATE_DIR}/db-fence.json`;
export const FENCE_COMMENT = 'provision-db-fence';

export interface FenceRecord {
  port: number;
  rule: string;
  since: string;
  by: string;
}

function ruleArgs(port: number): string {
  return `INPUT -p tcp --dport ${port} -m comment --comment ${FENCE_COMMENT} -j REJECT --reject-with tcp-reset`;
}

/** The rule as it is inserted (recorded on the host, printed). */
export function fenceRule(port: number): string {
  return `iptables -I ${ruleArgs(port)}`;
}

/**
 * Shell (POSIX) that closes the port (once: a rule already present is kept) and writes the record.
 * Exits 3 when iptables is not installed: the caller reports the host as not fenceable.
 */
export function fenceScript(port: number, record: FenceRecord): string {
  const args = ruleArgs(port);
  return [
    'command -v iptables >/dev/null 2>&1 || { echo "iptables is not installed" >&2; exit 3; }',
    `iptables -C ${args} 2>/dev/null || iptables -I ${args}`,
    // IPv6 as well where it is there; a host without ip6tables has no v6 path to close.
    `if command -v ip6tables >/dev/null 2>&1; then ip6tables -C ${args} 2>/dev/null || ip6tables -I ${args} 2>/dev/null || true; fi`,
    `mkdir -p ${quote(STATE_DIR)}`,
    `printf '%s\\n' ${quote(JSON.stringify(record))} > ${quote(FENCE_RECORD)}.tmp && mv -f ${quote(FENCE_RECORD)}.tmp ${quote(FENCE_RECORD)}`,
  ].join('\n');
}

/**
 * Shell that removes every copy of the rule for `port` (bounded) and the record; prints `lifted` when a
 * rule or a record was there. A host where iptables is missing has no rule of ours.
 */
export function unfenceScript(port: number): string {
  const args = ruleArgs(port);
  return [
    'found=',
    'if command -v iptables >/dev/null 2>&1; then',
    `  i=0; while [ $i -lt 20 ] && iptables -D ${args} 2>/dev/null; do found=1; i=$((i+1)); done`,
    `  if command -v ip6tables >/dev/null 2>&1; then i=0; while [ $i -lt 20 ] && ip6tables -D ${args} 2>/dev/null; do i=$((i+1)); done; fi`,
    'fi',
    `if [ -e ${quote(FENCE_RECORD)} ]; then found=1; rm -f ${quote(FENCE_RECORD)}; fi`,
    'if [ -n "$found" ]; then echo lifted; fi',
  ].join('\n');
}
