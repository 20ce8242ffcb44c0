// What the CA host remembers about pushing to nodes (DESIGN §5), in <CA dir>/push-state.json: per
// node the last push and its result, the crlNumbers it acknowledged (the receiver's 200 body), the
// retry entry while it has not, and which nodes are pull-only. One small file, written atomically
// under its own lock, so `serve`'s retry loop and a CLI run never lose each other's updates; the
// lock is held only for read-modify-write, never across network I/O.
import path from 'node:path';
import type { Ca } from '../ca/handle.ts';
import { RivetError, show } from '../core/errors.ts';
import { nodeId, type NodeId } from '../core/identity.ts';
import { readText, writeAtomic } from '../sys/files.ts';
import { withLock } from '../sys/lock.ts';

export const PUSH_STATE_FILE = 'push-state.json';

export type LastPush = { at: string; ok: boolean; status?: number; code?: string; ms: number; message: string };
/** A node that has not acknowledged the current CRLs: when it fell behind, how often tried, when next. */
export type Queued = { since: string; attempts: number; next: string };
export type NodePush = {
  last?: LastPush;
  /** CA name (e.g. "Rivet Intermediate CA 2") → the highest crlNumber the node answered with. */
  acked: Record<string, string>;
  /** When the node last acknowledged every CRL that was current then. */
  ackedAt?: string;
  queued?: Queued;
};
export type PushState = { pullOnly: NodeId[]; nodes: Record<string, NodePush> };

export const pushStatePath = (ca: Pick<Ca, 'store'>) => path.join(ca.store.dir, PUSH_STATE_FILE);
const lockPath = (ca: Pick<Ca, 'store'>) => path.join(ca.store.dir, '.push-state.lock');

const emptyState = (): PushState => ({ pullOnly: [], nodes: {} });

function parse(text: string, file: string): PushState {
  try {
    const raw = JSON.parse(text) as Partial<PushState>;
    const state = emptyState();
    state.pullOnly = (raw.pullOnly ?? []).map((n) => nodeId(String(n)));
    for (const [n, v] of Object.entries(raw.nodes ?? {})) {
      nodeId(n);
      state.nodes[n] = {
        ...v,
        acked: Object.fromEntries(Object.entries(v.acked ?? {}).filter(([, num]) => /^\d{1,40}$/.test(String(num)))),
      };
    }
    return state;
  } catch (err) {
    throw new RivetError(
      `${show(file)} is damaged (${(err as Error).message}) — move it aside; the next push rewrites it (pull-only marks must then be set again)`,
      'bad_settings',
    );
  }
}

export async function readPushState(ca: Pick<Ca, 'store'>): Promise<PushState> {
  const file = pushStatePath(ca);
  const text = await readText(file);
  return text === undefined ? emptyState() : parse(text, file);
}

/** Read-modify-write under the push-state lock; `fn` mutates the fresh state it is given. */
export async function updatePushState<T>(ca: Pick<Ca, 'store'>, fn: (s: PushState) => T | Promise<T>): Promise<T> {
  return withLock(
    lockPath(ca),
    'update push-state.json',
    async () => {
      const state = await readPushState(ca);
      const out = await fn(state);
      state.pullOnly = [...new Set(state.pullOnly)].sort();
      const nodes = Object.fromEntries(Object.entries(state.nodes).sort(([a], [b]) => a.localeCompare(b)));
      await writeAtomic(pushStatePath(ca), `${JSON.stringify({ pullOnly: state.pullOnly, nodes }, null, 2)}\n`, 0o600);
      return out;
    },
    { timeoutMs: 30_000 },
  );
}

/** Marks (or unmarks) nodes pull-only: not pushed to, not counted as failed; their queue entry goes. */
export async function setPullOnly(ca: Pick<Ca, 'store'>, nodes: readonly NodeId[], pullOnly: boolean): Promise<void> {
  await updatePushState(ca, (s) => {
    const set = new Set(s.pullOnly);
    for (const n of nodes) {
      if (pullOnly) {
        set.add(n);
        if (s.nodes[n]) delete s.nodes[n]!.queued;
      } else set.delete(n);
    }
    s.pullOnly = [...set];
  });
}
