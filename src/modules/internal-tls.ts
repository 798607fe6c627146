import { z } from 'zod';
import { controlPath, defineModule, probe, type Change, type Command, type Probe } from './contract.js';
import { currentFile, fileState } from './lib/file-state.js';
import { setAttributesCommand, writeFileCommand } from './lib/write-file.js';
import { sh } from '../util/quote.js';
import { decideLeaf } from '../pki/decide.js';
import { issueLeaf } from '../pki/issue.js';
import { caBundle, ensureCa, loadCa, type Ca } from '../pki/store.js';

/*
 * internal_tls: a host's certificate from the inventory's internal CA (on the control machine), and
 * the CA bundle its peers verify with.
 *
 * The certificate and its key go into ONE file (certificate first, then key; 0600 root): nginx and
 * HAProxy both read a key from the certificate's file, and one atomic rename means a run that dies
 * half-way can never leave a new key beside an old certificate. The probe reads only the
 * certificate part of that file: the key never leaves the host once it is there.
 *
 * The decision is decideLeaf's (decide.ts): keep a good certificate untouched (no key, no signature),
 * issue when it is missing, not ours, for other names, or within `renew_before_days` of its end.
 * Check mode loads the CA without making it; a real run makes it on first use (ensureCa, locked).
 */

export const LEAF_FILE_MODE = '600';
export const CA_FILE_MODE = '644';

export interface LeafFileState {
  exists: boolean;
  /** Octal mode and owner:group of the file, when it exists. */
  mode?: string;
  owner?: string;
  /** The certificate block(s) of the file, without the key. */
  certPem?: string;
}

/** The certificate part of a combined PEM on the host, with its mode and owner; never the key. */
export function leafFileState(path: string): Probe<LeafFileState> {
  const script = [
    sh`if [ -f ${path} ]; then`,
    sh`  stat -c '%a %U:%G' -- ${path}`,
    sh`  sed -n '/^-----BEGIN CERTIFICATE-----$/,/^-----END CERTIFICATE-----$/p' -- ${path}`,
    'else echo absent; fi',
  ].join('\n');
  return probe(`internal_tls:${path}`, script, parseLeafFileState);
}

export function parseLeafFileState(r: { code: number; stdout: string } | undefined): LeafFileState {
  if (!r || r.code !== 0) return { exists: false };
  const [first = '', ...rest] = r.stdout.split('\n');
  if (first.trim() === 'absent') return { exists: false };
  const [mode, owner] = first.trim().split(' ');
  const certPem = rest.join('\n').trim();
  return { exists: true, mode, owner, ...(certPem ? { certPem: certPem + '\n' } : {}) };
}

const schema = z
  .strictObject({
    /** The inventory's CA folder (pkiDirFor(inventory)), on the control machine. */
    pki_dir: controlPath(z.string().min(1)),
    /** Shown in a new CA's name: the inventory's name. */
    ca_label: z.string().optional(),
    /** Where the bundle of every CA peers must trust now goes on the host (0644). */
    ca_file: z.string().startsWith('/').optional(),
    /** Where this host's certificate and key go on the host, in one 0600 file. */
    cert_file: z.string().startsWith('/').optional(),
    /**
     * Owner and group of cert_file: root, unless the server that reads its key runs as another
     * user and opens the file itself (MariaDB's mariadbd runs as mysql). Still 0600: that user only.
     */
    cert_owner: z.string().regex(/^[a-z_][a-z0-9_-]*$/, 'a user name').default('root'),
    cert_group: z.string().regex(/^[a-z_][a-z0-9_-]*$/, 'a group name').default('root'),
    /** DNS names and addresses of the certificate (the first is its CN). */
    names: z.array(z.string().min(1)).default([]),
    usage: z.enum(['server', 'client', 'both']).default('server'),
    /** Re-issue when the certificate ends within this many days. */
    renew_before_days: z.number().int().min(1).max(365).default(30),
  })
  .refine((p) => p.ca_file !== undefined || p.cert_file !== undefined, { error: 'needs ca_file, cert_file or both' })
  .refine((p) => p.cert_file === undefined || p.names.length > 0, { error: 'cert_file needs names (the host\'s name and address)', path: ['names'] });

export type InternalTlsParams = z.input<typeof schema>;

async function caFor(p: z.output<typeof schema>, check: boolean): Promise<Ca | undefined> {
  return check ? loadCa(p.pki_dir) : ensureCa(p.pki_dir, p.ca_label ? { label: p.ca_label } : {});
}

export const internalTlsModule = defineModule({
  name: 'internal_tls',
  schema,
  probes: (p) => [...(p.ca_file ? [fileState(p.ca_file)] : []), ...(p.cert_file ? [leafFileState(p.cert_file)] : [])],
  async plan(p, ctx) {
    const ca = await caFor(p, ctx.check);
    const changes: Change[] = [];
    const commands: Command[] = [];
    const written = new Map<string, Buffer>();
    const notes: string[] = [];

    if (p.ca_file) {
      const want = ca ? caBundle(ca) : undefined;
      const now = currentFile(ctx, p.ca_file);
      const have = now.type === 'file' && now.content !== undefined ? now.content.toString('utf8') : undefined;
      if (want === undefined || have !== want) {
        changes.push({ kind: 'certificate', target: p.ca_file, action: now.type === 'absent' ? 'create' : 'update content', before: have, after: want ?? '(the internal CA, made by the first real run)\n' });
        if (want !== undefined) {
          commands.push(writeFileCommand(p.ca_file, want, { mode: CA_FILE_MODE, owner: 'root', group: 'root', makeParents: true }));
          written.set(p.ca_file, Buffer.from(want));
        }
      } else if (now.mode !== CA_FILE_MODE) {
        changes.push({ kind: 'file', target: p.ca_file, action: `mode ${now.mode} → ${CA_FILE_MODE}` });
        commands.push(setAttributesCommand(p.ca_file, 'file', { mode: CA_FILE_MODE }));
      }
    }

    if (p.cert_file) {
      const leaf = ctx.read(leafFileState(p.cert_file));
      const d = decideLeaf({ currentCertPem: leaf.certPem ?? null, wanted: { names: p.names, usage: p.usage }, ca, now: new Date(), renewBeforeDays: p.renew_before_days });
      if (d.action === 'issue') {
        changes.push({ kind: 'certificate', target: p.cert_file, action: `issue (${d.reason})`, sensitive: true });
        if (!ctx.check) {
          const issued = await issueLeaf(ca!, { names: p.names, usage: p.usage });
          const content = issued.certPem.trimEnd() + '\n' + issued.keyPem.reveal().trimEnd() + '\n';
          commands.push(writeFileCommand(p.cert_file, content, { mode: LEAF_FILE_MODE, owner: p.cert_owner, group: p.cert_group, makeParents: true }));
          notes.push(`issued serial ${issued.serial}, valid until ${issued.notAfter.toISOString()}`);
        }
        written.set(p.cert_file, Buffer.from('(certificate and key)'));
      } else {
        if (d.warning) notes.push(d.warning);
        const owner = `${p.cert_owner}:${p.cert_group}`;
        if (leaf.mode !== LEAF_FILE_MODE || leaf.owner !== owner) {
          changes.push({ kind: 'file', target: p.cert_file, action: `mode/owner ${leaf.mode} ${leaf.owner} → ${LEAF_FILE_MODE} ${owner}` });
          commands.push(setAttributesCommand(p.cert_file, 'file', { mode: LEAF_FILE_MODE, owner: p.cert_owner, group: p.cert_group }));
        }
      }
    }

    return {
      changes,
      commands,
      ...(notes.length ? { note: notes.join('; ') } : {}),
      predict: (state) => {
        for (const [path, bytes] of written) state.files.set(path, bytes);
      },
    };
  },
});
