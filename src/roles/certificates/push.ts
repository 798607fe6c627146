import type { Host } from '../../inventory/index.js';
import type { Task } from '../../modules/index.js';
import { apt, command, copy, file, peerFile, template, user } from '../../modules/tasks.js';
import { sh } from '../../util/quote.js';
import { HAPROXY_CONFIG } from '../haproxy/index.js';
import { privateAddress } from '../shared.js';
import type { RoleContext } from '../types.js';

/*
 * A renewal reaches the pair at once: the issuer's deploy hook pushes the new PEM to each peer over
 * SSH. The trust is made by the converge, through the control machine only:
 * - the issuer makes a key for this only (ed25519, 0600 root, never leaves it); each peer's
 *   authorized_keys for a system user of its own gets its public half, with
 *   `restrict,from="<issuer's private address>",command="<accept-certificate>"`: that key can do one
 *   thing, from one address;
 * - each peer's sshd host key is pinned on the issuer (a known_hosts file per peer): no first-use trust;
 * - the forced command checks the PEM and installs it as root through one sudoers line for that file.
 */

export const ACCEPT_CERTIFICATE = '/usr/local/lib/provision/accept-certificate';
export const PUSH_USER = 'provision-cert';
const PUSH_HOME = '/var/lib/provision-cert';
const PUSH_DIR = '/etc/provision/certificate-push';
export const PUSH_KEY = `${PUSH_DIR}/id_ed25519`;
const SUDOERS = '/etc/sudoers.d/provision-accept-certificate';
const HOST_KEY = '/etc/ssh/ssh_host_ed25519_key.pub';
/** A chain and an EC or RSA key are 3-8 KB: anything much larger is not a certificate. */
export const ACCEPT_MAX_BYTES = 65_536;
/** How long a peer waits for the issuer's push key in the same run (the issuer makes it early in its role). */
const KEY_WAIT_SECONDS = 300;

export interface PushPeer {
  name: string;
  address: string;
  known_hosts: string;
}

export const knownHostsFor = (peer: Host) => `${PUSH_DIR}/known_hosts.${peer.name}`;

/** The authorized_keys options of the push key on a peer: one command, from the issuer only. */
export function pushKeyOptions(issuer: Host): string {
  return `restrict,from="${privateAddress(issuer)}",command="${ACCEPT_CERTIFICATE}" `;
}

export function pushPeers(issuer: Host, pair: Host[]): PushPeer[] {
  return pair.filter((h) => h.name !== issuer.name).map((h) => ({ name: h.name, address: privateAddress(h), known_hosts: knownHostsFor(h) }));
}

/** On the issuer: the push key, and each peer's host key pinned (read from the peer by the control machine). */
export function issuerPushTasks(issuer: Host, pair: Host[]): Task[] {
  const peers = pair.filter((h) => h.name !== issuer.name);
  return [
    apt('install the SSH client (certificate push)', { packages: ['openssh-client'] }),
    file('certificate push folder', { path: PUSH_DIR, state: 'directory', mode: '0700', owner: 'root', group: 'root' }),
    command('certificate push key (made here, never leaves this host)', {
      cmd: sh`ssh-keygen -q -t ed25519 -N '' -C ${`provision certificate push from ${issuer.name}`} -f ${PUSH_KEY}`,
      creates: PUSH_KEY,
    }),
    ...peers.map((peer) =>
      peerFile(`${peer.name}'s SSH host key pinned for the certificate push`, {
        from_host: peer.name,
        sources: [HOST_KEY],
        dest: knownHostsFor(peer),
        prefix: `${privateAddress(peer)} `,
        mode: '0600',
      }),
    ),
  ];
}

/** On a peer: the user the push key logs in as, the forced command, its sudoers line, the key itself. */
export function peerAcceptTasks(ctx: RoleContext, issuer: Host, script: { domain: string; certPath: string; metricsScript: string }): Task[] {
  const keysDir = `${PUSH_HOME}/.ssh`;
  const sudoers = `# Managed by provision (certificates role): the certificate push from ${issuer.name} installs as root through this one file.\n${PUSH_USER} ALL=(root) NOPASSWD: ${ACCEPT_CERTIFICATE} ""\n`;
  return [
    apt('install sudo and the SSH server (certificate push)', { packages: ['sudo', 'openssh-server', 'openssl'] }),
    user(`${PUSH_USER}: the user the certificate push logs in as`, { name: PUSH_USER, system: true, home: PUSH_HOME, shell: '/bin/sh', create_home: false }),
    // Not "!" (locked): sshd without PAM refuses keys of a locked account. "*" matches no password.
    command(`${PUSH_USER} has no password`, { cmd: sh`usermod -p '*' ${PUSH_USER}`, unless: sh`getent shadow ${PUSH_USER} | cut -d: -f2 | grep -qx ${'*'}` }),
    // Owned by root: the user cannot change its own keys (sshd accepts root-owned folders and files).
    file(`${PUSH_USER}'s home`, { path: PUSH_HOME, state: 'directory', mode: '0755', owner: 'root', group: 'root' }),
    file(`${PUSH_USER}'s .ssh`, { path: keysDir, state: 'directory', mode: '0755', owner: 'root', group: 'root' }),
    template('accept-certificate: the forced command of the certificate push', {
      src: ctx.file('templates/accept-certificate.sh.njk'),
      dest: ACCEPT_CERTIFICATE,
      mode: '0755',
      owner: 'root',
      group: 'root',
      make_parents: true,
      vars: {
        domain: script.domain,
        cert_path: script.certPath,
        haproxy_cfg: HAPROXY_CONFIG,
        max_bytes: ACCEPT_MAX_BYTES,
        self_path: ACCEPT_CERTIFICATE,
        push_user: PUSH_USER,
        metrics_script: script.metricsScript,
      },
      validate: 'sh -n %s',
    }),
    copy(`sudoers: ${PUSH_USER} runs accept-certificate only`, { content: sudoers, dest: SUDOERS, mode: '0440', owner: 'root', group: 'root', validate: 'visudo -cqf %s' }),
    peerFile(`certificate push key from ${issuer.name}: accept-certificate only, from ${privateAddress(issuer)} only`, {
      from_host: issuer.name,
      sources: [`${PUSH_KEY}.pub`],
      dest: `${keysDir}/authorized_keys`,
      prefix: pushKeyOptions(issuer),
      mode: '0644',
      wait_seconds: KEY_WAIT_SECONDS,
    }),
  ];
}
