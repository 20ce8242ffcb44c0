// Issue 13, done-means 1 (push side): the two-step rollback — POST root/ca.crt + root/crl.pem (a
// chain without the intermediate), then chain.pem + a crl.pem saved before a revocation — sent by a
// valid node cert that is not the CA host's, by the CA host's own cert replaying old material, and by
// a cert-less client to a legacyClients server. Nothing is installed: real handshakes against servers
// built from meshServerOptions + watchMeshTls still accept the valid agent and refuse the revoked one.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import path from 'node:path';
import { makeKit, startMeshServer, probe, type Kit, type MeshServer } from './helpers/pki-kit.ts';
import { loadMeshTls, type MeshTls } from '../lib/index.ts';
import { nodeStatus } from '../lib/node/status.ts';
import { readCrlState } from '../lib/distribute/crl-state.ts';

let kit: Kit;
let other: Kit;
const dirs: Record<string, string> = {};
let strict: MeshServer; // ct111: mTLS required
let legacy: MeshServer; // ct112: legacyClients, lets cert-less clients through the handshake
let opus: MeshTls;
let grok: MeshTls;
const saved: Record<string, string> = {};
const files = (dir: string) => ['rivet-ca.crt', 'crl.pem'].map((f) => fs.readFileSync(path.join(dir, f), 'utf8'));
const caFile = (f: string) => fs.readFileSync(path.join(kit.caDir, f), 'utf8');

test.before(async () => {
  kit = await makeKit(['ct110', 'ct111', 'ct112', 'ct113', 'opus@ct111', 'grok@ct111']);
  other = await makeKit(['ct111']);
  for (const n of ['ct110', 'ct111', 'ct112']) dirs[n] = await kit.nodeDir(n, n === 'ct111' ? ['opus', 'grok'] : []);
  strict = await startMeshServer(dirs.ct111!);
  legacy = await startMeshServer(dirs.ct112!, { legacyClients: true });
  opus = loadMeshTls({ dir: dirs.ct111!, agent: 'opus' });
  grok = loadMeshTls({ dir: dirs.ct111!, agent: 'grok' });
  // What anyone can fetch from GET /ca.crt and /crl.pem, kept from before the revocation.
  Object.assign(saved, {
    rootCrt: caFile('root/ca.crt'),
    rootCrl: caFile('root/crl.pem'),
    chain: caFile('intermediate/chain.pem'),
    crlBefore: caFile('crl.pem'),
  });
  const connectTo = `ct111.mesh:3000:127.0.0.1:${strict.port},ct112.mesh:3000:127.0.0.1:${legacy.port}`;
  const r = await kit.cli(['revoke', 'opus@ct111'], {
    RIVET_NODE_DIR: dirs.ct110!,
    RIVET_CRL_PUSH_CONNECT_TO: connectTo,
  });
  assert.is(r.exitCode, 0, r.stderr);
  assert.match(r.stdout, /push ok +ct111 \d+ ms — installed/);
  assert.match(r.stdout, /push ok +ct112 \d+ ms — installed/);
});
test.after(async () => {
  await Promise.all([strict, legacy].filter(Boolean).map((s) => s.close()));
  for (const k of [kit, other]) if (k) fs.rmSync(k.home, { recursive: true, force: true });
});

/** Both servers, fresh handshakes: grok accepted, opus (revoked) refused. */
async function stillEnforced(when: string): Promise<void> {
  for (const [name, s] of [
    ['ct111', strict],
    ['ct112', legacy],
  ] as const) {
    const g = await probe(s.port, grok, '/whoami', { servername: `${name}.mesh` });
    assert.ok(
      g.ok && g.status === 200 && g.json.cn === 'grok@ct111',
      `${when}: ${name} refused grok: ${JSON.stringify(g)}`,
    );
    const o = await probe(s.port, opus, '/whoami', { servername: `${name}.mesh` });
    // On the legacy server a refused cert still completes the handshake; it must not be accepted as opus.
    assert.ok(!o.ok || o.status === 401, `${when}: ${name} accepted the revoked opus: ${JSON.stringify(o)}`);
  }
}

type Sender = { cert?: string | Buffer; key?: string | Buffer };
const sender = (dir: string): Sender => ({
  cert: fs.readFileSync(path.join(dir, 'node.crt')),
  key: fs.readFileSync(path.join(dir, 'node.key')),
});

function post(server: MeshServer, node: string, who: Sender, body: string) {
  return probe(server.port, { ...who, ca: fs.readFileSync(path.join(server.dir, 'rivet-ca.crt')) }, '/api/mesh/crl', {
    servername: `${node}.mesh`,
    method: 'POST',
    headers: { 'content-type': 'application/x-pem-file', 'content-length': Buffer.byteLength(body) },
    body,
  });
}

/** Step one, then step two; returns both answers. Asserts nothing on disk moved and enforcement held. */
async function twoSteps(server: MeshServer, node: string, who: Sender) {
  const before = files(server.dir);
  const one = await post(server, node, who, `${saved.rootCrt}${saved.rootCrl}`);
  const two = await post(server, node, who, `${saved.chain}${saved.crlBefore}`);
  assert.equal(files(server.dir), before, 'rivet-ca.crt and crl.pem untouched');
  await stillEnforced(`after the two steps against ${node}`);
  return [one, two] as const;
}

test("a valid node cert that is not the CA host's may not push at all (403 forbidden)", async () => {
  const refusedBefore = strict.refusals.length;
  const [one, two] = await twoSteps(strict, 'ct111', sender(dirs.ct112!));
  for (const r of [one, two]) {
    assert.ok(r.ok && r.status === 403 && r.json.error.code === 'forbidden', JSON.stringify(r));
    if (r.ok)
      assert.match(r.json.error.message, /"ct112\.mesh" may not push CRLs — only the node certificate of ct110/);
  }
  assert.equal(
    strict.refusals.slice(refusedBefore),
    [
      { code: 'forbidden', from: 'ct112.mesh' },
      { code: 'forbidden', from: 'ct112.mesh' },
    ],
    'onRefused saw both',
  );
  const st = await nodeStatus(dirs.ct111!, { withinMs: 0 });
  assert.is(st.lastRefusal?.code, 'forbidden');
  assert.is(st.lastRefusal?.source, 'push');
  assert.is(st.caHost, 'ct110');
});

test("the CA host's own cert replaying old material changes nothing: 409 ca_still_live, then 409 crl_rollback", async () => {
  const [one, two] = await twoSteps(strict, 'ct111', sender(dirs.ct110!));
  assert.ok(one.ok && one.status === 409 && one.json.error.code === 'ca_still_live', JSON.stringify(one));
  if (one.ok)
    assert.match(
      one.json.error.message,
      /the served chain leaves out "Rivet Intermediate CA 1", but its certificates can still be valid here/,
    );
  assert.ok(two.ok && two.status === 409 && two.json.error.code === 'crl_rollback', JSON.stringify(two));
  if (two.ok)
    assert.match(
      two.json.error.message,
      /"Rivet Intermediate CA 1" crlNumber \d+ is older than the installed \d+ — rollback is not allowed/,
    );
  const st = await nodeStatus(dirs.ct111!, { withinMs: 0 });
  assert.is(st.lastRefusal?.code, 'crl_rollback');
  assert.is(st.lastRefusal?.from, 'ct110.mesh');
  // The high-water marks still say what the push installed, whatever was offered since.
  const marks = [...(await readCrlState(dirs.ct111!)).marks.values()];
  const [installedInt] = (await import('../lib/index.ts')).parseCrlBundle(caFile('crl.pem'));
  assert.ok(
    marks.some((m) => m.ca === 'Rivet Intermediate CA 1' && m.crlNumber === installedInt!.crlNumber),
    JSON.stringify(marks, (_, v) => (typeof v === 'bigint' ? String(v) : v)),
  );
});

test('step one alone, sent again, is still refused by a node that never saw it', async () => {
  // ct112 (legacy) first gets step one from the CA host: refused too, on a server in legacy mode.
  const before = files(legacy.dir);
  const one = await post(legacy, 'ct112', sender(dirs.ct110!), `${saved.rootCrt}${saved.rootCrl}`);
  assert.ok(one.ok && one.status === 409 && one.json.error.code === 'ca_still_live', JSON.stringify(one));
  assert.equal(files(legacy.dir), before);
});

test('on a legacyClients server, a client without a certificate (or with a foreign one) may not push (401)', async () => {
  const [one, two] = await twoSteps(legacy, 'ct112', {});
  for (const r of [one, two]) {
    assert.ok(r.ok && r.status === 401 && r.json.error.code === 'no_cert', JSON.stringify(r));
  }
  const st = await nodeStatus(dirs.ct112!, { withinMs: 0 });
  assert.is(st.lastRefusal?.code, 'no_cert');
  // A certificate that does not verify never reaches the receiver: the gate watchMeshTls puts in
  // front of the server's handler refuses it first (lib/mesh/gate.ts; this kit runs it in reset
  // mode) and logs the refusal with the CN it claimed.
  const foreignDir = await other.nodeDir('ct111');
  const logged = legacy.tlsErrors.length;
  const [f1, f2] = await twoSteps(legacy, 'ct112', sender(foreignDir));
  for (const r of [f1, f2]) assert.ok(!r.ok || r.status === 401 || r.status === 403, JSON.stringify(r));
  assert.ok(
    legacy.tlsErrors.slice(logged).some((l) => /^refused /.test(l)),
    legacy.tlsErrors.slice(logged).join('\n'),
  );
});

test("with no CA host recorded and no allowFrom, every push is refused (fail closed), the CA host's included", async () => {
  const dir = await kit.nodeDir('ct113', [], { caHost: null });
  const bare = await startMeshServer(dir);
  try {
    const before = files(dir);
    const r = await post(bare, 'ct113', sender(dirs.ct110!), `${caFile('intermediate/chain.pem')}${caFile('crl.pem')}`);
    assert.ok(r.ok && r.status === 403 && r.json.error.code === 'push_sender_unknown', JSON.stringify(r));
    if (r.ok)
      assert.match(
        r.json.error.message,
        /no CA host recorded \(node\.json has no caHost\) and crlReceiver was given no allowFrom/,
      );
    assert.equal(files(dir), before);
    const st = await nodeStatus(dir, { withinMs: 0 });
    assert.ok(
      st.problems.some((p) => /no CA host recorded in node\.json: crlReceiver refuses every CRL push/.test(p)),
      st.problems.join('\n'),
    );
  } finally {
    await bare.close();
  }
});

test.run();
