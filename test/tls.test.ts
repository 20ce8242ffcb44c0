// Done-means 1 (issue 5): real TLS sockets, certificates made by the real CLI.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import path from 'node:path';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { fetch } from 'undici';
import { makeKit, startMeshServer, probe, type Kit, type MeshServer } from './helpers/pki-kit.ts';
import {
  loadMeshTls,
  meshServerOptions,
  meshDispatcher,
  authenticate,
  authorize,
  allowListFrom,
  loadAllowList,
  MeshAuthError,
  type MeshTls,
} from '../lib/index.ts';

let kit: Kit;
let other: Kit;
let server: MeshServer;
let ct111: string;
const agentTls = (node: string, agent: string, dir: string) => loadMeshTls({ dir, agent, domain: 'mesh' });
const twoDaysAgo = new Date(Date.now() - 2 * 86_400_000).toISOString();

test.before(async () => {
  kit = await makeKit(['ct111', 'ct112', 'opus@ct111', 'grok@ct111']);
  const r = await kit.cli(['issue-agent', 'old@ct111', '--days', '1', '--not-before', twoDaysAgo]);
  assert.is(r.exitCode, 0, r.stderr);
  ct111 = await kit.nodeDir('ct111', ['opus', 'grok', 'old']);
  // Another CA entirely, with an agent of the same CN.
  other = await makeKit(['ct111', 'opus@ct111']);
  server = await startMeshServer(ct111);
});
test.after(async () => {
  await server?.close();
  for (const k of [kit, other]) if (k) fs.rmSync(k.home, { recursive: true, force: true });
});

test('agent opus@ct111 attaches as opus@ct111 and gets a per-connection session token', async () => {
  const opus = agentTls('ct111', 'opus', ct111);
  const a = await probe(server.port, opus, '/attach?as=opus@ct111');
  const b = await probe(server.port, opus, '/attach?as=opus@ct111');
  assert.ok(a.ok && b.ok, JSON.stringify([a, b]));
  if (!a.ok || !b.ok) return;
  assert.is(a.status, 200);
  assert.is(a.socket.protocol, 'TLSv1.3');
  assert.is(a.json.agentId, 'opus');
  assert.is(a.json.nodeId, 'ct111');
  assert.match(a.json.sessionToken, /^[A-Za-z0-9_-]{43}$/);
  assert.is.not(a.json.sessionToken, b.json.sessionToken, 'a new connection gets a new token');
});

test('opus@ct111 cannot attach as grok@ct111, nor as the bare agent id', async () => {
  const opus = agentTls('ct111', 'opus', ct111);
  const r = await probe(server.port, opus, '/attach?as=grok@ct111');
  assert.ok(r.ok && r.status === 403, JSON.stringify(r));
  if (r.ok) assert.match(r.json.error, /"opus@ct111" cannot attach as "grok@ct111"/);
  const bare = await probe(server.port, opus, '/attach?as=opus');
  if (bare.ok) assert.match(bare.json.error, /claim the full identity "opus@ct111"/);
});

test('a node certificate cannot attach as an agent', async () => {
  const node = loadMeshTls({ dir: ct111 });
  const who = await probe(server.port, node);
  assert.ok(
    who.ok && who.status === 200 && who.json.kind === 'node' && who.json.cn === 'ct111.mesh',
    JSON.stringify(who),
  );
  const r = await probe(server.port, node, '/attach?as=opus@ct111');
  assert.ok(r.ok && r.status === 403, JSON.stringify(r));
  if (r.ok) assert.match(r.json.error, /a node certificate \("ct111.mesh"\) cannot attach as agent "opus@ct111"/);
});

test('a certificate from another CA with the same CN is refused at the handshake', async () => {
  const otherDir = await other.nodeDir('ct111', ['opus']);
  const forged = agentTls('ct111', 'opus', otherDir);
  // Present the other CA's cert, but verify the server with the right chain: only the client cert is wrong.
  const r = await probe(
    server.port,
    { key: forged.key, cert: forged.cert, ca: loadMeshTls({ dir: ct111 }).ca },
    '/attach?as=opus@ct111',
  );
  assert.not.ok(r.ok, JSON.stringify(r));
  // The signature check fails inside the handshake itself (same issuer name, other key) — or, since
  // CRLs carry authorityKeyIdentifier (RFC 5280 §5.2.1), OpenSSL finds no CRL of the other CA's
  // intermediate (ours has the same name but another key) and refuses for that.
  assert.ok(
    server.tlsErrors.some((e) => /ERR_SSL_EVP_LIB|signature|unknown ca|UNABLE_TO_GET_CRL/i.test(e)),
    server.tlsErrors.join(' / '),
  );
});

test('an expired certificate is refused at the handshake', async () => {
  const old = agentTls('ct111', 'old', ct111);
  const r = await probe(server.port, old, '/attach?as=old@ct111');
  assert.not.ok(r.ok, JSON.stringify(r));
  // Node drops the connection without an alert; a compat server shows the verifier's reason.
  const s = await compatServer(loadMeshTls({ dir: ct111 }), () => undefined);
  try {
    const why = await probe(s.port, old);
    assert.ok(why.ok && why.status === 401 && why.json.code === 'untrusted_cert', JSON.stringify(why));
    if (why.ok) assert.match(why.json.error, /"CN=old@ct111" was refused: CERT_HAS_EXPIRED/);
  } finally {
    await s.close();
  }
});

test('a client without a certificate is refused at the handshake by default', async () => {
  const r = await probe(server.port, { ca: loadMeshTls({ dir: ct111 }).ca });
  assert.not.ok(r.ok, JSON.stringify(r));
});

test('the client side refuses a server whose node name does not match', async () => {
  const opus = agentTls('ct111', 'opus', ct111);
  const r = await probe(server.port, opus, '/whoami', { servername: 'ct112.mesh' });
  assert.not.ok(r.ok);
  if (!r.ok) assert.match(r.error, /ct112\.mesh|altnames/i);
});

test('fetch with meshDispatcher speaks mTLS and the server sees the agent', async () => {
  const dispatcher = meshDispatcher(agentTls('ct111', 'opus', ct111), { servername: 'ct111.mesh' });
  try {
    const res = await fetch(`https://127.0.0.1:${server.port}/whoami`, { dispatcher });
    assert.is(res.status, 200);
    assert.equal(await res.json(), { kind: 'agent', cn: 'opus@ct111', nodeId: 'ct111', agentId: 'opus' });
  } finally {
    await dispatcher.close();
  }
});

// Compat mode: a phase-0.5 server lets certless clients finish the handshake, and authenticate() decides.
async function compatServer(tls: MeshTls, legacyBearer: () => string | undefined) {
  const s = https.createServer(meshServerOptions(tls, { legacyClients: true }), (req, res) => {
    try {
      const who = authenticate(req, { legacyBearer: legacyBearer() });
      res.writeHead(200).end(JSON.stringify(who));
    } catch (err) {
      const e = err as MeshAuthError;
      res.writeHead(e.status ?? 500).end(JSON.stringify({ code: e.code, error: e.message }));
    }
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return {
    port: (s.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((r) => {
        s.closeAllConnections();
        s.close(() => r());
      }),
  };
}

test('compat mode accepts the legacy bearer only while a legacy secret is configured', async () => {
  const node = loadMeshTls({ dir: ct111 });
  let secret: string | undefined = 'correct-horse-battery-staple';
  const s = await compatServer(node, () => secret);
  try {
    const anon = { ca: node.ca };
    const bearer = (t: string) => ({ headers: { authorization: `Bearer ${t}` } });
    const good = await probe(s.port, anon, '/', bearer('correct-horse-battery-staple'));
    assert.ok(
      good.ok && good.status === 200 && good.json.method === 'legacy-bearer' && good.json.legacy === true,
      JSON.stringify(good),
    );
    const wrong = await probe(s.port, anon, '/', bearer('correct-horse-battery-stapl'));
    assert.ok(wrong.ok && wrong.status === 401 && wrong.json.code === 'bad_bearer', JSON.stringify(wrong));
    if (wrong.ok) assert.not.match(JSON.stringify(wrong.json), /staple/, 'the secret is not echoed');
    const mtls = await probe(s.port, agentTls('ct111', 'opus', ct111));
    assert.ok(mtls.ok && mtls.json.method === 'mtls' && mtls.json.identity.cn === 'opus@ct111', JSON.stringify(mtls));
    // A presented cert that did not verify never falls back to the bearer.
    const forged = agentTls('ct111', 'opus', await other.nodeDir('ct111', ['opus']));
    const mixed = await probe(
      s.port,
      { key: forged.key, cert: forged.cert, ca: node.ca },
      '/',
      bearer('correct-horse-battery-staple'),
    );
    assert.ok(mixed.ok && mixed.status === 401 && mixed.json.code === 'untrusted_cert', JSON.stringify(mixed));
    secret = undefined; // the release after cutover: no legacy secret configured
    const retired = await probe(s.port, anon, '/', bearer('correct-horse-battery-staple'));
    assert.ok(retired.ok && retired.status === 401 && retired.json.code === 'bearer_retired', JSON.stringify(retired));
  } finally {
    await s.close();
  }
});

test('authorize is default deny and follows edits of the allow-list file', async () => {
  const opus = { kind: 'agent', cn: 'opus@ct111', nodeId: 'ct111', agentId: 'opus' } as const;
  const mem = allowListFrom({ 'opus@ct111': ['memory.*', 'tools.call'] }, 'mesh');
  authorize(opus as any, 'memory.read', mem);
  authorize(opus as any, 'tools.call', mem);
  assert.throws(
    () => authorize(opus as any, 'tools.delete', mem),
    (e: MeshAuthError) => e.status === 403 && /"opus@ct111" may not "tools.delete"/.test(e.message),
  );
  assert.throws(() => authorize({ ...opus, cn: 'grok@ct111' } as any, 'memory.read', mem), /may not/);
  assert.throws(() => allowListFrom({ 'Opus@ct111': ['x'] }), /key "Opus@ct111" is not a certificate CN/);

  const file = path.join(kit.home, 'allow.json');
  fs.writeFileSync(file, JSON.stringify({ 'opus@ct111': ['memory.read'] }));
  let reloaded = 0;
  const errors: Error[] = [];
  const list = loadAllowList(file, { domain: 'mesh', onReload: () => reloaded++, onError: (e) => errors.push(e) });
  try {
    authorize(opus as any, 'memory.read', list);
    const tmp = `${file}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify({ 'opus@ct111': ['memory.write'] }));
    fs.renameSync(tmp, file);
    for (let i = 0; i < 100 && reloaded === 0; i++) await new Promise((r) => setTimeout(r, 20));
    assert.is(reloaded, 1);
    authorize(opus as any, 'memory.write', list);
    assert.throws(() => authorize(opus as any, 'memory.read', list), /may not "memory.read"/);
    fs.writeFileSync(file, '{ "opus@ct111": [ broken');
    for (let i = 0; i < 100 && errors.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
    assert.match(errors[0]?.message ?? '', /not valid JSON/);
    authorize(opus as any, 'memory.write', list); // the last good list stays in force
  } finally {
    list.close();
  }
});

test.run();
