import { z } from 'zod';
import { defineRole, problemIf, withRules } from '../define.js';
import { GROUPS, privateAddress } from '../shared.js';
import { pick, text, wholeNumber } from '../vars.js';
import { Secret } from '../../util/secrets.js';
import { apt, command, service, template } from '../../modules/tasks.js';
import { quote, sh } from '../../util/quote.js';

const RELOAD = 'reload keepalived';
export const KEEPALIVED_CONF = '/etc/keepalived/keepalived.conf';
/** VRRPv2's simple password: keepalived uses only its first 8 characters. */
const AUTH_PASS_MAX = 8;

/**
 * True when some host holds address (bash's /dev/tcp: no client tool needed): a connection to the
 * port, or a refusal, is an answer from the holder; silence or "no route" means nobody holds it yet.
 * (HAProxy may not listen yet: its new config is loaded by a handler at the end of the play.)
 */
function held(address: string, port: number): string {
  return `out=$(timeout 2 bash -c ${quote(`exec 3<>/dev/tcp/${address}/${port}`)} 2>&1) || case "$out" in *refused*) true ;; *) false ;; esac`;
}

/** Priorities by place in the group: the first load balancer is preferred when both start at once. */
export function vrrpPriority(index: number): number {
  return Math.max(1, 150 - 50 * index);
}

const vars = withRules(
  z.object({
    ...pick('lb_virtual_ip', 'http_port', 'https_port'),
    keepalived_auth_pass: z
      .custom<Secret>((v) => v instanceof Secret, { error: 'must be a !secret (keepalived_auth_pass: !secret keepalived_auth_pass), not a value in clear' })
      // null: "none" written out (the documented example inventory lists every var, with one load balancer).
      .nullable()
      .optional()
      .describe('The pair\'s VRRP password (a `!secret`, 1-8 characters of letters, digits, `.`, `_` or `-`): required with `lb_virtual_ip`.'),
    keepalived_interface: text(/^[A-Za-z0-9_.:-]{1,15}$/, 'a network interface name like eth0', 'interface name')
      .default('eth0')
      .describe('The interface that carries the private address and gets the floating address.'),
    keepalived_router_id: wholeNumber(1, 255, 'a whole number from 1 to 255').default(51).describe('VRRP router id: unique per pair on one network.'),
    keepalived_advert_int: wholeNumber(1, 255, 'a whole number of seconds from 1 to 255')
      .default(1)
      .describe('Seconds between adverts: a host that dies is replaced after about 3 of them (docs/edge.md has the measured figures).'),
    keepalived_instance: text(/^[A-Za-z0-9_]{1,32}$/, 'letters, digits and _', 'name').default('edge').describe('Name of the VRRP instance (in logs).'),
  }),
  [
    {
      says: 'With `lb_virtual_ip`, `keepalived_auth_pass` is a `!secret` of 1-8 letters, digits, `.`, `_` or `-`.',
      check: (v) => {
        if (!v.lb_virtual_ip) return [];
        const pw = v.keepalived_auth_pass;
        if (!(pw instanceof Secret)) return problemIf(true, 'keepalived_auth_pass', 'required with lb_virtual_ip, as a !secret (keepalived_auth_pass: !secret keepalived_auth_pass)');
        return problemIf(!/^[A-Za-z0-9._-]{1,8}$/.test(pw.reveal()), 'keepalived_auth_pass', `1-${AUTH_PASS_MAX} letters, digits, ".", "_" or "-" (VRRPv2 keeps only 8 characters)`);
      },
    },
  ],
);

export const role = defineRole({
  name: 'keepalived',
  description:
    'The load-balancer pair\'s floating address (`lb_virtual_ip`, where DNS points) with keepalived (Debian\'s package), on the hosts of ' +
    '`loadbalancers` (play "Load balancer with TLS", after `haproxy` and `certificates`): VRRPv2 unicast between the pair\'s private addresses, ' +
    'a password, the address moved when HAProxy stops (not only when the host does), both sides BACKUP with `nopreempt` so a load balancer that ' +
    'returns does not take the address back. The firewall role lets VRRP pass between the pair only. Without `lb_virtual_ip` it does nothing ' +
    '(one load balancer). docs/edge.md.',
  vars,

  tasks(ctx) {
    const v = ctx.vars;
    if (!v.lb_virtual_ip) return [];
    const pair = ctx.hostsIn(GROUPS.loadbalancers);
    const index = pair.findIndex((h) => h.name === ctx.host.name);
    const selfIp = privateAddress(ctx.host);
    const address = v.lb_virtual_ip.split('/')[0]!;
    return [
      apt('install keepalived', { packages: ['keepalived'] }),
      template(
        'keepalived.conf',
        {
          src: ctx.file('templates/keepalived.conf.njk'),
          dest: KEEPALIVED_CONF,
          mode: '0600',
          owner: 'root',
          group: 'root',
          sensitive: true,
          vars: {
            ...v,
            pair: pair.map((h) => h.name),
            priority: vrrpPriority(Math.max(0, index)),
            self_ip: selfIp,
            peers: pair.map(privateAddress).filter((a) => a !== selfIp),
          },
          validate: "keepalived --config-test -f %s",
        },
        { notify: RELOAD },
      ),
      // The address must only come to a load balancer that serves: HAProxy's new config is otherwise
      // loaded by its handler at the end of the play, after the ACME challenge came in through the address.
      command('HAProxy serves its configuration before the address can come here', {
        cmd: 'systemctl reload-or-restart haproxy',
        unless: sh`ss -Hltn ${`sport = :${v.https_port}`} | grep -q .`,
      }),
      service('keepalived running and enabled', { name: 'keepalived', state: 'started', enabled: true }),
      // The first election takes a few adverts: the ACME challenge (certificates role, next) must find the address held.
      command(`the floating address ${address} is held`, { cmd: `for i in $(seq 1 40); do { ${held(address, v.http_port)}; } && exit 0; sleep 0.5; done; exit 1`, unless: held(address, v.http_port) }),
    ];
  },

  handlers() {
    return [service(RELOAD, { name: 'keepalived', state: 'reloaded' })];
  },
});
