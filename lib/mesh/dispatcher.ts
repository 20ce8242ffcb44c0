// The mesh's fetch client: an undici dispatcher that presents our cert and verifies servers like
// meshClientOptions, and that follows its node dir. When this node installs a new CRL or chain,
// new connections use it (a fresh connector, so no TLS session from before is resumed), and every
// pooled connection to a server that no longer verifies is destroyed: the next request has to
// handshake again, and is refused if that server's certificate was revoked.
import { createRequire } from 'node:module';
import type { TLSSocket } from 'node:tls';
import type { Agent, buildConnector } from 'undici';
import { RivetError } from '../core/errors.ts';
import { MESH_MIN_VERSION, meshClientOptions, type MeshClientOptions, type MeshTls } from './tls.ts';
import { ConnectionGuard, stderrLogger } from './live.ts';
import { followMeshTls, type ConnectionOptions, type FollowOptions } from './watch.ts';

export type MeshDispatcherOptions = MeshClientOptions &
  ConnectionOptions &
  FollowOptions & {
    connectTimeoutMs?: number;
    /** Connect here instead of the URL's host and port (curl's --connect-to): the URL's name is still what the server must prove. */
    connectTo?: { host: string; port: number };
    /** Follow the node dir the material came from (default true). */
    follow?: boolean;
  };

/** An undici dispatcher for `fetch(url, { dispatcher })` with the same checks as meshClientOptions. */
export function meshDispatcher(t: MeshTls, opts: MeshDispatcherOptions = {}): Agent {
  // Loaded on first use: undici is most of the CLI's start-up time, and only fetch users need it.
  const undici = createRequire(import.meta.url)('undici') as typeof import('undici');
  const build = (m: MeshTls) =>
    undici.buildConnector({
      key: m.key,
      cert: m.cert,
      ca: m.ca,
      crl: m.crl,
      minVersion: MESH_MIN_VERSION,
      rejectUnauthorized: true,
      servername: opts.servername,
      checkServerIdentity: meshClientOptions(m, opts).checkServerIdentity,
      timeout: opts.connectTimeoutMs ?? 10_000,
    } as buildConnector.BuildOptions);
  let connector = build(t);
  const guard = new ConnectionGuard(t, {
    domain: t.domain,
    logger: opts.logger ?? stderrLogger,
    maxConnectionAgeMs: opts.maxConnectionAgeMs,
  });
  const to = opts.connectTo;
  const connect: buildConnector.connector = (options, callback) =>
    connector(to ? { ...options, hostname: to.host, port: String(to.port) } : options, (err, socket) => {
      if (err) return callback(err, null);
      const problem = guard.admit(socket as TLSSocket);
      if (!problem) return callback(null, socket!);
      socket!.destroy();
      callback(new RivetError(`server refused after a reload: ${problem.message}`, 'server_untrusted'), null);
    });
  const agent = new undici.Agent({ connect });
  if (opts.follow === false) return agent;
  const follow = followMeshTls({ ...opts, dir: t.dir, agent: t.agent, domain: t.domain }, t, (m) => {
    connector = build(m);
    guard.update(m);
  });
  // Stop following with the dispatcher's life.
  const close = agent.close.bind(agent) as (...a: unknown[]) => unknown;
  const destroy = agent.destroy.bind(agent) as (...a: unknown[]) => unknown;
  Object.assign(agent, {
    close: (...a: unknown[]) => {
      follow.stop();
      return close(...a);
    },
    destroy: (...a: unknown[]) => {
      follow.stop();
      return destroy(...a);
    },
  });
  return agent;
}
