import { existsSync } from 'node:fs';
import { quote, sh } from '../../util/quote.js';
import type { RoleContext, RoleDef } from '../types.js';
import { SHARED_DEFAULTS, str } from '../shared.js';
import { checkHostname, checkOneOf } from '../checks.js';
import { ACME_CHALLENGE_ADDRESS, ACME_CHALLENGE_PORT, haproxyCertPath, HAPROXY_CERT_DIR } from '../haproxy/index.js';
import { apt, command, copy, file, service, template } from '../../modules/tasks.js';

export const LETS_ENCRYPT = 'https://acme-v02.api.letsencrypt.org/directory';
export const LETS_ENCRYPT_STAGING = 'https://acme-staging-v02.api.letsencrypt.org/directory';
/** The ACME server's CA bundle on the load balancer, when it is not in the system's trust store. */
export const ACME_CA_PATH = '/etc/provision/acme-ca.pem';
export const DEPLOY_HOOK = '/usr/local/sbin/provision-haproxy-cert';
const CERTBOT_DROPIN = '/etc/systemd/system/certbot.service.d/provision-acme-ca.conf';
const DAEMON_RELOAD = 'systemd daemon-reload';

/** The line certbot keeps in a lineage's renewal file naming the ACME server it came from. */
const serverLine = (url: string) => `server = ${url}`;

export const role: RoleDef = {
  name: 'certificates',
  description:
    'The site certificate on the load balancers: certbot asks the ACME CA (Let\'s Encrypt by default) over http-01, ' +
    'answered through HAProxy; a deploy hook builds HAProxy\'s PEM and reloads it; the certbot timer renews. ' +
    'certificate_mode: selfsigned keeps the placeholder the haproxy role made (no public DNS, e.g. Vagrant).',
  defaults: {
    domain: SHARED_DEFAULTS.domain,
    certificate_mode: 'acme',
    /** Let's Encrypt production; staging (untrusted certificates, generous limits) is LETS_ENCRYPT_STAGING. */
    acme_directory_url: LETS_ENCRYPT,
    /** A CA bundle file on the control machine for an ACME server the system does not trust (e.g. Pebble); "" = system trust. */
    acme_ca_bundle: '',
    /** The account's contact address (expiry notices). Required with certificate_mode: acme. */
    acme_email: '',
    /** Key type of the certificate: ecdsa (P-256, smaller and faster) or rsa (2048). */
    acme_key_type: 'ecdsa',
  },

  validate(vars) {
    const problems = [...checkHostname(vars, 'domain'), ...checkOneOf(vars, 'certificate_mode', ['acme', 'selfsigned']), ...checkOneOf(vars, 'acme_key_type', ['ecdsa', 'rsa'])];
    if (vars.certificate_mode !== 'acme') return problems;
    const url = vars.acme_directory_url;
    if (typeof url !== 'string' || !/^https:\/\/[^\s/]+(\/\S*)?$/.test(url)) problems.push(`acme_directory_url: an https:// URL of an ACME directory, got ${JSON.stringify(url)}`);
    if (typeof vars.acme_email !== 'string' || !/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(vars.acme_email)) {
      problems.push('acme_email: the ACME account\'s contact address (needed with certificate_mode: acme)');
    }
    const bundle = vars.acme_ca_bundle;
    if (typeof bundle !== 'string') problems.push('acme_ca_bundle: a file path on the control machine, or "" for the system trust store');
    else if (bundle !== '' && !existsSync(bundle)) problems.push(`acme_ca_bundle: ${bundle} does not exist on the control machine`);
    if (vars.domain === SHARED_DEFAULTS.domain) problems.push(`domain: still the placeholder ${SHARED_DEFAULTS.domain}; an ACME CA will not issue for it`);
    return problems;
  },

  tasks(ctx: RoleContext) {
    const v = ctx.vars;
    const domain = str(v, 'domain');
    if (v.certificate_mode !== 'acme') return []; // the haproxy role's self-signed placeholder is the certificate
    const url = str(v, 'acme_directory_url');
    const bundle = str(v, 'acme_ca_bundle');
    const env = bundle ? `REQUESTS_CA_BUNDLE=${ACME_CA_PATH} ` : '';
    const renewal = `/etc/letsencrypt/renewal/${domain}.conf`;
    const live = `/etc/letsencrypt/live/${domain}`;
    const keyType = str(v, 'acme_key_type');
    // HAProxy forwards the challenge only with its current config: a config changed earlier in this
    // play is reloaded by its handler at the end of the play, too late for the challenge.
    const issue = [
      'set -e',
      'systemctl reload-or-restart haproxy',
      `for i in $(seq 1 20); do ss -Hltn 'sport = :80' | grep -q . && break; sleep 0.5; done`,
      env +
        sh`certbot certonly --standalone --http-01-address ${ACME_CHALLENGE_ADDRESS} --http-01-port ${ACME_CHALLENGE_PORT}` +
        sh` --server ${url} --cert-name ${domain} -d ${domain} --agree-tos -m ${str(v, 'acme_email')} --non-interactive` +
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
      template('deploy hook: HAProxy PEM from the issued certificate', {
        src: ctx.file('templates/deploy-hook.sh.njk'),
        dest: DEPLOY_HOOK,
        mode: '0755',
        vars: { cert_dir: HAPROXY_CERT_DIR },
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
    ];
  },

  handlers() {
    return [command(DAEMON_RELOAD, { cmd: 'systemctl daemon-reload' })];
  },
};
