// Hot reload (DESIGN §7): when node.crt/key, rivet-ca.crt or crl.pem change, new handshakes use
// them without a restart. Writers rename files into place, so we watch the directory and debounce.
// A half-written or inconsistent set is refused and the old context stays in force.
import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Server as TlsServer } from 'node:tls';
import { loadMeshTls, meshTlsFiles, secureContextOptions, type MeshTls } from './tls.ts';

export type WatchMeshTlsOptions = {
  dir: string;
  domain?: string;
  debounceMs?: number;
  /** Re-check by file stamps this often too (fs.watch is blind on some network file systems). */
  pollMs?: number;
  onReload?: (tls: MeshTls) => void;
  onError?: (err: Error) => void;
};

export type StopWatching = () => void;

type Reloader = () => Promise<void>;
// Reloaders per node dir, so crlReceiver can switch servers of this process before it answers:
// when the CA's push returns, the new CRL is already enforced here.
const reloaders = new Map<string, Set<Reloader>>();

export async function reloadWatchers(dir: string): Promise<void> {
  await Promise.all([...(reloaders.get(path.resolve(dir)) ?? [])].map((r) => r()));
}

function stamp(files: string[]): string {
  return files.map((f) => { try { const s = fs.statSync(f); return `${s.ino}:${s.size}:${s.mtimeMs}`; } catch { return '-'; } }).join('|');
}

/** Follows `dir` and swaps new TLS material into `server`; returns a function that stops it. */
export function watchMeshTls(server: TlsServer, opts: WatchMeshTlsOptions): StopWatching {
  const dir = path.resolve(opts.dir);
  const files = meshTlsFiles(dir);
  const names = new Set(Object.values(files).map((f) => path.basename(f)));
  let last = stamp(Object.values(files));
  let timer: NodeJS.Timeout | undefined;

  const reload: Reloader = async () => {
    clearTimeout(timer);
    last = stamp(Object.values(files));
    try {
      const material = loadMeshTls({ dir, domain: opts.domain });
      // Fresh ticket keys: a session resumed from a ticket skips certificate checks, so tickets
      // issued before a revocation (or renewal) must stop working with the old context.
      server.setSecureContext({ ...secureContextOptions(material), ticketKeys: randomBytes(48) });
      opts.onReload?.(material);
    } catch (err) {
      opts.onError?.(err as Error);
    }
  };
  const schedule = () => {
    clearTimeout(timer);
    timer = setTimeout(() => void reload(), opts.debounceMs ?? 50);
  };

  const watcher = fs.watch(dir, (_event, name) => {
    if (name === null || names.has(name.toString())) schedule();
  });
  watcher.on('error', (err) => opts.onError?.(err));
  const poll = setInterval(() => { if (stamp(Object.values(files)) !== last) schedule(); }, opts.pollMs ?? 30_000);
  poll.unref();
  watcher.unref();

  const set = reloaders.get(dir) ?? new Set<Reloader>();
  set.add(reload);
  reloaders.set(dir, set);
  server.once('close', () => stop());

  function stop(): void {
    clearTimeout(timer);
    clearInterval(poll);
    watcher.close();
    set.delete(reload);
    if (set.size === 0) reloaders.delete(dir);
  }
  return stop;
}
