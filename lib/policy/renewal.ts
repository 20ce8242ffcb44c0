// Bounded renewal (DESIGN §4.3, issue 14: one agent made 2,000 live certificates at /renew with
// one replayed CSR). Three rules decide what a renewal at the service does:
//   - window: a certificate renews only in the last third of its life, so a fresh one cannot be
//     turned into a stream of new ones (`notDue` answers with the date the window opens);
//   - idempotence: asking again for what was already given (the same key and names, a newer
//     live certificate of the same identity that is not itself due) gets that certificate back, not a
//     new one — a node killed before it stored the reply resumes, a replay gains nothing;
//   - at most 2 live certificates per identity: a new one supersedes every other live certificate
//     of the identity but the one in use (revoked as `superseded`), so a third never exists.
// `rivet-ca renew` on the CA host keeps its own --within rule (the operator decides there) but
// the same cap (lib/ops/issue.ts reissueWithSameKey).
import type { DbEntry } from '../ca/database.ts';

/** The share of a certificate's life at its end during which it may renew. */
export const RENEWAL_WINDOW = 1 / 3;
// The caps themselves live in lib/core/limits.ts, which derives the largest CRL bundle from them.
export { MAX_AGENTS_PER_NODE, MAX_LIVE_NODES, MAX_LIVE_PER_IDENTITY } from '../core/limits.ts';

export type Validity = { notBefore: Date; notAfter: Date };

/** When the renewal window of a certificate opens. */
export function renewalOpensAt(v: Validity, window = RENEWAL_WINDOW): Date {
  const life = v.notAfter.getTime() - v.notBefore.getTime();
  return new Date(v.notAfter.getTime() - Math.floor(life * window));
}

export function inRenewalWindow(v: Validity, now = new Date(), window = RENEWAL_WINDOW): boolean {
  return now.getTime() >= renewalOpensAt(v, window).getTime();
}

/** A live certificate of the identity as the plan sees it: its row, key and validity. */
export type Held = {
  dir: string;
  row: DbEntry;
  key?: Buffer;
  validity?: Validity;
  names?: { dns: readonly string[]; ips: readonly string[] };
};

export type RenewalPlan = { reuse?: Held; supersede: Held[] };

/**
 * What a renewal of an identity does, given its live certificates `held`, the key asked for, and
 * `keep`: the certificate that must stay (the one presented at /renew; for /agents the newest
 * held). `fresherThan`: a certificate to reuse must not start before this (the presented one, or for an
 * agent its node's newest certificate, so agents still piggyback on a renewed node).
 */
export function planRenewal(
  held: readonly Held[],
  key: Buffer,
  keep: string | undefined,
  fresherThan: Date | undefined,
  want?: Held['names'],
  now = new Date(),
): RenewalPlan {
  const same = (a: readonly string[], b: readonly string[]) => a.length === b.length && a.every((x) => b.includes(x));
  const reuse = held
    .filter(
      (h) =>
        h.key?.equals(key) &&
        h.validity &&
        !inRenewalWindow(h.validity, now) &&
        (!want || (h.names !== undefined && same(h.names.dns, want.dns) && same(h.names.ips, want.ips))) &&
        (fresherThan === undefined || h.validity.notBefore.getTime() >= fresherThan.getTime()),
    )
    .sort((a, b) => b.row.notAfter.getTime() - a.row.notAfter.getTime())[0];
  if (reuse) return { reuse, supersede: [] };
  return { supersede: held.filter((h) => h.row.serial !== keep) };
}

/** The newest of `held` by notAfter, or undefined. */
export function newest(held: readonly Held[]): Held | undefined {
  return [...held].sort((a, b) => b.row.notAfter.getTime() - a.row.notAfter.getTime())[0];
}
