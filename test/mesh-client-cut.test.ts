// Issue 13, client side: an agent's pooled connections to a server whose node cert was revoked are
// dropped ≤ 1 s after the *agent's own* node installs the CRL (the server's node never learns of
// it here), and new connections to it are refused; a connection to a valid server stays pooled.
// meshDispatcher does it by itself; a raw tls.connect socket does it with trackMeshSocket.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import path from 'node:path';
import https from 'node:https';
import tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import { fetch } from 'undici';
import { makeKit, type Kit } from './helpers/pki-kit.ts';
import { installAtomically } from './helpers/live.ts';
import {
  loadMeshTls,
  meshServerOptions,
  meshClientOptions,
  meshDispatcher,
  trackMeshSocket,
  watchMeshTls,
  type MeshLogEvent,
} from '../lib/index.ts';

let kit: Kit;
const dirs: Record<string, string> = {};
const ports: Record<string, number> = {};
const stops: Array<() => void> = [];

test.before(async () => {
  kit = await makeKit(['ct111', 'ct112', 'ct113', 'opus@ct111']);
  dirs.ct111 = await kit.nodeDir('ct111', ['opus']);
  for (const node of ['ct112', 'ct113']) {
    dirs[node] = await kit.nodeDir(node);
    const server = https.createServer(meshServerOptions(loadMeshTls({ dir: dirs[node] })), (_req, res) =>
      res.end('ok'),
    );
    server.keepAliveTimeout = 60_000;
    stops.push(watchMeshTls(server, { dir: dirs[node]!, logger: () => {} }));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    ports[node] = (server.address() as AddressInfo).port;
    stops.push(() => {
      server.closeAllConnections();
      server.close();
    });
  }
});
test.after(() => {
  for (const s of stops.reverse()) s();
  if (kit) fs.rmSync(kit.home, { recursive: true, force: true });
});

test("pooled connections to a revoked server are dropped ≤ 1 s after the client's node installs the CRL", async () => {
  const events: MeshLogEvent[] = [];
  const opus = loadMeshTls({ dir: dirs.ct111!, agent: 'opus' });
  const to = (node: string) => {
    const d = meshDispatcher(opus, { servername: `${node}.mesh`, logger: (e) => events.push(e) });
    const seen = { connects: 0, disconnectedAt: undefined as number | undefined };
    d.on('connect', () => {
      seen.connects++;
    });
    d.on('disconnect', () => {
      seen.disconnectedAt ??= performance.now();
    });
    return { d, seen, get: () => fetch(`https://127.0.0.1:${ports[node]}/`, { dispatcher: d }).then((r) => r.text()) };
  };
  const bad = to('ct112');
  const good = to('ct113');
  // The CRL exists at the CA before the connections are made; only its arrival on ct111 counts.
  const r = await kit.cli(['revoke', 'ct112', '--no-push']);
  assert.is(r.exitCode, 0, r.stderr);
  try {
    assert.is(await bad.get(), 'ok');
    assert.is(await good.get(), 'ok');
    const raw = tls.connect({
      ...meshClientOptions(opus),
      host: '127.0.0.1',
      port: ports.ct112,
      servername: 'ct112.mesh',
    });
    let rawClosedAt: number | undefined;
    raw.on('error', () => {});
    raw.on('close', () => {
      rawClosedAt = performance.now();
    });
    trackMeshSocket(raw, opus, { logger: (e) => events.push(e) }); // before the handshake: it waits for it
    await new Promise((res) => raw.once('secureConnect', res));

    const landed = installAtomically(path.join(kit.caDir, 'crl.pem'), path.join(dirs.ct111!, 'crl.pem'));
    for (let i = 0; i < 150 && (bad.seen.disconnectedAt === undefined || rawClosedAt === undefined); i++)
      await new Promise((res) => setTimeout(res, 10));
    const pooledMs = Math.round((bad.seen.disconnectedAt ?? Infinity) - landed);
    const rawMs = Math.round((rawClosedAt ?? Infinity) - landed);
    console.log(
      `    pooled fetch connection to revoked ct112 dropped ${pooledMs} ms, raw tls.connect socket ${rawMs} ms after ct111 installed the CRL`,
    );
    assert.ok(pooledMs <= 1000, `${pooledMs} ms`);
    assert.ok(rawMs <= 1000, `${rawMs} ms`);

    const again = await bad.get().then(
      (t) => `answered ${t}`,
      (err: Error & { cause?: { code?: string; message?: string } }) =>
        `${err.cause?.code ?? ''} ${err.cause?.message ?? err.message}`,
    );
    assert.match(again, /CERT_REVOKED|revoked/i, 'a new connection to the revoked server is refused');
    assert.is(await good.get(), 'ok');
    assert.is(good.seen.connects, 1, 'the valid server is still reached on the pooled connection');
    assert.is(good.seen.disconnectedAt, undefined);
    assert.ok(
      events.some(
        (e) => e.event === 'cut' && e.side === 'client' && e.cn === 'ct112.mesh' && e.code === 'CERT_REVOKED',
      ),
      JSON.stringify(events),
    );
  } finally {
    await bad.d.close();
    await good.d.close();
  }
});

test.run();
