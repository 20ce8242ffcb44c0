// How long a leaf lives (DESIGN §3): 90 days by default, from a minute ago, and never past the
// intermediate that signs it. What `--days` / `--not-before` and every signing path agree on.
import type { X509Certificate } from 'node:crypto';
import { LEAF_DAYS } from './profile.ts';
import { DAY_MS } from '../core/duration.ts';
import { RivetError, UsageError } from '../core/errors.ts';

export type Validity = { notBefore: Date; notAfter: Date };

/** Default leaf validity: 90 days, starting a minute ago to absorb small clock skew between nodes. */
export function leafValidity(opts: { days?: number; notBefore?: Date } = {}, now = new Date()): Validity {
  const days = opts.days ?? LEAF_DAYS;
  if (!Number.isInteger(days) || days < 1 || days > 825) throw new UsageError(`--days ${days} must be a whole number from 1 to 825`);
  const notBefore = opts.notBefore ?? new Date(Math.floor(now.getTime() / 1000) * 1000 - 60_000);
  if (Number.isNaN(notBefore.getTime())) throw new UsageError('--not-before must be an ISO 8601 time like 2026-01-31T00:00:00Z');
  return { notBefore, notAfter: new Date(notBefore.getTime() + days * DAY_MS) };
}

/** A leaf may not outlive its intermediate: verifiers would refuse it for its last days. */
export function checkWithinIssuer(issuerX509: X509Certificate, validity: Validity): void {
  const end = new Date(issuerX509.validTo);
  if (validity.notAfter.getTime() > end.getTime()) {
    throw new RivetError(`a certificate until ${validity.notAfter.toISOString()} would outlive the intermediate (until ${end.toISOString()}) — run \`rivet-ca rotate-intermediate\``, 'intermediate_expiring');
  }
}
