// How many connections `serve` holds, and for how long (DESIGN §4.7 "slow clients time out").
// Every open connection is a descriptor; when they run out, accept(), the TLS reload's file reads,
// the audit log and openssl's pipes all fail at once (EMFILE). So:
//   - a source (IPv4 address or IPv6 /64, policy/rate-limit.ts sourceKey) holds at most `maxConnectionsPerSource`;
//     beyond that a new connection is closed on arrival, before a byte of TLS is read;
//   - the whole service holds at most a cap sized from the descriptor limit, leaving room for
//     the work each connection can cause (a file read, an audit append) and a fixed reserve;
//     at the cap, a connection that is not in a request is closed to make room (a new client is
//     served rather than an idle one kept), and only when every connection is busy is the
//     newcomer refused; `server.maxConnections` is the kernel-side backstop just above it;
//   - a client that finishes the TLS handshake must start a request within `idleTimeoutMs`
//     (Node times headers, bodies and keep-alive, but not this gap: without it, a handshake
//     followed by silence held a descriptor for ever).
import fs from 'node:fs';
import type https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { sourceKey } from '../policy/rate-limit.ts';

export type ConnectionLimits = { maxConnections: number; maxConnectionsPerSource: number; idleTimeoutMs: number };

/** Descriptors kept for everything but connections: stdio, the listener, openssl pipes, a signing group's files. */
export const FD_RESERVE = 128;
/** Descriptors one connection may stand for at once: its socket and one file it causes to be open. */
const FDS_PER_CONNECTION = 2;
/** Connections the kernel-side backstop lets through past the cap, so the cap itself is enforced here. */
const BACKSTOP = 16;

export type ConnectionStats = {
  cap: number;
  perSource: number;
  fdLimit: number;
  open: number;
  refused: number;
  evicted: number;
  idleClosed: number;
};
export type ConnectionGuard = { stats: () => ConnectionStats };

type Conn = { socket: Socket; key: string; busy: number; tls?: Socket };

/** The soft RLIMIT_NOFILE of this process (Node raises it to the hard limit at start-up). */
export function descriptorLimit(): number {
  try {
    const line = fs
      .readFileSync('/proc/self/limits', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('Max open files'));
    const soft = Number(line?.split(/\s+/)[3]);
    if (Number.isInteger(soft) && soft > 0) return soft;
  } catch {
    /* not Linux: assume the common default */
  }
  return 1024;
}

/** The connection cap for a descriptor limit: what the limits ask, never more than the descriptors allow. */
export function connectionCap(wanted: number, fdLimit: number): number {
  return Math.max(1, Math.min(wanted, Math.floor((fdLimit - FD_RESERVE) / FDS_PER_CONNECTION)));
}

export function guardConnections(
  server: https.Server,
  limits: ConnectionLimits,
  log: (line: string) => void,
): ConnectionGuard {
  const fdLimit = descriptorLimit();
  const cap = connectionCap(limits.maxConnections, fdLimit);
  const perSource = Math.min(limits.maxConnectionsPerSource, cap);
  server.maxConnections = cap + BACKSTOP;
  const open = new Map<string, Conn>(); // insertion order = age, oldest first
  const bySource = new Map<string, number>();
  const byTls = new WeakMap<Socket, Conn>();
  const counts = { refused: 0, evicted: 0, idleClosed: 0 };
  let lastWarning = 0;
  const warn = (what: string) => {
    if (Date.now() - lastWarning < 60_000) return;
    lastWarning = Date.now();
    log(`${what} (cap ${cap} connections, ${perSource} per source; further notices suppressed for a minute)`);
  };
  const id = (s: Socket) => `${s.remoteAddress}|${s.remotePort}`;
  const forget = (c: Conn, name: string) => {
    if (open.get(name) !== c) return;
    open.delete(name);
    const n = (bySource.get(c.key) ?? 1) - 1;
    if (n > 0) bySource.set(c.key, n);
    else bySource.delete(c.key);
  };
  // The idle connection to close at the cap: of the source holding the most, the oldest. A node
  // enrolling holds one connection; a flood holds many per source, so the flood pays first.
  const evictIdle = (): boolean => {
    let pick: [string, Conn] | undefined;
    let most = 0;
    for (const entry of open) {
      const [, c] = entry;
      const held = bySource.get(c.key) ?? 0;
      if (c.busy === 0 && held > most) {
        pick = entry;
        most = held;
      }
    }
    if (!pick) return false;
    forget(pick[1], pick[0]);
    (pick[1].tls ?? pick[1].socket).destroy();
    counts.evicted++;
    return true;
  };

  // Runs after tls.Server's own listener has wrapped the socket, before any TLS data is read.
  server.on('connection', (socket: Socket) => {
    const key = sourceKey(socket.remoteAddress);
    if (socket.remoteAddress === undefined) return void socket.destroy();
    if ((bySource.get(key) ?? 0) >= perSource) {
      counts.refused++;
      warn(`refusing connections from ${key}: it holds ${perSource}`);
      return void socket.destroy();
    }
    if (open.size >= cap && !evictIdle()) {
      counts.refused++;
      warn('refusing connections: every connection is in a request');
      return void socket.destroy();
    }
    if (counts.evicted > 0 && open.size >= cap - 1)
      warn('at the connection cap: closing the oldest idle connections to make room');
    const name = id(socket);
    const c: Conn = { socket, key, busy: 0 };
    open.set(name, c);
    bySource.set(key, (bySource.get(key) ?? 0) + 1);
    socket.once('close', () => forget(c, name));
  });

  server.on('secureConnection', (tls: Socket) => {
    const c = open.get(id(tls));
    if (!c) return void tls.destroy(); // evicted during its handshake
    c.tls = tls;
    byTls.set(tls, c);
    // Node's http layer destroys a socket whose timeout fires outside a request (socketOnTimeout).
    tls.setTimeout(limits.idleTimeoutMs);
    tls.once('timeout', () => {
      if (c.busy === 0) counts.idleClosed++;
    });
  });

  // Registered before the routes' listener: the idle clock stops once a request is in, and a busy
  // connection is never the one closed to make room. Keep-alive gaps are Node's keepAliveTimeout.
  server.prependListener('request', (req: IncomingMessage, res: ServerResponse) => {
    const c = byTls.get(req.socket);
    if (!c) return;
    c.busy++;
    req.socket.setTimeout(0);
    res.once('close', () => {
      c.busy--;
    });
  });

  return { stats: () => ({ cap, perSource, fdLimit, open: open.size, ...counts }) };
}
