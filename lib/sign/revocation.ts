// Revoking certificates of any issuers in one step: one atomic database write per issuer
// (signer.ts revokeSerials) and one CRL signature per touched issuer, inside withCrlPending so a
// kill between the database and the CRL is repaired by the next transaction. The caller holds
// the CA lock.
import type { Ca } from '../ca/handle.ts';
import type { Issuer } from '../ca/store.ts';
import { revokeSerials, type RevocationReason } from './signer.ts';
import { refreshCrlsLocked } from './crl-sign.ts';
import { withCrlPending } from './transaction.ts';

export type RevokeTarget = { issuer: Issuer; serial: string };

/** Revokes every target with `reason`; returns the targets that were not live (left alone). */
export async function revokeLocked(
  ca: Ca,
  targets: readonly RevokeTarget[],
  reason: RevocationReason,
): Promise<RevokeTarget[]> {
  if (targets.length === 0) return [];
  const byIssuer = new Map<string, { issuer: Issuer; serials: string[] }>();
  for (const t of targets) {
    const entry = byIssuer.get(t.issuer.dir) ?? { issuer: t.issuer, serials: [] };
    entry.serials.push(t.serial);
    byIssuer.set(t.issuer.dir, entry);
  }
  const missed: RevokeTarget[] = [];
  await withCrlPending(ca, async () => {
    for (const { issuer, serials } of byIssuer.values()) {
      for (const serial of await revokeSerials(issuer, serials, reason)) missed.push({ issuer, serial });
    }
    await refreshCrlsLocked(ca, { forceFor: [...byIssuer.values()].map((e) => e.issuer) });
  });
  return missed;
}

/** The issuer whose database lives in `dir`. */
export async function issuerOfDir(ca: Ca, dir: string): Promise<Issuer | undefined> {
  return (await ca.store.intermediates()).find((i) => i.dir === dir);
}
