// The last CRL push to each node (DESIGN §5), kept in the CA dir as push-status.json so that serve's
// /metrics can report it: the push runs in the CLI process that revoked, not in the service.
import path from 'node:path';
import type { Ca } from '../ca/handle.ts';
import type { PushResult } from '../distribute/push.ts';
import { PUBLIC_MODE, readText, writeAtomic } from '../sys/files.ts';

export type PushStatus = { ok: boolean; status?: number; at: string; message: string };

const file = (ca: Pick<Ca, 'store'>) => path.join(ca.store.dir, 'push-status.json');

export async function readPushStatus(ca: Pick<Ca, 'store'>): Promise<Record<string, PushStatus>> {
  const text = await readText(file(ca));
  try { return text ? (JSON.parse(text) as Record<string, PushStatus>) : {}; } catch { return {}; }
}

/** Merges one push run into the record (a status file: the last writer wins on a race). */
export async function recordPushStatus(ca: Pick<Ca, 'store'>, results: readonly PushResult[], now = new Date()): Promise<void> {
  if (results.length === 0) return;
  const all = await readPushStatus(ca);
  for (const r of results) all[r.node] = { ok: r.ok, ...(r.status ? { status: r.status } : {}), at: now.toISOString(), message: r.message.slice(0, 200) };
  await writeAtomic(file(ca), `${JSON.stringify(all, null, 2)}\n`, PUBLIC_MODE);
}
