// Issue 13, done-means 1 (pull side) and who may push: a node enrolled by the real provision-ct
// against the real `rivet-ca serve` records the CA host (the node whose certificate answered the
// pinned contact) and its receiver takes pushes from it alone. A datahub serving a root-only chain or
// an older bundle to `provision-ct fetch-crl` changes nothing, and `provision-ct status` says why.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import path from 'node:path';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { startServed, mustOk, SECRET, type Served } from './helpers/provision.ts';
import { startMeshServer, probe, type MeshServer } from './helpers/pki-kit.ts';
import { loadMeshTls, type MeshTls } from '../lib/index.ts';

let s: Served;
let dir: string;
let mesh: MeshServer;
let opus: MeshTls;
let grok: MeshTls;
const saved: Record<string, string> = {};
const served: { chain: string; crl: string } = { chain: '', crl: '' };
let hub: https.Server;

const files = () => ['rivet-ca.crt', 'crl.pem'].map((f) => fs.readFileSync(path.join(dir, f), 'utf8'));
const settingsFile = () => path.join(dir, 'node.json');
const setDatahub = (url: string) => {
  const j = JSON.parse(fs.readFileSync(settingsFile(), 'utf8'));
  fs.writeFileSync(settingsFile(), JSON.stringify({ ...j, datahub: url }, null, 2));
};

test.before(async () => {
  s = await startServed();
  dir = path.join(s.home, 'ct111');
  mustOk(
    await s.provision(
      dir,
      [
        'enroll',
        '--node-id',
        'ct111',
        ...s.datahubArgs,
        '--ca-fingerprint',
        s.fingerprint,
        '--agent',
        'opus',
        '--agent',
        'grok',
      ],
      { RIVET_BOOTSTRAP_SECRET: SECRET },
    ),
    'enroll',
  );
  mesh = await startMeshServer(dir);
  opus = loadMeshTls({ dir, agent: 'opus' });
  grok = loadMeshTls({ dir, agent: 'grok' });
  const read = (f: string) => fs.readFileSync(f, 'utf8');
  Object.assign(saved, {
    rootCrt: read(s.ca.store.root().cert),
    rootCrl: read(s.ca.store.root().crl),
    chain: read(s.ca.store.chainFile),
    crlBefore: read(s.ca.store.crlBundle),
  });
  // A datahub that serves whatever the test puts in `served`, with the CA host's own certificate.
  hub = https.createServer(
    { cert: fs.readFileSync(path.join(s.hostDir, 'node.crt')), key: fs.readFileSync(path.join(s.hostDir, 'node.key')) },
    (req, res) => {
      const body = req.url === '/ca.crt' ? served.chain : req.url === '/crl.pem' ? served.crl : undefined;
      if (body === undefined) return res.writeHead(404).end();
      res.writeHead(200, { 'content-type': 'application/x-pem-file' }).end(body);
    },
  );
  await new Promise<void>((r) => hub.listen(0, '127.0.0.1', r));
});
test.after(async () => {
  hub?.closeAllConnections();
  hub?.close();
  await mesh?.close();
  await s?.close();
});

async function enforced(when: string): Promise<void> {
  // provision-ct is another process: the server learns of its crl.pem through watchMeshTls.
  for (let i = 0; i < 60 && (await probe(mesh.port, opus)).ok; i++) await new Promise((r) => setTimeout(r, 50));
  const g = await probe(mesh.port, grok);
  assert.ok(g.ok && g.status === 200 && g.json.cn === 'grok@ct111', `${when}: grok refused: ${JSON.stringify(g)}`);
  const o = await probe(mesh.port, opus);
  assert.not.ok(o.ok, `${when}: the revoked opus was accepted: ${JSON.stringify(o)}`);
}

/** `provision-ct status --json` (exit 1 once opus is revoked: that is a problem it reports). */
async function status() {
  return JSON.parse((await s.provision(dir, ['status', '--json'])).stdout);
}

test("enrollment records the CA host; its push is taken, another node's is not", async () => {
  const settings = JSON.parse(fs.readFileSync(settingsFile(), 'utf8'));
  assert.is(settings.caHost, 'ct110');
  mustOk(await s.rivet(['issue-node', 'ct112']), 'issue-node ct112');
  const post = (stem: string, certFile: string, keyFile: string) =>
    probe(
      mesh.port,
      {
        cert: fs.readFileSync(certFile),
        key: fs.readFileSync(keyFile),
        ca: fs.readFileSync(path.join(dir, 'rivet-ca.crt')),
      },
      '/api/mesh/crl',
      {
        method: 'POST',
        body: `${saved.chain}${saved.crlBefore}`,
        headers: { 'content-length': Buffer.byteLength(`${saved.chain}${saved.crlBefore}`) },
      },
    );
  const fromHost = await post('ct110', path.join(s.hostDir, 'node.crt'), path.join(s.hostDir, 'node.key'));
  assert.ok(fromHost.ok && fromHost.status === 200 && fromHost.json.reason === 'unchanged', JSON.stringify(fromHost));
  const fromOther = await post('ct112', s.ca.store.issued('ct112', 'crt'), s.ca.store.issued('ct112', 'key'));
  assert.ok(
    fromOther.ok && fromOther.status === 403 && fromOther.json.error.code === 'forbidden',
    JSON.stringify(fromOther),
  );
});

test('a node enrolled before the CA host was recorded learns it on the next `provision-ct enroll`, no secret needed', async () => {
  const j = JSON.parse(fs.readFileSync(settingsFile(), 'utf8'));
  delete j.caHost;
  fs.writeFileSync(settingsFile(), JSON.stringify(j, null, 2));
  const st = await s.provision(dir, ['status']);
  assert.is(st.exitCode, 1);
  assert.match(st.stdout, /pushes +refused: no CA host recorded/);
  const r = mustOk(await s.provision(dir, ['enroll']), 're-run enroll');
  assert.match(r.stdout, /CA host ct110: the datahub answered with its node certificate/);
  assert.is(JSON.parse(fs.readFileSync(settingsFile(), 'utf8')).caHost, 'ct110');
});

test('after a revocation the node pulls the new CRL; then a datahub serving a root-only chain changes nothing', async () => {
  mustOk(await s.rivet(['revoke', 'opus@ct111', '--no-push']), 'revoke');
  const pulled = mustOk(await s.provision(dir, ['fetch-crl']), 'fetch-crl');
  assert.match(pulled.stdout, /crl\.pem installed/);
  await enforced('after the genuine pull');

  const before = files();
  Object.assign(served, { chain: saved.rootCrt, crl: saved.rootCrl });
  setDatahub(`https://127.0.0.1:${(hub.address() as AddressInfo).port}`);
  const r = await s.provision(dir, ['fetch-crl']);
  assert.is(r.exitCode, 1, r.stdout);
  assert.match(
    r.stderr,
    /the served chain leaves out "Rivet Intermediate CA 1", but its certificates can still be valid here/,
  );
  assert.equal(files(), before, 'rivet-ca.crt and crl.pem untouched');
  await enforced('after the root-only chain');
  const st = await status();
  assert.is(st.lastRefusal.code, 'ca_still_live');
  assert.is(st.lastRefusal.source, 'pull');
  assert.match(st.lastRefusal.from, /^https:\/\/ct110\.mesh:\d+$/);
  assert.equal(
    st.kept.map((k: { ca: string }) => k.ca),
    ['Rivet Intermediate CA 1'],
  );
});

test('a datahub serving the bundle from before the revocation changes nothing; status shows the rollback refused', async () => {
  const before = files();
  Object.assign(served, { chain: saved.chain, crl: saved.crlBefore });
  const r = await s.provision(dir, ['fetch-crl']);
  assert.is(r.exitCode, 1, r.stdout);
  assert.match(
    r.stderr,
    /"Rivet Intermediate CA 1" crlNumber \d+ is older than the installed \d+ — rollback is not allowed/,
  );
  assert.equal(files(), before);
  await enforced('after the old bundle');
  const text = await s.provision(dir, ['status']);
  assert.match(
    text.stdout,
    /refused +\S+ by pull from https:\/\/ct110\.mesh:\d+: crl_rollback — CRL bundle refused: "Rivet Intermediate CA 1" crlNumber/,
  );
  const st = await status();
  assert.is(st.lastRefusal.code, 'crl_rollback');
});

test('back on the real datahub the pull is clean again and nothing is kept any more', async () => {
  setDatahub(s.url);
  const r = mustOk(await s.provision(dir, ['fetch-crl']), 'fetch-crl');
  assert.match(r.stdout, /crl\.pem unchanged/);
  const st = await status();
  assert.equal(st.kept, []);
  await enforced('at the end');
});

test.run();
