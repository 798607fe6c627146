import { existsSync } from 'node:fs';
import { quote, sh } from '../../util/quote.js';
import { z } from 'zod';
import { defineRole, problemIf, withRules } from '../define.js';
import { acmeIssuer, GROUPS, SHARED_DEFAULTS } from '../shared.js';
import { oneOf, pick, shared, shown, text, wholeNumber } from '../vars.js';
import { acmeChallengeAddress, ACME_CHALLENGE_PORT, haproxyCertPath, HAPROXY_CERT_DIR } from '../haproxy/index.js';
import { apt, command, copy, file, peerFile, service, template } from '../../modules/tasks.js';
import { CERTIFICATE_METRICS_SCRIPT } from '../monitoring/certificates.js';
import { issuerPushTasks, peerAcceptTasks, PUSH_KEY, PUSH_USER, pushPeers } from './push.js';

export const LETS_ENCRYPT = 'https://acme-v02.api.letsencrypt.org/directory';
export const LETS_ENCRYPT_STAGING = 'https://acme-staging-v02.api.letsencrypt.org/directory';
/** The ACME server's CA bundle on the load balancer, when it is not in the system's trust store. */
export const ACME_CA_PATH = '/etc/provision/acme-ca.pem';
export const DEPLOY_HOOK = '/usr/local/sbin/provision-haproxy-cert';
const CERTBOT_DROPIN = '/etc/systemd/system/certbot.service.d/provision-acme-ca.conf';
const DAEMON_RELOAD = 'systemd daemon-reload';
const RELOAD_HAPROXY = 'reload haproxy (certificate from the pair)';
/** How long a load balancer waits for the pair's issuer to obtain the certificate in the same run. */
const PEER_WAIT_SECONDS = 600;

/** The line certbot keeps in a lineage's renewal file naming the ACME server it came from. */
const serverLine = (url: string) => `server = ${url}`;

const PLACEHOLDER_DOMAIN = SHARED_DEFAULTS.domain;
const inAcmeMode = (v: { certificate_mode?: unknown }) => v.certificate_mode === 'acme';

const vars = withRules(
  z.object({
    domain: shared('domain', "The certificate's name."),
    ...pick('lb_virtual_ip', 'ssh_port'),
    certificate_mode: oneOf(['acme', 'selfsigned'])
      .default('acme')
      .describe('`acme`: issued by the ACME CA; `selfsigned`: no task, HAProxy keeps the placeholder the haproxy role made (no public DNS, e.g. Vagrant).'),
    acme_directory_url: z
      .string()
      .default(LETS_ENCRYPT)
      .describe(`The ACME directory: Let's Encrypt production. Staging (untrusted certificates, high rate limits — use it while trying things): \`${LETS_ENCRYPT_STAGING}\`.`),
    acme_ca_bundle: text(() => true, 'a file path on the control machine, or "" for the system trust store', 'file path')
      .default('')
      .describe("A CA bundle file **on the control machine** for an ACME server the system does not trust (the lab's Pebble); `\"\"`: the system trust store."),
    acme_email: z.string().default('').describe("The ACME account's contact address (expiry notices). Required with `certificate_mode: acme`."),
    certificate_alert_days: wholeNumber(1, 60, 'a whole number of days from 1 to 60')
      .default(14)
      .describe(
        'A converge (and `provision drift`, which reports it) checks that the served certificate ends in more than this many days and that the last renewal did not fail; ' +
          'when not, the converge runs the renewal now.',
      ),
    acme_key_type: oneOf(['ecdsa', 'rsa']).default('ecdsa').describe('Key type of the certificate: `ecdsa` (P-256, smaller and faster) or `rsa` (2048).'),
  }),
  [
    {
      says: 'With `certificate_mode: acme`, `acme_directory_url` is an https:// URL.',
      check: (v) =>
        problemIf(inAcmeMode(v) && !(typeof v.acme_directory_url === 'string' && /^https:\/\/[^\s/]+(\/\S*)?$/.test(v.acme_directory_url)), 'acme_directory_url', `an https:// URL of an ACME directory, got ${shown(v.acme_directory_url)}`),
    },
    {
      says: 'With `certificate_mode: acme`, `acme_email` is an email address.',
      check: (v) =>
        problemIf(inAcmeMode(v) && !(typeof v.acme_email === 'string' && /^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(v.acme_email)), 'acme_email', "the ACME account's contact address (needed with certificate_mode: acme)"),
    },
    {
      says: 'With `certificate_mode: acme`, a non-empty `acme_ca_bundle` exists on the control machine.',
      check: (v) =>
        problemIf(inAcmeMode(v) && typeof v.acme_ca_bundle === 'string' && v.acme_ca_bundle !== '' && !existsSync(v.acme_ca_bundle), 'acme_ca_bundle', `${v.acme_ca_bundle} does not exist on the control machine`),
    },
    {
      says: `With \`certificate_mode: acme\`, \`domain\` is not the placeholder \`${PLACEHOLDER_DOMAIN}\` (an ACME CA will not issue for it).`,
      check: (v) => problemIf(inAcmeMode(v) && v.domain === PLACEHOLDER_DOMAIN, 'domain', `still the placeholder ${PLACEHOLDER_DOMAIN}; an ACME CA will not issue for it`),
    },
  ],
);

/**
 * The certificate watched: ok while the served certificate ends in more than `days` days and the
 * renewal service's last run did not fail (or while there is none yet: the task before obtains it). Otherwise a converge renews now (what the timer runs, with
 * its unit's environment), and `provision drift` reports the task by its name: the alert without a
 * monitoring server.
 */
export function watchTask(domain: string, pem: string, days: number) {
  const seconds = days * 86_400;
  const fresh = sh`openssl x509 -checkend ${seconds} -noout -in ${pem}` + ' >/dev/null';
  return command(`certificate for ${domain} ends in more than ${days} days and its renewal is not failing`, {
    cmd: [
      'set -e',
      'env $(systemctl show -p Environment --value certbot.service) certbot renew --no-random-sleep-on-renew -q',
      'systemctl reset-failed certbot.service 2>/dev/null || true',
      `${fresh} || { echo ${quote(`the certificate for ${domain} still ends within ${days} days after certbot renew`)} >&2; exit 1; }`,
    ].join('\n'),
    // No certificate yet: the task before this one obtains it (a plan made before the first run must
    // not predict a renewal that the run, once the certificate exists, does not make).
    unless: `[ ! -e ${quote(pem)} ] || { ${fresh} && ! systemctl is-failed --quiet certbot.service; }`,
    timeout: 300,
  });
}

export const role = defineRole({
  name: 'certificates',
  description:
    "The site's certificate on the load balancers, from an ACME CA (Let's Encrypt by default) over **http-01 through HAProxy**. " +
    "Runs after the `haproxy` role on the same host (HAProxy must already forward `/.well-known/acme-challenge/` to `127.0.0.1:8888`). " +
    "A deploy hook builds HAProxy's PEM and reloads it; the certbot timer renews. `certificate_mode: selfsigned` keeps the placeholder " +
    'the haproxy role made (no public DNS, e.g. Vagrant). With a load-balancer pair (`lb_virtual_ip`) the first load balancer obtains it and its ' +
    'deploy hook pushes every renewal to the others at once over SSH, with a key whose only command (`accept-certificate`) checks the ' +
    'certificate before it installs it; a converge copies it too (docs/edge.md).',
  vars,

  tasks(ctx) {
    const v = ctx.vars;
    const domain = v.domain;
    if (v.certificate_mode !== 'acme') return []; // the haproxy role's self-signed placeholder is the certificate
    const issuer = acmeIssuer(ctx, v.lb_virtual_ip);
    const pair = issuer ? ctx.hostsIn(GROUPS.loadbalancers) : [];
    if (issuer && issuer.name !== ctx.host.name) {
      // The pair's other load balancers serve the certificate the issuer obtained (one ACME order,
      // one renewal): its deploy hook pushes a renewal here at once (push.ts); a converge copies it
      // through the control machine too (the first one, and after a push that failed).
      const issuerLive = `/etc/letsencrypt/live/${domain}`;
      return [
        ...peerAcceptTasks(ctx, issuer, { domain, certPath: haproxyCertPath(domain), metricsScript: CERTIFICATE_METRICS_SCRIPT }),
        peerFile(
          `certificate for ${domain} from ${issuer.name} (obtained once for the pair)`,
          { from_host: issuer.name, sources: [`${issuerLive}/fullchain.pem`, `${issuerLive}/privkey.pem`], dest: haproxyCertPath(domain), mode: '0600', wait_seconds: PEER_WAIT_SECONDS },
          { notify: RELOAD_HAPROXY },
        ),
      ];
    }
    const challengeAddress = acmeChallengeAddress(ctx, v.lb_virtual_ip);
    const url = v.acme_directory_url;
    const bundle = v.acme_ca_bundle;
    const env = bundle ? `REQUESTS_CA_BUNDLE=${ACME_CA_PATH} ` : '';
    const renewal = `/etc/letsencrypt/renewal/${domain}.conf`;
    const live = `/etc/letsencrypt/live/${domain}`;
    const keyType = v.acme_key_type;
    // HAProxy forwards the challenge only with its current config: a config changed earlier in this
    // play is reloaded by its handler at the end of the play, too late for the challenge.
    const issue = [
      'set -e',
      'systemctl reload-or-restart haproxy',
      `for i in $(seq 1 20); do ss -Hltn 'sport = :80' | grep -q . && break; sleep 0.5; done`,
      env +
        sh`certbot certonly --standalone --http-01-address ${challengeAddress} --http-01-port ${ACME_CHALLENGE_PORT}` +
        sh` --server ${url} --cert-name ${domain} -d ${domain} --agree-tos -m ${v.acme_email} --non-interactive` +
        sh` --key-type ${keyType} --force-renewal --deploy-hook ${DEPLOY_HOOK}`,
    ].join('\n');
    // Issued from this directory with this key type and present: a second run asks nothing; a new
    // acme_directory_url (or acme_key_type) fails this and re-issues.
    const issued =
      sh`grep -qxF ${serverLine(url)} ${renewal}` + ' && ' + sh`grep -qxF ${`key_type = ${keyType}`} ${renewal}` + ' && ' + sh`test -s ${live + '/fullchain.pem'}` + ' && ' + sh`test -s ${live + '/privkey.pem'}`;
    const pem = haproxyCertPath(domain);
    const deployed = sh`cat ${live + '/fullchain.pem'} ${live + '/privkey.pem'} | cmp -s - ${pem}`;
    return [
      apt('install certbot', { packages: ['certbot', 'openssl'] }),
      bundle
        ? copy('ACME CA bundle', { src: bundle, dest: ACME_CA_PATH, mode: '0644', make_parents: true })
        : file('no ACME CA bundle (system trust)', { path: ACME_CA_PATH, state: 'absent' }),
      // Before the first certificate: its deploy hook already pushes (a peer not ready yet gets it from the converge).
      ...(issuer ? issuerPushTasks(issuer, pair) : []),
      template('deploy hook: HAProxy PEM from the issued certificate', {
        src: ctx.file('templates/deploy-hook.sh.njk'),
        dest: DEPLOY_HOOK,
        mode: '0755',
        vars: {
          cert_dir: HAPROXY_CERT_DIR,
          metrics_script: CERTIFICATE_METRICS_SCRIPT,
          push_peers: issuer ? pushPeers(issuer, pair) : [],
          push_key: PUSH_KEY,
          push_user: PUSH_USER,
          ssh_port: v.ssh_port,
        },
        validate: 'sh -n %s',
      }),
      command(`certificate for ${domain} from ${url}`, { cmd: issue, unless: issued, timeout: 300 }),
      // A certificate issued but never deployed (hook failed, PEM replaced by hand): deploy it again.
      command(`HAProxy serves the issued certificate for ${domain}`, {
        cmd: `RENEWED_LINEAGE=${quote(live)} ${DEPLOY_HOOK}`,
        onlyif: sh`test -s ${live + '/fullchain.pem'}`,
        unless: deployed,
      }),
      bundle
        ? copy(
            'renewals trust the ACME CA bundle',
            { content: `# Managed by provision (certificates role).\n[Service]\nEnvironment=REQUESTS_CA_BUNDLE=${ACME_CA_PATH}\n`, dest: CERTBOT_DROPIN, mode: '0644', make_parents: true },
            { notify: DAEMON_RELOAD },
          )
        : file('no ACME CA drop-in for renewals', { path: CERTBOT_DROPIN, state: 'absent' }, { notify: DAEMON_RELOAD }),
      service('certbot renewal timer', { name: 'certbot.timer', state: 'started', enabled: true }),
      watchTask(domain, pem, v.certificate_alert_days),
    ];
  },

  handlers() {
    return [command(DAEMON_RELOAD, { cmd: 'systemctl daemon-reload' }), service(RELOAD_HAPROXY, { name: 'haproxy', state: 'reloaded' })];
  },
});
