// Per-node push status for `rivet-ca status` and `doctor` (DESIGN §5): last push and its result, the
// crlNumbers the node acknowledged, the chain generation that implies, cert expiry, pull-only.
// A node that has not acknowledged a revocation for more than a few minutes is a failure: until
// its next pull it accepts the revoked certificate.
import type { Ca } from '../ca/handle.ts';
import { issuerCert } from '../ca/handle.ts';
import { readDb, isLive } from '../ca/database.ts';
import { identityFromCommonName } from '../core/identity.ts';
import { subjectCn } from '../x509/cert.ts';
import { readPushState, type LastPush, type Queued } from '../distribute/push-state.ts';
import { coversCurrent, currentCrlNumbers } from '../distribute/push-queue.ts';

/** doctor's finding shape (doctor.ts imports this file, so it is restated here). */
type Finding = { level: 'ok' | 'warn' | 'fail'; what: string; fix?: string };

export const UNACKED_REVOCATION_FAIL_MS = 5 * 60_000;

export type NodePushStatus = {
  node: string;
  pullOnly: boolean;
  certExpires: string;
  lastPush?: LastPush;
  /** CA name → crlNumber the node acknowledged. */
  acknowledged: Record<string, string>;
  upToDate: boolean;
  /** Newest intermediate generation among the CAs it acknowledged a CRL of (its chain has it). */
  chainGeneration?: number;
  queued?: Queued;
  /** Oldest revocation the node has not acknowledged (only while it is not up to date). */
  unackedRevocationSince?: string;
};

export async function nodePushStatus(ca: Ca, now = new Date()): Promise<NodePushStatus[]> {
  const state = await readPushState(ca);
  const current = await currentCrlNumbers(ca).catch(() => new Map<string, bigint>());
  const generations = new Map<string, number>();
  const nodes = new Map<string, Date>();
  const revocations: Date[] = [];
  for (const issuer of await ca.store.intermediates()) {
    const cn = subjectCn(await issuerCert(issuer));
    if (cn) generations.set(cn, issuer.generation);
    for (const e of await readDb(issuer.dir)) {
      if (e.revokedAt && e.notAfter > now) revocations.push(e.revokedAt);
      if (!isLive(e, now)) continue;
      let id;
      try {
        id = identityFromCommonName(e.cn, ca.domain);
      } catch {
        continue;
      }
      if (id.kind !== 'node') continue;
      const have = nodes.get(id.nodeId);
      if (!have || e.notAfter > have) nodes.set(id.nodeId, e.notAfter);
    }
  }
  return [...nodes.keys()].sort().map((node) => {
    const entry = state.nodes[node];
    const acknowledged = entry?.acked ?? {};
    const upToDate = coversCurrent(acknowledged, current);
    const gens = Object.keys(acknowledged)
      .map((n) => generations.get(n))
      .filter((g): g is number => g !== undefined);
    // Revocations since its last acknowledgement (index.txt keeps whole seconds). Before a first
    // one, what it holds is unknown: count those from a few minutes before it was first queued.
    const baseline = entry?.ackedAt
      ? Date.parse(entry.ackedAt) - 1000
      : entry?.queued
        ? Date.parse(entry.queued.since) - UNACKED_REVOCATION_FAIL_MS
        : undefined;
    const unacked = upToDate || baseline === undefined ? [] : revocations.filter((r) => r.getTime() >= baseline);
    const oldest = unacked.sort((a, b) => a.getTime() - b.getTime())[0];
    return {
      node,
      pullOnly: state.pullOnly.includes(node as never),
      certExpires: nodes.get(node)!.toISOString(),
      ...(entry?.last ? { lastPush: entry.last } : {}),
      acknowledged,
      upToDate,
      ...(gens.length ? { chainGeneration: Math.max(...gens) } : {}),
      ...(entry?.queued ? { queued: entry.queued } : {}),
      ...(oldest ? { unackedRevocationSince: oldest.toISOString() } : {}),
    };
  });
}

const crlText = (acked: Record<string, string>) =>
  Object.entries(acked)
    .map(([ca, n]) => `${ca.replace(/^Rivet /, '')} #${n}`)
    .join(', ') || 'none';

/** doctor's findings: ok when up to date or pull-only, warn while queued, fail past the revocation grace. */
export function pushFindings(rows: NodePushStatus[], now = new Date()): Finding[] {
  return rows.map((r): Finding => {
    const facts = `cert until ${r.certExpires.slice(0, 10)}, chain generation ${r.chainGeneration ?? '?'}, acknowledged ${crlText(r.acknowledged)}`;
    const last = r.lastPush
      ? `last push ${r.lastPush.at} ${r.lastPush.ok ? 'ok' : `FAILED (${r.lastPush.message})`}`
      : 'never pushed';
    if (r.pullOnly)
      return {
        level: 'ok',
        what: `node ${r.node}: pull-only (not pushed to; keeps current by its own pull), ${facts}`,
      };
    if (r.upToDate) return { level: 'ok', what: `node ${r.node}: up to date — ${last}, ${facts}` };
    if (!r.queued)
      return {
        level: 'ok',
        what: `node ${r.node}: no acknowledgement of the current CRLs on record — ${last}, ${facts}`,
        fix: '`rivet-ca push` to check',
      };
    const late =
      r.unackedRevocationSince && now.getTime() - Date.parse(r.unackedRevocationSince) > UNACKED_REVOCATION_FAIL_MS;
    return {
      level: late ? 'fail' : 'warn',
      what: `node ${r.node}: has not acknowledged the current CRLs${late ? ` (a revocation of ${r.unackedRevocationSince} among them)` : ''} — ${last}; queued since ${r.queued.since}, retry ${r.queued.attempts} at ${r.queued.next}; ${facts}`,
      fix: 'is its mesh server up and RIVET_CRL_PUSH_URL right? `rivet-ca serve` retries it; a node without a mesh server: `rivet-ca push --pull-only <node>`',
    };
  });
}
