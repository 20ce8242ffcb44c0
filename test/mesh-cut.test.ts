// Issue 13, "revocation reaches live connections": a CRL landing in the node dir closes, within a
// second, every open connection of the revoked peer — HTTP/1.1 keep-alive, a streaming response,
// an HTTP/2 session, a raw tls.Server socket — on servers built only from meshServerOptions +
// watchMeshTls, while valid peers' connections stay open. A refused client reads why (403 JSON).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import path from 'node:path';
import https from 'node:https';
import http2 from 'node:http2';
import tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { makeKit, probe, type Kit } from './helpers/pki-kit.ts';
import { installAtomically, keepAlive, stream, h2stream, rawTls, closed, type Open } from './helpers/live.ts';
import {
  loadMeshTls,
  meshServerOptions,
  watchMeshTls,
  peerIdentity,
  MeshAuthError,
  type MeshLogEvent,
  type MeshTls,
} from '../lib/index.ts';

let kit: Kit;
let dir: string;
const events: MeshLogEvent[] = [];
let handled = 0;
const stops: Array<() => void> = [];
const ports: Record<'h1' | 'h2' | 'raw', number> = { h1: 0, h2: 0, raw: 0 };
const agent = (name: string): MeshTls => loadMeshTls({ dir, agent: name });
const twoDaysAgo = new Date(Date.now() - 2 * 86_400_000).toISOString();

// What a mesh service writes: who is calling, or a stream of lines for them.
type Res = {
  writeHead(status: number, headers?: Record<string, string>): Res;
  end(body?: string): unknown;
  write(chunk: string): unknown;
  on(e: 'close', f: () => void): unknown;
};
function handler(req: { socket: unknown; url?: string }, res: Res): void {
  handled++;
  let who;
  try {
    who = peerIdentity(req.socket as TLSSocket);
  } catch (err) {
    res.writeHead((err as MeshAuthError).status ?? 500).end(JSON.stringify({ error: (err as Error).message }));
    return;
  }
  if (req.url !== '/stream') {
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(who));
    return;
  }
  res.writeHead(200, { 'content-type': 'text/plain' });
  const t = setInterval(() => res.write(`${who.cn}\n`), 50);
  res.on('close', () => clearInterval(t));
}

async function listen(server: tls.Server, key: keyof typeof ports): Promise<void> {
  stops.push(watchMeshTls(server, { dir, logger: (e) => events.push(e) }));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  ports[key] = (server.address() as AddressInfo).port;
  stops.push(() => {
    (server as https.Server).closeAllConnections?.();
    server.close();
  });
}

test.before(async () => {
  kit = await makeKit(['ct111', 'opus@ct111', 'grok@ct111', 'haiku@ct111']);
  const r = await kit.cli(['issue-agent', 'old@ct111', '--days', '1', '--not-before', twoDaysAgo]);
  assert.is(r.exitCode, 0, r.stderr);
  dir = await kit.nodeDir('ct111', ['opus', 'grok', 'haiku', 'old']);
  const material = loadMeshTls({ dir });
  await listen(https.createServer(meshServerOptions(material), handler as never), 'h1');
  await listen(http2.createSecureServer(meshServerOptions(material), handler as never) as unknown as tls.Server, 'h2');
  await listen(
    tls.createServer(meshServerOptions(material), (socket) => {
      const t = setInterval(() => socket.write('tick\n'), 50);
      socket.on('close', () => clearInterval(t));
      socket.on('error', () => {});
    }),
    'raw',
  );
});
test.after(() => {
  for (const s of stops.reverse()) s();
  if (kit) fs.rmSync(kit.home, { recursive: true, force: true });
});

const openAll = async (who: string): Promise<Open[]> =>
  Promise.all([
    keepAlive(ports.h1, agent(who), `${who} keep-alive`),
    stream(ports.h1, agent(who), `${who} streaming response`),
    h2stream(ports.h2, agent(who), `${who} HTTP/2 session`),
    rawTls(ports.raw, agent(who), `${who} tls.Server socket`),
  ]);

test('a revoked agent loses every open connection within 1 s of the CRL landing; the others keep theirs', async () => {
  const grok = await openAll('grok');
  const opus = await openAll('opus');
  const r = await kit.cli(['revoke', 'grok@ct111', '--no-push']);
  assert.is(r.exitCode, 0, r.stderr);
  await new Promise((res) => setTimeout(res, 200));
  assert.ok(
    grok.every((o) => o.closedAt === undefined),
    'nothing is cut before the CRL reaches the node dir',
  );
  const landed = installAtomically(path.join(kit.caDir, 'crl.pem'), path.join(dir, 'crl.pem'));
  await closed(grok);
  const ms = grok.map((o) => ({
    what: o.what,
    ms: o.closedAt === undefined ? Infinity : Math.round(o.closedAt - landed),
  }));
  console.log(`    closed after the CRL landed: ${ms.map((m) => `${m.what} ${m.ms} ms`).join(', ')}`);
  for (const m of ms) assert.ok(m.ms <= 1000, `${m.what}: ${m.ms} ms`);

  // The cut is selective: opus's connections are the same sockets, still carrying data.
  const before = opus.map((o) => o.chunks);
  await new Promise((res) => setTimeout(res, 300));
  for (const [i, o] of opus.entries()) {
    assert.is(o.closedAt, undefined, `${o.what} was closed`);
    if (i > 0) assert.ok(o.chunks > before[i]!, `${o.what} stopped receiving`); // [0] is the idle keep-alive
  }
  const again = await (opus[0] as Open & { again: () => Promise<{ status: number; reused: boolean }> }).again();
  assert.equal(again, { status: 200, reused: true }, 'opus keeps using the same keep-alive connection');
  const cuts = events.filter((e) => e.event === 'cut');
  assert.ok(
    cuts.length >= 4 && cuts.every((e) => e.cn === 'grok@ct111' && e.code === 'CERT_REVOKED' && e.side === 'server'),
    JSON.stringify(cuts),
  );
  for (const o of opus) o.close();
});

test('a refused client reads why: a JSON error (403; 401 without a cert) on HTTPS and HTTP/2, and no handler runs', async () => {
  const before = handled;
  const revoked = await probe(ports.h1, agent('grok'));
  assert.ok(revoked.ok && revoked.status === 403, JSON.stringify(revoked));
  if (revoked.ok) assert.equal(revoked.json.error.code, 'cert_revoked');
  const expired = await probe(ports.h1, agent('old'));
  assert.ok(
    expired.ok && expired.status === 403 && expired.json.error.code === 'cert_expired',
    JSON.stringify(expired),
  );
  const none = await probe(ports.h1, { ca: loadMeshTls({ dir }).ca });
  assert.ok(none.ok && none.status === 401 && none.json.error.code === 'no_cert', JSON.stringify(none));
  assert.match(none.ok ? none.json.error.message : '', /requires a client certificate/);

  const h2 = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const session = http2.connect(`https://127.0.0.1:${ports.h2}`, { ...tlsOf('grok'), servername: 'ct111.mesh' });
    session.on('error', reject);
    const req = session.request({ ':path': '/whoami' });
    let body = '';
    let status = 0;
    req.on('response', (h) => {
      status = Number(h[':status']);
    });
    req.on('data', (c) => {
      body += c;
    });
    req.on('end', () => {
      session.close();
      resolve({ status, body });
    });
  });
  assert.is(h2.status, 403);
  assert.is(JSON.parse(h2.body).error.code, 'cert_revoked');
  assert.is(handled, before, 'the application never saw a refused client');
  const refused = events.filter((e) => e.event === 'refused');
  for (const [cn, code] of [
    ['grok@ct111', 'CERT_REVOKED'],
    ['old@ct111', 'CERT_HAS_EXPIRED'],
    [undefined, 'no_cert'],
  ] as const) {
    assert.ok(
      refused.some((e) => e.cn === cn && e.code === code),
      `no refusal logged for ${cn} ${code}: ${JSON.stringify(refused)}`,
    );
  }
  // The valid agent is served as before.
  const opus = await probe(ports.h1, agent('opus'));
  assert.ok(opus.ok && opus.status === 200 && opus.json.cn === 'opus@ct111', JSON.stringify(opus));
});

const tlsOf = (who: string) => {
  const t = agent(who);
  return { key: t.key, cert: t.cert, ca: t.ca };
};

test("a chain that no longer holds the peer's CA cuts its connections (and a good chain is taken back)", async () => {
  const other = await makeKit([]);
  try {
    const haiku = await openAll('haiku');
    const chain = path.join(dir, 'rivet-ca.crt');
    const saved = fs.readFileSync(chain);
    // Another CA's chain and CRLs: nobody of ours verifies any more.
    installAtomically(path.join(other.caDir, 'crl.pem'), path.join(dir, 'crl.pem'));
    const landed = installAtomically(path.join(other.caDir, 'intermediate', 'chain.pem'), chain);
    await closed(haiku);
    const worst = Math.max(...haiku.map((o) => (o.closedAt ?? Infinity) - landed));
    console.log(`    chain replaced: haiku's ${haiku.length} connections closed within ${Math.round(worst)} ms`);
    assert.ok(worst <= 1000, `${worst} ms`);
    assert.ok(
      events.some((e) => e.event === 'cut' && e.cn === 'haiku@ct111' && e.code === 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY'),
      JSON.stringify(events.slice(-4)),
    );
    fs.writeFileSync(`${chain}.tmp`, saved);
    fs.renameSync(`${chain}.tmp`, chain);
    installAtomically(path.join(kit.caDir, 'crl.pem'), path.join(dir, 'crl.pem'));
    let back: Awaited<ReturnType<typeof probe>> | undefined;
    for (let i = 0; i < 100; i++) {
      back = await probe(ports.h1, agent('haiku'));
      if (back.ok && back.status === 200) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.ok(back?.ok && back.status === 200, JSON.stringify(back));
  } finally {
    fs.rmSync(other.home, { recursive: true, force: true });
  }
});

test('peerIdentity reads no configuration per request: the domain comes with the loaded material', async () => {
  const saved = process.env.RIVET_ENV_FILE;
  // Were .env read per request, every request would now fail (RIVET_ENV_FILE names a missing file).
  process.env.RIVET_ENV_FILE = path.join(kit.home, 'no-such.env');
  try {
    const r = await probe(ports.h1, agent('opus'));
    assert.ok(r.ok && r.status === 200 && r.json.cn === 'opus@ct111', JSON.stringify(r));
  } finally {
    if (saved === undefined) delete process.env.RIVET_ENV_FILE;
    else process.env.RIVET_ENV_FILE = saved;
  }
});

test('maxConnectionAgeMs closes even a valid connection once it is that old', async () => {
  const server = https.createServer(meshServerOptions(loadMeshTls({ dir })), handler as never);
  const stop = watchMeshTls(server, { dir, maxConnectionAgeMs: 300, logger: (e) => events.push(e) });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const o = await keepAlive((server.address() as AddressInfo).port, agent('opus'), 'opus keep-alive');
    const opened = performance.now();
    await closed([o], 2000);
    const age = (o.closedAt ?? Infinity) - opened;
    assert.ok(age >= 200 && age <= 1000, `closed after ${Math.round(age)} ms`);
    assert.ok(events.some((e) => e.code === 'MAX_CONNECTION_AGE' && e.cn === 'opus@ct111'));
  } finally {
    stop();
    server.closeAllConnections();
    server.close();
  }
});

test.run();
