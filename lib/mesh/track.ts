// The one call for code that handles its own sockets (a tls.connect client made from
// meshClientOptions, a server that takes sockets out of band): follow this connection, and cut it
// when the node dir's new CRLs or chain make its peer fail. Servers built with watchMeshTls and
// clients built with meshDispatcher do this by themselves.
import path from 'node:path';
import type { TLSSocket } from 'node:tls';
import { ConnectionGuard, sideOf, stderrLogger } from './live.ts';
import { followMeshTls, type ConnectionOptions } from './watch.ts';
import type { MeshTls } from './tls.ts';

// One guard per node dir (and agent), shared by every socket tracked with its material.
const guards = new Map<string, ConnectionGuard>();

function guardFor(t: MeshTls, opts: ConnectionOptions): ConnectionGuard {
  const dir = path.resolve(t.dir);
  const key = `${dir}\0${t.agent ?? ''}`;
  let guard = guards.get(key);
  if (!guard) {
    const g = new ConnectionGuard(t, {
      domain: t.domain,
      logger: opts.logger ?? stderrLogger,
      maxConnectionAgeMs: opts.maxConnectionAgeMs,
    });
    followMeshTls({ dir, agent: t.agent, domain: t.domain }, t, (m) => g.update(m));
    guards.set(key, (guard = g));
  }
  return guard;
}

/**
 * Follows `socket` (made with `t`'s material) until it closes; destroys it as soon as the node
 * dir's material no longer verifies its peer, or at once if it already does not. Call it once
 * the handshake is done ('secureConnect' / 'secureConnection'); earlier, it waits for it. The
 * first call for a node dir fixes that dir's logger and maxConnectionAgeMs.
 */
export function trackMeshSocket(socket: TLSSocket, t: MeshTls, opts: ConnectionOptions = {}): void {
  if (!socket.getPeerCertificate()?.raw && !socket.destroyed) {
    socket.once(sideOf(socket) === 'server' ? 'secure' : 'secureConnect', () => trackMeshSocket(socket, t, opts));
    return;
  }
  const guard = guardFor(t, opts);
  const problem = guard.admit(socket);
  if (problem) guard.cut(socket, problem);
}
