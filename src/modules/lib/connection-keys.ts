/**
 * The public keys this run logs in with, and the keys an authorized_keys text grants: so that
 * replacing a user's keys cannot take away the key the next run needs to get in.
 */
import { readFileSync } from 'node:fs';
import ssh2, { type ParsedKey } from 'ssh2';
import type { Host } from '../../inventory/index.js';
import { fingerprint } from '../../transport/hostkeys/index.js';

// ssh2 is CommonJS: Node's ESM loader sees only some of its exports by name.
const { OpenSSHAgent, utils } = ssh2;

export interface RunKey {
  /** The public key in SSH wire format (what authorized_keys carries in base64). */
  blob: Buffer;
  /** "SHA256:…", as ssh-keygen -l prints it. */
  fingerprint: string;
  /** Where the run has it: "identity file PATH" or "ssh-agent". */
  source: string;
}

function runKey(key: ParsedKey, source: string): RunKey {
  const blob = key.getPublicSSH();
  return { blob, fingerprint: fingerprint(blob), source };
}

/** The identity file's public key: from the private key, or from FILE.pub when the private key is encrypted. */
function identityKey(file: string): RunKey | undefined {
  for (const candidate of [file, `${file}.pub`]) {
    let data: Buffer;
    try {
      data = readFileSync(candidate);
    } catch {
      continue;
    }
    const parsed = utils.parseKey(data);
    const key = Array.isArray(parsed) ? (parsed[0] as ParsedKey | undefined) : parsed;
    if (key && !(key instanceof Error)) return runKey(key, `identity file ${file}`);
  }
  return undefined;
}

function agentKeys(socket: string): Promise<RunKey[]> {
  return new Promise((resolve) => {
    // An agent that cannot be asked now offers nothing to compare with (the connection then used the identity file).
    new OpenSSHAgent(socket).getIdentities((err, keys) =>
      resolve(err || !keys ? [] : keys.flatMap((k) => ('getPublicSSH' in k ? [runKey(k, 'ssh-agent')] : []))),
    );
  });
}

/**
 * Every public key the run may have logged in to the host with. ssh2 does not say which key the
 * server accepted, so with an agent every key it holds counts: a replacement of authorized_keys is
 * a lockout only when it keeps none of them (the next run offers them all, in the same order).
 */
export async function connectionKeys(connection: Host['connection']): Promise<RunKey[]> {
  const keys: RunKey[] = [];
  if (connection.identityFile) {
    const k = identityKey(connection.identityFile);
    if (k) keys.push(k);
  }
  if (connection.agent) keys.push(...(await agentKeys(connection.agent)));
  return keys;
}

const KEY_TYPE = /^(ssh-(rsa|dss|ed25519)|ecdsa-sha2-nistp(256|384|521)|sk-(ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com)(-cert-v01@openssh\.com)?$/;

/** The options field of an authorized_keys line ends at the first blank outside double quotes. */
function skipOptions(line: string): string {
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i]!;
    if (ch === '\\' && quoted) i++;
    else if (ch === '"') quoted = !quoted;
    else if (!quoted && (ch === ' ' || ch === '\t')) return line.slice(i).trimStart();
  }
  return '';
}

/** The public keys (wire format) an authorized_keys text grants, options and comments skipped. */
export function authorizedKeyBlobs(text: string): Buffer[] {
  const out: Buffer[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    let fields = line.split(/\s+/);
    if (!KEY_TYPE.test(fields[0]!)) fields = skipOptions(line).split(/\s+/);
    if (fields.length >= 2 && KEY_TYPE.test(fields[0]!)) out.push(Buffer.from(fields[1]!, 'base64'));
  }
  return out;
}
