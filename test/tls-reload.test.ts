// Done-means 4 (issue 5) and the watcher's failure modes: a renewed node cert is served on the
// next handshake without a restart; a CRL renamed into place is enforced; a torn or mismatched
// file is refused and the running context stays.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import path from 'node:path';
import { makeKit, startMeshServer, probe, type Kit, type MeshServer } from './helpers/pki-kit.ts';
import { loadMeshTls, parseCertPem } from '../lib/index.ts';

let kit: Kit;
let dir: string;
let server: MeshServer;

test.before(async () => {
  kit = await makeKit(['ct111', 'ct112', 'opus@ct111', 'grok@ct111']);
  dir = await kit.nodeDir('ct111', ['opus', 'grok']);
  server = await startMeshServer(dir);
});
test.after(async () => {
  await server?.close();
  if (kit) fs.rmSync(kit.home, { recursive: true, force: true });
});

/** Installs a file the way provision-ct does: write a temp file beside it, rename into place. */
function installAtomically(from: string, to: string): void {
  const tmp = path.join(path.dirname(to), `.tmp-${path.basename(to)}`);
  fs.copyFileSync(from, tmp);
  fs.renameSync(tmp, to);
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, ms = 3000): Promise<{ value: T; ms: number }> {
  const start = performance.now();
  for (;;) {
    const value = await fn();
    if (value !== undefined) return { value, ms: Math.round(performance.now() - start) };
    if (performance.now() - start > ms) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const servedSerial = async () => {
  const r = await probe(server.port, loadMeshTls({ dir, agent: 'opus' }));
  return r.ok ? r.socket.cert : undefined;
};

test('a renewed node cert is served by the running server on the next handshake', async () => {
  const before = await servedSerial();
  assert.is(before, parseCertPem(fs.readFileSync(path.join(dir, 'node.crt'), 'utf8')).serial);
  const r = await kit.cli(['renew', 'ct111']);
  assert.is(r.exitCode, 0, r.stderr);
  const renewed = parseCertPem(fs.readFileSync(path.join(kit.caDir, 'issued', 'ct111.crt'), 'utf8')).serial;
  assert.is.not(renewed, before);
  installAtomically(path.join(kit.caDir, 'issued', 'ct111.crt'), path.join(dir, 'node.crt'));
  const seen = await until('renewed cert served', async () => ((await servedSerial()) === renewed ? true : undefined));
  console.log(`    renewed node cert served ${seen.ms} ms after it was renamed into place`);
  assert.ok(server.reloads() >= 1);
});

test('a torn node.crt, or a cert that does not match node.key, keeps the running context', async () => {
  const serving = await servedSerial();
  const errorsBefore = server.errors.length;
  fs.writeFileSync(path.join(dir, 'node.crt'), '-----BEGIN CERTIFICATE-----\nMIIB'); // a half-written file, in place
  await until('torn file reported', async () => (server.errors.length > errorsBefore ? true : undefined));
  assert.is(await servedSerial(), serving, 'still serving the old certificate');
  installAtomically(path.join(kit.caDir, 'issued', 'ct112.crt'), path.join(dir, 'node.crt')); // valid, but not ours
  await until('mismatch reported', async () => (server.errors.length > errorsBefore + 1 ? true : undefined));
  assert.match(server.errors.at(-1)!.message, /does not load: .*does node.key belong to node.crt\?/);
  assert.is(await servedSerial(), serving, 'still serving the old certificate');
  installAtomically(path.join(kit.caDir, 'issued', 'ct111.crt'), path.join(dir, 'node.crt'));
});

test('a CRL renamed into place (no push) is enforced by the watcher without a restart', async () => {
  const grok = loadMeshTls({ dir, agent: 'grok' });
  assert.ok((await probe(server.port, grok)).ok);
  const r = await kit.cli(['revoke', 'grok@ct111', '--no-push']);
  assert.is(r.exitCode, 0, r.stderr);
  assert.match(r.stdout, /push skipped \(--no-push\)/);
  installAtomically(path.join(kit.caDir, 'crl.pem'), path.join(dir, 'crl.pem'));
  const refused = await until('grok refused', async () => ((await probe(server.port, grok)).ok ? undefined : true));
  console.log(`    revoked agent refused ${refused.ms} ms after crl.pem was renamed into place`);
  assert.ok((await probe(server.port, loadMeshTls({ dir, agent: 'opus' }))).ok, 'opus still connects');
});

test.run();
