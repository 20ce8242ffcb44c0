// Pushes that reach everyone (DESIGN §5): every push is recorded in push-state.json, and a node that
// has not acknowledged the current crlNumber of every CA (its receiver's 200 body) stays queued and
// is retried with exponential backoff — by `serve`'s timer and once per `rivet-ca renew` — until it
// does, its node certificate expires or is revoked, or it is marked pull-only.
import fsp from 'node:fs/promises';
import type { Ca } from '../ca/handle.ts';
import type { NodeId } from '../core/identity.ts';
import { parseCrlBundle } from '../x509/crl.ts';
import { pushCrl, pushTargets, type PushOptions, type PushResult } from './push.ts';
import { readPushState, updatePushState, type NodePush, type PushState, type Queued } from './push-state.ts';

// 2 s, 4 s, … capped at 20 s: a node whose link comes back is reached within ~20 s plus one push,
// inside the 30 s the mesh promises (issue 15), while a node down for days costs 3 pushes a minute.
export const RETRY_FIRST_MS = 2_000;
export const RETRY_CAP_MS = 20_000;

export function retryDelayMs(attempts: number): number {
  return Math.min(RETRY_CAP_MS, RETRY_FIRST_MS * 2 ** Math.max(0, attempts - 1));
}

/** CA name → crlNumber of the CRLs in the published bundle: what every node should acknowledge. */
export async function currentCrlNumbers(ca: Ca): Promise<Map<string, bigint>> {
  const out = new Map<string, bigint>();
  for (const crl of parseCrlBundle(await fsp.readFile(ca.store.crlBundle, 'utf8'))) {
    if (crl.issuerCNs[0] && crl.crlNumber !== undefined) out.set(crl.issuerCNs[0], crl.crlNumber);
  }
  return out;
}

export function coversCurrent(acked: Record<string, string>, current: ReadonlyMap<string, bigint>): boolean {
  return [...current].every(([name, n]) => acked[name] !== undefined && BigInt(acked[name]) >= n);
}

export type PushOutcome = PushResult & { acknowledged: boolean; queued?: Queued };

function record(entry: NodePush, r: PushResult, current: ReadonlyMap<string, bigint>, now: Date): PushOutcome {
  const { node: _n, url: _u, crls, ...last } = r;
  entry.last = { at: now.toISOString(), ...last };
  for (const c of crls ?? []) {
    const have = entry.acked[c.issuer];
    if (have === undefined || BigInt(c.crlNumber) > BigInt(have)) entry.acked[c.issuer] = c.crlNumber;
  }
  const acknowledged = coversCurrent(entry.acked, current);
  if (acknowledged) {
    entry.ackedAt = now.toISOString();
    delete entry.queued;
  } else {
    // A 200 that does not cover the current bundle (it changed meanwhile) is retried soon, too.
    const attempts = r.ok ? 1 : (entry.queued?.attempts ?? 0) + 1;
    entry.queued = {
      since: entry.queued?.since ?? now.toISOString(),
      attempts,
      next: new Date(now.getTime() + retryDelayMs(attempts)).toISOString(),
    };
  }
  return { ...r, acknowledged, ...(entry.queued ? { queued: { ...entry.queued } } : {}) };
}

/** Drops queue entries (and history) of nodes that no longer hold a live node certificate. */
function prune(s: PushState, live: ReadonlySet<string>): void {
  for (const n of Object.keys(s.nodes)) if (!live.has(n)) delete s.nodes[n];
}

export type PushRun = { outcomes: PushOutcome[]; pullOnly: NodeId[] };

/**
 * Pushes the current bundle and chain to `nodes` (default: every live node that is not pull-only),
 * records each answer and queues whoever did not acknowledge. Pull-only nodes are left out.
 */
export async function pushAndRecord(ca: Ca, opts: PushOptions, nodes?: readonly NodeId[]): Promise<PushRun> {
  const live = await pushTargets(ca);
  const { pullOnly } = await readPushState(ca);
  const skip = new Set<string>(pullOnly);
  const targets = (nodes ?? live).filter((n) => !skip.has(n));
  const results = await pushCrl(ca, opts, targets);
  const current = await currentCrlNumbers(ca);
  const now = new Date();
  const outcomes = await updatePushState(ca, (s) => {
    prune(s, new Set(live));
    return results.map((r) => record((s.nodes[r.node] ??= { acked: {} }), r, current, now));
  });
  return { outcomes, pullOnly: live.filter((n) => skip.has(n)) };
}

/** Queued nodes whose retry is due (`all`: every queued node, as `rivet-ca renew` asks). */
export async function dueRetries(ca: Ca, opts: { all?: boolean; now?: Date } = {}): Promise<NodeId[]> {
  const s = await readPushState(ca);
  const now = (opts.now ?? new Date()).getTime();
  const live = new Set<string>(await pushTargets(ca));
  return Object.entries(s.nodes)
    .filter(
      ([n, e]) =>
        e.queued && live.has(n) && !s.pullOnly.includes(n as NodeId) && (opts.all || Date.parse(e.queued.next) <= now),
    )
    .map(([n]) => n as NodeId);
}

export async function retryQueued(ca: Ca, opts: PushOptions, which: { all?: boolean } = {}): Promise<PushOutcome[]> {
  const due = await dueRetries(ca, which);
  return due.length ? (await pushAndRecord(ca, opts, due)).outcomes : [];
}

export type PushRetries = { stop: () => void; pushAll: () => Promise<void> };

/**
 * `serve`'s retry timer: every `tickMs` it retries the queued nodes that are due. One pass at a
 * time; a failing pass is logged and the next tick tries again.
 */
export function startPushRetries(ca: Ca, opts: PushOptions, log: (line: string) => void, tickMs = 1_000): PushRetries {
  let busy: Promise<unknown> | undefined;
  const report = (outcomes: PushOutcome[]) => {
    for (const o of outcomes)
      log(
        `push ${o.node}: ${o.acknowledged ? 'acknowledged' : `${o.ok ? 'not yet current' : 'FAILED'} (${o.message}); retry ${o.queued?.attempts ?? ''} at ${o.queued?.next ?? '?'}`}`,
      );
  };
  const once = (fn: () => Promise<PushOutcome[]>) => {
    if (busy) return busy;
    busy = fn()
      .then(report, (err) => log(`push retry failed (will retry): ${(err as Error).message}`))
      .finally(() => {
        busy = undefined;
      });
    return busy;
  };
  const timer = setInterval(() => void once(() => retryQueued(ca, opts)), tickMs);
  timer.unref();
  return {
    stop: () => clearInterval(timer),
    pushAll: async () => {
      await once(async () => (await pushAndRecord(ca, opts)).outcomes);
    },
  };
}
