// Done-means 2 and 3 (issue 5): the real `rivet-ca revoke` pushes the CRL to five running mesh
// servers, which refuse the revoked agent on their next handshake without a restart; a node that
// was down catches up by pull; receivers refuse rollback and other CAs' CRLs.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { makeKit, startMeshServer, probe, type Kit, type MeshServer } from './helpers/pki-kit.ts';
import { loadMeshTls, meshClientOptions, pullCrl, parseConnectTo, parseCrlBundle, type MeshTls } from '../lib/index.ts';

const UP = ['ct110', 'ct111', 'ct112', 'ct113', 'ct114'];
const DOWN = 'ct115';
let kit: Kit;
let other: Kit;
const dirs: Record<string, string> = {};
const servers: Record<string, MeshServer> = {};
let opus: MeshTls;
let grok: MeshTls;
let sonnet: MeshTls;
let downPort = 0;
let bundleBefore = '';

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

const at = (node: string, who: MeshTls, p = '/whoami', extra: Record<string, unknown> = {}) =>
  probe(servers[node]!.port, who, p, { servername: `${node}.mesh`, ...extra });

test.before(async () => {
  kit = await makeKit([...UP, DOWN, 'opus@ct111', 'grok@ct111', 'sonnet@ct112']);
  for (const n of [...UP, DOWN])
    dirs[n] = await kit.nodeDir(n, n === 'ct111' ? ['opus', 'grok'] : n === 'ct112' ? ['sonnet'] : []);
  for (const n of UP) servers[n] = await startMeshServer(dirs[n]!);
  downPort = await freePort();
  opus = loadMeshTls({ dir: dirs.ct111, agent: 'opus' });
  grok = loadMeshTls({ dir: dirs.ct111, agent: 'grok' });
  sonnet = loadMeshTls({ dir: dirs.ct112, agent: 'sonnet' });
  bundleBefore = fs.readFileSync(path.join(kit.caDir, 'crl.pem'), 'utf8');
  other = await makeKit([]);
});
test.after(async () => {
  await Promise.all(Object.values(servers).map((s) => s.close()));
  for (const k of [kit, other]) if (k) fs.rmSync(k.home, { recursive: true, force: true });
});

/** A new TLS session's ticket, to try resuming it after the revocation. */
async function ticketFrom(node: string, who: MeshTls): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        ...meshClientOptions(who),
        host: '127.0.0.1',
        port: servers[node]!.port,
        servername: `${node}.mesh`,
        path: '/whoami',
        agent: false,
      },
      (res) => {
        res.resume();
        res.on('end', () => {
          const s = (res.socket as TLSSocket).getSession();
          if (s) resolve(s);
          else reject(new Error('no session ticket'));
        });
      },
    );
    req.on('error', reject);
    req.end();
  });
}

test('revoke pushes to every live node; all five refuse the agent within a second, others still connect', async () => {
  for (const n of UP) {
    const r = await at(n, opus);
    assert.ok(r.ok && r.json.cn === 'opus@ct111', `${n} before: ${JSON.stringify(r)}`);
  }
  const ticket = await ticketFrom('ct112', opus);
  const connectTo = [
    ...UP.map((n) => `${n}.mesh:3000:127.0.0.1:${servers[n]!.port}`),
    `${DOWN}.mesh:3000:127.0.0.1:${downPort}`,
  ].join(',');

  const started = performance.now();
  const r = await kit.cli(['revoke', 'opus@ct111'], {
    RIVET_NODE_DIR: dirs.ct110!,
    RIVET_CRL_PUSH_CONNECT_TO: connectTo,
  });
  const returned = performance.now();
  assert.is(r.exitCode, 0, r.stderr);
  for (const n of UP) assert.match(r.stdout, new RegExp(`push ok +${n} \\d+ ms — installed`));
  assert.match(r.stdout, new RegExp(`push FAILED ${DOWN} \\d+ ms — .*(ECONNREFUSED|connect)`));
  assert.match(r.stdout, /push: 5\/6 nodes updated; the others catch up by pull/);

  // Every server, fresh handshake each: the revoked agent is refused, the others are not.
  const refused = await Promise.all(UP.map((n) => at(n, opus)));
  const enforcedMs = performance.now() - returned;
  const results = await Promise.all(
    UP.map(async (n, i) => ({ n, opus: refused[i]!, grok: await at(n, grok), sonnet: await at(n, sonnet) })),
  );
  for (const x of results) {
    assert.not.ok(x.opus.ok, `${x.n} still accepts opus@ct111: ${JSON.stringify(x.opus)}`);
    assert.ok(x.grok.ok && x.grok.json.cn === 'grok@ct111', `${x.n} refused grok: ${JSON.stringify(x.grok)}`);
    assert.ok(x.sonnet.ok && x.sonnet.json.cn === 'sonnet@ct112', `${x.n} refused sonnet: ${JSON.stringify(x.sonnet)}`);
  }
  assert.ok(enforcedMs <= 1000, `enforced ${Math.round(enforcedMs)} ms after revoke returned`);
  // A ticket from before the revocation cannot resume past it (resumption skips the cert check).
  const resumed = await at('ct112', opus, '/whoami', { session: ticket });
  assert.not.ok(resumed.ok, `resumed a pre-revocation session: ${JSON.stringify(resumed)}`);
  for (const n of UP) assert.equal(servers[n]!.errors, [], `${n} watcher errors`);
  console.log(
    `    revoke command took ${Math.round(returned - started)} ms (push included); all 5 servers refused opus@ct111 ${Math.round(enforcedMs)} ms after it returned (new handshakes, in parallel)`,
  );
});

test('a node that was down during the push catches up by pull', async () => {
  const late = await startMeshServer(dirs[DOWN]!);
  servers[DOWN] = late;
  const stale = await at(DOWN, opus);
  assert.ok(stale.ok, 'with its old CRL the late node still accepts opus — this is what the pull fixes');
  // A datahub serving GET /crl.pem from the CA, with the CA host's node cert (DESIGN §4.7).
  const hub = loadMeshTls({ dir: dirs.ct110 });
  const datahub = https.createServer({ key: hub.key, cert: hub.cert }, (req, res) => {
    if (req.url !== '/crl.pem') return res.writeHead(404).end();
    res
      .writeHead(200, { 'content-type': 'application/pkix-crl' })
      .end(fs.readFileSync(path.join(kit.caDir, 'crl.pem')));
  });
  await new Promise<void>((r) => datahub.listen(0, '127.0.0.1', r));
  try {
    const port = (datahub.address() as AddressInfo).port;
    const result = await pullCrl({
      dir: dirs[DOWN]!,
      datahub: 'https://ct110.mesh:8443',
      connectTo: parseConnectTo(`ct110.mesh:8443:127.0.0.1:${port}`),
    });
    assert.is(result.installed, true);
    assert.is(result.crls.length, 2, 'intermediate CRL + root CRL');
    const after = await at(DOWN, opus);
    assert.not.ok(after.ok, `late node still accepts opus after pull: ${JSON.stringify(after)}`);
    assert.ok((await at(DOWN, grok)).ok);
    const again = await pullCrl({
      dir: dirs[DOWN]!,
      datahub: 'https://ct110.mesh:8443',
      connectTo: parseConnectTo(`ct110.mesh:8443:127.0.0.1:${port}`),
    });
    assert.is(again.reason, 'unchanged');
  } finally {
    datahub.closeAllConnections();
    datahub.close();
  }
});

async function post(node: string, body: string) {
  const res = await probe(servers[node]!.port, loadMeshTls({ dir: dirs.ct110 }), '/api/mesh/crl', {
    servername: `${node}.mesh`,
    method: 'POST',
    headers: { 'content-type': 'application/x-pem-file', 'content-length': Buffer.byteLength(body) },
    body,
  });
  return res;
}

test('replaying the older CRL is refused and the receiver keeps the newer one', async () => {
  const installed = fs.readFileSync(path.join(dirs.ct113!, 'crl.pem'), 'utf8');
  const [newInt] = parseCrlBundle(installed);
  const [oldInt] = parseCrlBundle(bundleBefore);
  assert.ok(newInt!.crlNumber! > oldInt!.crlNumber!, 'the push installed a newer crlNumber');
  const r = await post('ct113', bundleBefore);
  assert.ok(r.ok && r.status === 409, JSON.stringify(r));
  if (r.ok) {
    assert.is(r.json.error.code, 'crl_rollback');
    assert.match(
      r.json.error.message,
      new RegExp(
        `"Rivet Intermediate CA 1" crlNumber ${oldInt!.crlNumber} is older than the installed ${newInt!.crlNumber} — rollback is not allowed`,
      ),
    );
  }
  assert.is(fs.readFileSync(path.join(dirs.ct113!, 'crl.pem'), 'utf8'), installed, 'crl.pem untouched');
  assert.not.ok((await at('ct113', opus)).ok, 'opus stays refused');
});

test('a CRL bundle signed by another CA, or missing the root CRL, is refused', async () => {
  const installed = fs.readFileSync(path.join(dirs.ct114!, 'crl.pem'), 'utf8');
  const foreign = await post('ct114', fs.readFileSync(path.join(other.caDir, 'crl.pem'), 'utf8'));
  assert.ok(foreign.ok && foreign.status === 400 && foreign.json.error.code === 'foreign_crl', JSON.stringify(foreign));
  if (foreign.ok) assert.match(foreign.json.error.message, /is not signed by any CA of the installed chain/);
  const intOnly = fs.readFileSync(path.join(kit.caDir, 'intermediate', 'crl.pem'), 'utf8');
  const partial = await post('ct114', intOnly);
  assert.ok(
    partial.ok && partial.status === 400 && partial.json.error.code === 'incomplete_crl',
    JSON.stringify(partial),
  );
  if (partial.ok) assert.match(partial.json.error.message, /no CRL for "Rivet Root CA"/);
  const junk = await post('ct114', 'hello\n-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n');
  assert.ok(junk.ok && junk.status === 400 && junk.json.error.code === 'bad_crl', JSON.stringify(junk));
  assert.is(fs.readFileSync(path.join(dirs.ct114!, 'crl.pem'), 'utf8'), installed, 'crl.pem untouched');
  assert.ok((await at('ct114', grok)).ok, 'the server still works with the CRL it kept');
});

test.run();
