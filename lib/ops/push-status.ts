// The last CRL push to each node, for serve's /metrics: read from push-state.json (the push queue's
// record, lib/distribute/push-state.ts), which every push writes in whatever process ran it.
import type { Ca } from '../ca/handle.ts';
import { readPushState } from '../distribute/push-state.ts';

export type PushStatus = { ok: boolean; status?: number; at: string; message: string };

export async function readPushStatus(ca: Pick<Ca, 'store'>): Promise<Record<string, PushStatus>> {
  const state = await readPushState(ca).catch(() => undefined);
  const out: Record<string, PushStatus> = {};
  for (const [node, e] of Object.entries(state?.nodes ?? {})) {
    if (e.last)
      out[node] = {
        ok: e.last.ok,
        ...(e.last.status ? { status: e.last.status } : {}),
        at: e.last.at,
        message: e.last.message,
      };
  }
  return out;
}
