// Red team, issue 13: the `explain` refusal. A revoked agent that finishes the handshake must get
// nothing but its one JSON error — no handler call for pipelined HTTP/1.1 requests or for HTTP/2
// streams opened after the refusal — and must not be able to hold the socket open by trickling
// bytes (docs/LIBRARY.md: destroyed after at most 1 s or 64 KiB of discarded input).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import path from 'node:path';
import https from 'node:https';
import http2 from 'node:http2';
import tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import { makeKit, type Kit } from './helpers/pki-kit.ts';
import { loadMeshTls, meshServerOptions, meshClientOptions, watchMeshTls, type MeshTls } from '../lib/index.ts';

let kit: Kit;
let dir: string;
let opus: MeshTls;
let handled = 0;
const servers: Array<{ close: (cb: () => void) => void; port: number }> = [];

async function listen(server: https.Server | http2.Http2SecureServer): Promise<number> {
  watchMeshTls(server as unknown as tls.Server, { dir, logger: () => {} });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  servers.push({ close: (cb) => server.close(cb), port });
  return port;
}

test.before(async () => {
  kit = await makeKit(['ct111', 'opus@ct111']);
  dir = await kit.nodeDir('ct111', ['opus']);
  opus = loadMeshTls({ dir, agent: 'opus' });
  const r = await kit.cli(['revoke', 'opus@ct111']);
  assert.is(r.exitCode, 0, r.stderr);
  fs.copyFileSync(path.join(kit.caDir, 'crl.pem'), path.join(dir, 'crl.pem'));
});
test.after(async () => {
  for (const s of servers) {
    (s as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
    await new Promise<void>((r) => s.close(() => r()));
  }
  if (kit) fs.rmSync(kit.home, { recursive: true, force: true });
});

test('HTTP/1.1: pipelined requests and a trickling sender get one 403 and a closed socket, no handler call', async () => {
  const port = await listen(
    https.createServer(meshServerOptions(loadMeshTls({ dir })), (_req, res) => {
      handled++;
      res.end('served');
    }),
  );
  const before = handled;
  const t0 = performance.now();
  const got = await new Promise<string>((resolve) => {
    const s = tls.connect({ ...meshClientOptions(opus), host: '127.0.0.1', port, servername: 'ct111.mesh' });
    let text = '';
    s.on('secureConnect', () => {
      s.write(
        'GET /a HTTP/1.1\r\nhost: x\r\n\r\nGET /b HTTP/1.1\r\nhost: x\r\n\r\nPOST /c HTTP/1.1\r\nhost: x\r\ncontent-length: 100000\r\n\r\n',
      );
      const drip = setInterval(() => {
        if (!s.destroyed) s.write('x');
      }, 50);
      s.once('close', () => clearInterval(drip));
    });
    s.on('data', (d) => {
      text += d;
    });
    s.on('error', () => {});
    s.once('close', () => resolve(text));
  });
  const heldMs = Math.round(performance.now() - t0);
  console.log(`    refused HTTP/1.1 client held the socket ${heldMs} ms while trickling`);
  assert.is(handled - before, 0, 'no request reached the handler');
  assert.is(got.match(/HTTP\/1\.1 /g)?.length, 1, `exactly one response: ${got}`);
  assert.match(got, /^HTTP\/1\.1 403 .*"code":"cert_revoked"/s);
  assert.not.match(got, /served/);
  assert.ok(heldMs < 2000, `socket destroyed after at most ~1 s, held ${heldMs} ms`);
});

test('HTTP/2: streams opened after the refusal get 403, never the handler; the session ends', async () => {
  const port = await listen(
    http2.createSecureServer(meshServerOptions(loadMeshTls({ dir })), (_req, res) => {
      handled++;
      res.end('served');
    }),
  );
  const before = handled;
  const t0 = performance.now();
  const session = http2.connect(`https://127.0.0.1:${port}`, {
    ...meshClientOptions(opus),
    servername: 'ct111.mesh',
  } as http2.SecureClientSessionOptions);
  session.on('error', () => {});
  const one = (p: string) =>
    new Promise<string>((resolve) => {
      let req: http2.ClientHttp2Stream;
      try {
        req = session.request({ ':path': p });
      } catch {
        resolve('not sent');
        return;
      }
      let status = 0;
      let body = '';
      req.on('response', (h) => {
        status = Number(h[':status']);
      });
      req.on('data', (d) => {
        body += d;
      });
      req.on('error', () => {});
      req.on('close', () => resolve(`${status} ${body}`));
      req.end();
    });
  const answers = await Promise.all([one('/a'), one('/b'), one('/c')]);
  const later = await new Promise<string>((r) => setTimeout(() => void one('/d').then(r), 200));
  await new Promise<void>((r) => {
    if (session.destroyed || session.closed) r();
    else session.once('close', () => r());
  });
  const heldMs = Math.round(performance.now() - t0);
  console.log(`    refused HTTP/2 client: ${JSON.stringify([...answers, later])}, session closed after ${heldMs} ms`);
  assert.is(handled - before, 0, 'no stream reached the handler');
  for (const a of [...answers, later]) assert.not.match(a, /served/);
  assert.ok(
    answers.some((a) => /^403 .*cert_revoked/.test(a)),
    `a 403 explained it: ${JSON.stringify(answers)}`,
  );
  assert.ok(heldMs < 2500, `session closed, held ${heldMs} ms`);
});

test.run();
