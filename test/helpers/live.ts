// Open connections for the revocation-cut suites: a keep-alive HTTPS connection, a streaming
// response, an HTTP/2 session and a raw TLS socket, each remembering when it closed, and the
// atomic install a node's CRL update does (write beside, rename into place).
import fs from 'node:fs';
import path from 'node:path';
import https from 'node:https';
import http2 from 'node:http2';
import tls from 'node:tls';
import type { Socket } from 'node:net';
import { meshClientOptions, type MeshTls } from '../../lib/index.ts';

/** Installs a file the way provision-ct does: write a temp file beside it, rename into place. */
export function installAtomically(from: string, to: string): number {
  const tmp = path.join(path.dirname(to), `.tmp-${path.basename(to)}`);
  fs.copyFileSync(from, tmp);
  fs.renameSync(tmp, to);
  return performance.now();
}

export type Open = { what: string; closedAt?: number; chunks: number; socket: Socket; close: () => void };

function remember(what: string, socket: Socket, extra: Partial<Open> = {}): Open {
  const o: Open = { what, chunks: 0, socket, close: () => socket.destroy(), ...extra };
  socket.once('close', () => {
    o.closedAt ??= performance.now();
  });
  return o;
}

const connect = (client: MeshTls) => ({ ...meshClientOptions(client), host: '127.0.0.1', servername: 'ct111.mesh' });

/** One GET on a keep-alive agent; resolves with the pooled socket (and the agent to reuse it). */
export function keepAlive(
  port: number,
  client: MeshTls,
  what: string,
): Promise<Open & { again: () => Promise<{ status: number; reused: boolean }> }> {
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1, ...connect(client) });
  const get = () =>
    new Promise<{ status: number; reused: boolean; socket: Socket }>((resolve, reject) => {
      const req = https.get({ ...connect(client), port, path: '/whoami', agent }, (res) => {
        const socket = res.socket;
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, reused: req.reusedSocket, socket }));
      });
      req.on('error', reject);
    });
  return get().then(({ status, socket }) => {
    if (status !== 200) throw new Error(`${what}: keep-alive GET answered ${status}`);
    const o = remember(what, socket, { close: () => agent.destroy() });
    return Object.assign(o, { again: () => get().then(({ status: s, reused }) => ({ status: s, reused })) });
  });
}

/** A GET /stream left open: the server writes a line every 50 ms until the connection ends. */
export function stream(port: number, client: MeshTls, what: string): Promise<Open> {
  return new Promise((resolve, reject) => {
    const req = https.get({ ...connect(client), port, path: '/stream', agent: false }, (res) => {
      if (res.statusCode !== 200) return reject(new Error(`${what}: /stream answered ${res.statusCode}`));
      const o = remember(what, res.socket);
      res.on('data', () => {
        o.chunks++;
      });
      res.on('error', () => {});
      res.once('data', () => resolve(o));
    });
    req.on('error', reject);
  });
}

/** An HTTP/2 session with one streaming request open on it. */
export function h2stream(port: number, client: MeshTls, what: string): Promise<Open> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`https://127.0.0.1:${port}`, connect(client));
    session.on('error', () => {});
    const req = session.request({ ':path': '/stream' });
    req.on('error', () => {});
    req.on('response', (h) => {
      if (h[':status'] !== 200) reject(new Error(`${what}: h2 /stream answered ${h[':status']}`));
    });
    req.once('data', () => {
      const o = remember(what, session.socket as Socket, { close: () => session.destroy() });
      req.on('data', () => {
        o.chunks++;
      });
      resolve(o);
    });
    session.once('close', () => reject(new Error(`${what}: h2 session closed before data`)));
  });
}

/** A raw TLS connection to a tls.Server that writes a line every 50 ms. */
export function rawTls(port: number, client: MeshTls, what: string): Promise<Open> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ ...connect(client), port });
    s.on('error', () => {});
    s.once('close', () => reject(new Error(`${what}: closed before data`)));
    s.once('data', () => {
      const o = remember(what, s);
      s.on('data', () => {
        o.chunks++;
      });
      resolve(o);
    });
  });
}

/** Waits until every one of `opens` closed or `ms` passed. */
export async function closed(opens: Open[], ms = 3000): Promise<void> {
  const end = performance.now() + ms;
  while (opens.some((o) => o.closedAt === undefined) && performance.now() < end)
    await new Promise((r) => setTimeout(r, 10));
}
