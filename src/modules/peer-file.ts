import { z } from 'zod';
import { sh } from '../util/quote.js';
import { ModuleError } from '../util/errors.js';
import { Secret } from '../util/secrets.js';
import { defineModule, type Change } from './contract.js';
import { attributeChanges, currentFile, fileState } from './lib/file-state.js';
import { setAttributesCommand, writeFileCommand } from './lib/write-file.js';

/*
 * peer_file: a file this host must hold exactly as another host of the inventory has it, copied
 * through the control machine over the run's own connections (no SSH between the hosts, no key of
 * one host on the other). The load-balancer pair's certificate: obtained once on one of them,
 * served by both.
 *
 * The source is read in plan (one command on the peer); it may not exist yet when the peer makes it
 * in the same play (hosts of a play run side by side): a real run then waits for it, bounded by
 * `wait_seconds`, and fails naming it. Its content is a Secret (masked wherever it could show) and
 * reaches this host on stdin.
 */

const schema = z.strictObject({
  /** The inventory host that holds the original. */
  from_host: z.string().min(1),
  /** Files on that host, concatenated in this order (a certificate chain, then its key). */
  sources: z.array(z.string().startsWith('/')).min(1),
  dest: z.string().startsWith('/'),
  mode: z.string().regex(/^0?[0-7]{3}$/).default('0600'),
  owner: z.string().default('root'),
  group: z.string().default('root'),
  /**
   * Text written before the copied content (the peer's public key made a line of authorized_keys or
   * known_hosts: options or the address the key is for). Part of what is compared.
   */
  prefix: z.string().default(''),
  /** How long a real run waits for the sources to appear on the peer (0: not at all). */
  wait_seconds: z.number().int().min(0).max(900).default(0),
});

export type PeerFileParams = z.input<typeof schema>;


export const peerFileModule = defineModule({
  name: 'peer_file',
  schema,
  probes: (p) => [fileState(p.dest)],
  async plan(p, ctx) {
    if (!ctx.peer) throw new ModuleError(`this run cannot open a connection to ${p.from_host}: ${p.dest} cannot be copied from it`);
    const peer = await ctx.peer(p.from_host);
    const script = p.sources.map((s) => sh`test -s ${s}`).join(' && ') + ' && cat -- ' + p.sources.map((s) => sh`${s}`).join(' ');
    const deadline = Date.now() + (ctx.check ? 0 : p.wait_seconds * 1000);
    let r = await peer.exec(script);
    while (r.code !== 0 && Date.now() < deadline) {
      await new Promise((res) => setTimeout(res, 2000));
      r = await peer.exec(script);
    }
    const now = currentFile(ctx, p.dest);
    if (r.code !== 0) {
      if (ctx.check) {
        return { changes: [{ kind: 'file', target: p.dest, action: `copy from ${p.from_host} once it has ${p.sources.join(' + ')}`, sensitive: true }], commands: [] };
      }
      throw new ModuleError(`${p.sources.join(' + ')} not on ${p.from_host}${p.wait_seconds ? ` after ${p.wait_seconds} s` : ''}: ${p.dest} cannot be copied from it`);
    }
    const content = new Secret(`${p.from_host}:${p.sources[0]}`, p.prefix + r.stdout);
    const same = now.type === 'file' && now.content !== undefined && now.content.toString('utf8') === content.reveal();
    if (same) {
      const { changes, needed } = attributeChanges(p.dest, now, { mode: p.mode, owner: p.owner, group: p.group });
      return changes.length ? { changes, commands: [setAttributesCommand(p.dest, 'file', needed)] } : { changes: [], commands: [] };
    }
    const change: Change = { kind: 'file', target: p.dest, action: `${now.type === 'absent' ? 'create' : 'update'} from ${p.from_host}`, sensitive: true };
    return {
      changes: [change],
      commands: [writeFileCommand(p.dest, content.reveal(), { mode: p.mode, owner: p.owner, group: p.group, makeParents: true })],
      predict: (state) => state.files.set(p.dest, Buffer.from(content.reveal())),
    };
  },
});
