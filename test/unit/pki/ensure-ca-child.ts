// A second (third, fourth…) provision run for the lock test: waits for the go file, so that every
// child calls ensureCa at the same moment, then prints the CA it got (or the error) as JSON.
import { existsSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { ensureCa } from '../../../src/pki/index.js';

const [dir, goFile, timeout] = process.argv.slice(2) as [string, string, string?];
const until = Date.now() + 60_000;
while (!existsSync(goFile) && Date.now() < until) await sleep(2);
try {
  const ca = await ensureCa(dir, { lockTimeoutMs: timeout ? Number(timeout) : undefined });
  process.stdout.write(JSON.stringify({ id: ca.signer.id, fingerprint: ca.signer.cert.fingerprint256 }));
} catch (err) {
  process.stdout.write(JSON.stringify({ error: (err as Error).message }));
}
