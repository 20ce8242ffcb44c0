// Hot reload (DESIGN §7), the one implementation the mesh servers, mesh clients and the enrollment
// service share. When the key, certificate, chain or CRL files change, new handshakes use them
// without a restart (with fresh session-ticket keys), and every open connection whose peer no
// longer verifies is cut (live.ts). Writers rename files into place, so we watch the directories
// (fs.watch) and, because fs.watch is blind on some network file systems and can miss events, also
// compare file stamps on a short poll. A half-written or inconsistent set is refused and the old
// material stays in force.
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import type { Server as TlsServer } from 'node:tls';
import { loadMeshTls, identityFilePaths, secureContextOptions, type MeshTls, type TlsMaterial } from './tls.ts';
import { ConnectionGuard, stderrLogger, type MeshLogger } from './live.ts';
import { gateServer, type RefusalMode } from './gate.ts';
import type { MeshDomain } from '../core/identity.ts';

export type FollowOptions = {
  /** Quiet time after a change event before reloading (writers rename several files). */
  debounceMs?: number;
  /** Compare file stamps this often too; default 250 ms, so a change is seen well under 1 s. */
  pollMs?: number;
  onError?: (err: Error) => void;
};

/** Calls `onChange` (debounced) when any of `files` is created, replaced or removed. */
export function followFiles(files: readonly string[], onChange: () => void, opts: FollowOptions = {}): () => void {
  const byDir = new Map<string, Set<string>>();
  for (const f of files) {
    const names = byDir.get(path.dirname(f)) ?? new Set<string>();
    byDir.set(path.dirname(f), names.add(path.basename(f)));
  }
  let timer: NodeJS.Timeout | undefined;
  const schedule = () => {
    clearTimeout(timer);
    timer = setTimeout(onChange, opts.debounceMs ?? 50);
  };
  const watchers: fs.FSWatcher[] = [];
  for (const [dir, names] of byDir) {
    try {
      const w = fs.watch(dir, (_event, name) => {
        if (name === null || names.has(name.toString())) schedule();
      });
      w.on('error', (err) => opts.onError?.(err));
      w.unref();
      watchers.push(w);
    } catch {
      /* the directory does not exist (yet): the poll below still sees files appear */
    }
  }
  const stamp = async () =>
    (
      await Promise.all(
        files.map((f) =>
          fsp.stat(f).then(
            (s) => `${s.ino}:${s.size}:${s.mtimeMs}`,
            () => '-',
          ),
        ),
      )
    ).join('|');
  let last: string | undefined;
  let busy = false;
  const poll = setInterval(() => {
    if (busy) return;
    busy = true;
    void stamp()
      .then((s) => {
        if (last !== undefined && s !== last) schedule();
        last = s;
      })
      .finally(() => {
        busy = false;
      });
  }, opts.pollMs ?? 250);
  poll.unref();
  void stamp().then((s) => {
    last ??= s;
  });
  return () => {
    clearTimeout(timer);
    clearInterval(poll);
    for (const w of watchers) w.close();
  };
}

const digestOf = (m: TlsMaterial) => {
  const h = createHash('sha256');
  for (const b of [m.key, m.cert, m.ca, ...m.crl]) h.update(createHash('sha256').update(b).digest());
  return h.digest('hex');
};

/** Resolves true when new material was applied, false when nothing changed or it was refused. */
export type Reload = () => Promise<boolean>;

/** Serialised reloads: load, skip when unchanged, else apply; a failed load keeps the old material. */
export function reloader<T extends TlsMaterial>(
  load: () => T | Promise<T>,
  initial: T,
  apply: (m: T) => void,
  onError?: (err: Error) => void,
): Reload {
  let digest = digestOf(initial);
  let chain: Promise<boolean> = Promise.resolve(false);
  const once = async () => {
    try {
      const next = await load();
      const d = digestOf(next);
      if (d === digest) return false;
      apply(next);
      digest = d;
      return true;
    } catch (err) {
      onError?.(err as Error);
      return false;
    }
  };
  return () => (chain = chain.then(once, once));
}

// Reloaders per node dir, so installCrlBundle can switch this process's servers and clients before
// it answers: when the CA's push returns, the new CRL is enforced here, open connections included.
const reloaders = new Map<string, Set<Reload>>();

export async function reloadWatchers(dir: string): Promise<void> {
  await Promise.all([...(reloaders.get(path.resolve(dir)) ?? [])].map((r) => r()));
}

export type FollowMeshTlsOptions = FollowOptions & { dir: string; agent?: string; domain?: string };

/** Follows a node dir (or one agent's files in it) and hands every new valid set to `apply`. */
export function followMeshTls(
  opts: FollowMeshTlsOptions,
  initial: MeshTls,
  apply: (m: MeshTls) => void,
): { reload: Reload; stop: () => void } {
  const dir = path.resolve(opts.dir);
  // An identity loaded from given files (a user's p12) reloads from those, never as the node.
  const reload = reloader(
    () => loadMeshTls({ dir, agent: opts.agent, domain: opts.domain ?? initial.domain, ...initial.files }),
    initial,
    apply,
    opts.onError,
  );
  const set = reloaders.get(dir) ?? new Set<Reload>();
  reloaders.set(dir, set.add(reload));
  const stopFiles = followFiles(
    identityFilePaths({ dir, agent: opts.agent, files: initial.files }),
    () => void reload(),
    opts,
  );
  return {
    reload,
    stop: () => {
      stopFiles();
      set.delete(reload);
      if (set.size === 0) reloaders.delete(dir);
    },
  };
}

/** Fresh ticket keys with every context: a session resumed from a ticket skips the certificate
 * check, so tickets issued before a revocation (or renewal) must stop working with the old one. */
export function swapContext(server: TlsServer, m: TlsMaterial): void {
  server.setSecureContext({ ...secureContextOptions(m), ticketKeys: randomBytes(48) });
}

export type ConnectionOptions = {
  /** Each refused handshake and each cut connection (peer CN, reason). Default: one line on stderr. */
  logger?: MeshLogger;
  /** Defence in depth: close every client connection this long after it opened. Default: never. */
  maxConnectionAgeMs?: number;
};

export type WatchMeshTlsOptions = FollowOptions &
  ConnectionOptions & {
    dir: string;
    domain?: string;
    /**
     * What a client whose certificate does not verify gets. `explain` (default): an HTTP(S) server
     * finishes the handshake, answers 403 `{ error: { code, message } }` and closes, serving nothing;
     * a plain tls.Server drops the socket. `reset`: drop the socket after the handshake, as Node does.
     */
    refusals?: RefusalMode;
    onReload?: (tls: MeshTls) => void;
  };

export type StopWatching = () => void;

/**
 * Follows `dir` and swaps new TLS material into `server`; cuts open connections whose client no
 * longer verifies; refuses (and logs) clients that do not verify. Returns a function that stops it.
 */
export function watchMeshTls(server: TlsServer, opts: WatchMeshTlsOptions): StopWatching {
  const dir = path.resolve(opts.dir);
  const initial = loadMeshTls({ dir, domain: opts.domain });
  const logger = opts.logger ?? stderrLogger;
  const guard = new ConnectionGuard(initial, {
    domain: initial.domain,
    logger,
    maxConnectionAgeMs: opts.maxConnectionAgeMs,
  });
  gateServer(server, { guard: () => guard, refusals: opts.refusals ?? 'explain', logger });
  swapContext(server, initial); // whatever the server was built with, from now on it is this dir
  const follow = followMeshTls({ ...opts, dir }, initial, (m) => {
    swapContext(server, m);
    guard.update(m);
    opts.onReload?.(m);
  });
  server.once('close', () => follow.stop());
  return follow.stop;
}

/** For a server that builds its own material (the enrollment service): same reload, same cuts. */
export function watchServerTls<T extends TlsMaterial>(
  server: TlsServer,
  opts: FollowOptions &
    ConnectionOptions & {
      files: readonly string[];
      initial: T;
      load: () => T | Promise<T>;
      domain: MeshDomain;
      onReload?: (m: T) => void;
    },
): { reload: Reload; stop: () => void } {
  const guard = new ConnectionGuard(opts.initial, {
    domain: opts.domain,
    logger: opts.logger ?? stderrLogger,
    maxConnectionAgeMs: opts.maxConnectionAgeMs,
  });
  // The service asks for a certificate but decides per route; only verified peers are followed.
  server.on('secureConnection', (socket) => {
    if (!socket.authorized) return;
    const problem = guard.admit(socket);
    if (problem) guard.cut(socket, problem);
  });
  const reload = reloader(
    opts.load,
    opts.initial,
    (m) => {
      swapContext(server, m);
      guard.update(m);
      opts.onReload?.(m);
    },
    opts.onError,
  );
  const stopFiles = followFiles(opts.files, () => void reload(), opts);
  server.once('close', stopFiles);
  return { reload, stop: stopFiles };
}
