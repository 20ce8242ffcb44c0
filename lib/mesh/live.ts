// Open connections follow revocation (DESIGN §5). A new CRL or chain swaps the context for *new*
// handshakes only; an HTTP keep-alive connection, a streaming response or an HTTP/2 session made
// before it would live on. So every verified connection is tracked here, and each reload re-checks
// its peer chain against the new material (trust.ts) and destroys the ones that no longer verify.
// Valid peers' connections are left alone: the cut is per connection, not a restart.
import type { TLSSocket } from 'node:tls';
import type { X509Certificate } from 'node:crypto';
import { subjectCn } from '../x509/cert.ts';
import type { MeshDomain } from '../core/identity.ts';
import { chainProblem, peerChain, trustState, type TrustProblem, type TrustState } from './trust.ts';

/** One refused handshake or one cut connection, for the server's log. */
export type MeshLogEvent = {
  event: 'refused' | 'cut';
  /** `server`: we refused/cut a client; `client`: we cut our connection to a server. */
  side: 'server' | 'client';
  cn?: string;
  /** OpenSSL's verify-error name (CERT_REVOKED, …) or ours (no_cert, MAX_CONNECTION_AGE). */
  code: string;
  reason: string;
  remote?: string;
};
export type MeshLogger = (event: MeshLogEvent) => void;

/** The default logger: one line on stderr per event (a refusal is a security event). */
export const stderrLogger: MeshLogger = (e) => {
  const who = e.cn ? JSON.stringify(e.cn) : 'a peer without a certificate';
  const what =
    e.event === 'refused' ? `refused ${who}` : `cut the connection ${e.side === 'server' ? 'from' : 'to'} ${who}`;
  process.stderr.write(`rivet mesh: ${what}${e.remote ? ` (${e.remote})` : ''}: ${e.reason} [${e.code}]\n`);
};

export type GuardOptions = {
  domain: MeshDomain;
  logger?: MeshLogger;
  /** Defence in depth: close every connection this long after it was opened, valid or not. */
  maxConnectionAgeMs?: number;
};

type Tracked = { guard: ConnectionGuard; leaf: X509Certificate; sent: X509Certificate[]; key: string };
const tracked = new WeakMap<TLSSocket, Tracked>();
const cut = new WeakSet<TLSSocket>();

/** The mesh domain of the material a tracked socket was admitted with (peerIdentity reads it). */
export function trackedDomain(socket: TLSSocket): MeshDomain | undefined {
  return tracked.get(socket)?.guard.domain;
}

/** True once a socket was cut for a failed re-check: nothing more may be served on it. */
export function wasCut(socket: TLSSocket): boolean {
  return cut.has(socket);
}

export const sideOf = (socket: TLSSocket): 'server' | 'client' =>
  (socket as TLSSocket & { server?: unknown }).server ? 'server' : 'client';

export function peerCn(socket: TLSSocket): string | undefined {
  try {
    const x = socket.getPeerX509Certificate?.();
    return x ? subjectCn(x) : undefined;
  } catch {
    return undefined;
  }
}

/** The open connections of one server or one client, checked against one node dir's trust. */
export class ConnectionGuard {
  private readonly sockets = new Set<TLSSocket>();
  // Verdicts per distinct peer chain for the current trust state: a thousand connections from
  // one agent cost one path check.
  private verdicts = new Map<string, TrustProblem | null>();
  private trust: TrustState;

  constructor(
    material: { ca: Buffer; crl: readonly Buffer[] },
    private readonly opts: GuardOptions,
  ) {
    this.trust = trustState(material);
  }

  get domain(): MeshDomain {
    return this.opts.domain;
  }
  get size(): number {
    return this.sockets.size;
  }

  /**
   * Starts following a verified connection, or returns the reason it fails *now* (then it is not
   * followed, and the caller refuses it): a handshake that began under the previous material can
   * finish after a reload. A connection without a peer certificate (a legacy bearer client) has
   * nothing to re-check.
   */
  admit(socket: TLSSocket): TrustProblem | undefined {
    if (socket.destroyed || tracked.has(socket)) return undefined;
    const chain = peerChain(socket);
    if (!chain) return undefined;
    const entry: Tracked = {
      guard: this,
      ...chain,
      key: [chain.leaf, ...chain.sent].map((c) => c.fingerprint256).join('/'),
    };
    const problem = this.verdict(entry);
    if (problem) return problem;
    tracked.set(socket, entry);
    this.sockets.add(socket);
    let timer: NodeJS.Timeout | undefined;
    if (this.opts.maxConnectionAgeMs && this.opts.maxConnectionAgeMs > 0) {
      const age = this.opts.maxConnectionAgeMs;
      timer = setTimeout(
        () =>
          this.cut(socket, {
            code: 'MAX_CONNECTION_AGE',
            message: `connection open for ${age} ms (maxConnectionAgeMs) — reconnect`,
          }),
        age,
      );
      timer.unref();
    }
    socket.once('close', () => {
      this.sockets.delete(socket);
      clearTimeout(timer);
    });
    return undefined;
  }

  /** New trust material: re-checks every open connection, destroys those that no longer verify. */
  update(material: { ca: Buffer; crl: readonly Buffer[] }): { checked: number; cut: number } {
    this.trust = trustState(material);
    this.verdicts = new Map();
    let n = 0;
    const open = [...this.sockets];
    for (const socket of open) {
      const entry = tracked.get(socket);
      const problem = entry && this.verdict(entry);
      if (problem) {
        this.cut(socket, problem);
        n++;
      }
    }
    return { checked: open.length, cut: n };
  }

  private verdict(entry: Tracked): TrustProblem | undefined {
    let v = this.verdicts.get(entry.key);
    if (v === undefined) {
      v = chainProblem(entry.leaf, entry.sent, this.trust) ?? null;
      if (this.verdicts.size > 10_000) this.verdicts.clear();
      this.verdicts.set(entry.key, v);
    }
    return v ?? undefined;
  }

  /** Destroys `socket` now and logs why. */
  cut(socket: TLSSocket, problem: TrustProblem): void {
    if (socket.destroyed) return;
    cut.add(socket);
    this.opts.logger?.({
      event: 'cut',
      side: sideOf(socket),
      cn: peerCn(socket),
      code: problem.code,
      reason: problem.message,
      remote: socket.remoteAddress,
    });
    socket.destroy();
    this.sockets.delete(socket);
  }
}
