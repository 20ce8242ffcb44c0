// How long a leaf lives (DESIGN §3): 90 days by default, from five minutes ago, never before nor
// past the intermediate that signs it. What `--days` / `--not-before` and every signing path agree on.
import type { X509Certificate } from 'node:crypto';
import { LEAF_DAYS } from './profile.ts';
import { DAY_MS } from '../core/duration.ts';
import { RivetError, UsageError } from '../core/errors.ts';

/** `defaultStart`: notBefore is our back-dating, not the operator's --not-before, so it may move up to the issuer's start. */
export type Validity = { notBefore: Date; notAfter: Date; defaultStart?: boolean };

/**
 * How far back a new leaf (and every CRL, lib/sign/signer.ts) starts. Peers' clocks drift: with a
 * minute, a peer 5 minutes slow refused every peer renewed in the last 4 minutes as "not yet
 * valid". Five minutes covers the drift NTP-less containers show while keeping a revoked key's
 * replacement from predating the revocation by more than that.
 */
export const BACKDATE_MS = 5 * 60_000;

/** Default leaf validity: 90 days, starting BACKDATE_MS ago. */
export function leafValidity(opts: { days?: number; notBefore?: Date } = {}, now = new Date()): Validity {
  const days = opts.days ?? LEAF_DAYS;
  if (!Number.isInteger(days) || days < 1 || days > 825)
    throw new UsageError(`--days ${days} must be a whole number from 1 to 825`);
  const notBefore = opts.notBefore ?? new Date(Math.floor(now.getTime() / 1000) * 1000 - BACKDATE_MS);
  if (Number.isNaN(notBefore.getTime()))
    throw new UsageError('--not-before must be an ISO 8601 time like 2026-01-31T00:00:00Z');
  return {
    notBefore,
    notAfter: new Date(notBefore.getTime() + days * DAY_MS),
    ...(opts.notBefore ? {} : { defaultStart: true }),
  };
}

/**
 * The validity a leaf of `issuerX509` gets: it may not outlive its intermediate (verifiers would
 * refuse it for its last days), and it starts no earlier than the intermediate does (a fresh
 * intermediate is itself back-dated less than BACKDATE_MS; nothing starts before its issuer).
 */
export function withinIssuer(issuerX509: X509Certificate, validity: Validity): Validity {
  const start = new Date(issuerX509.validFrom);
  const end = new Date(issuerX509.validTo);
  if (validity.notAfter.getTime() > end.getTime()) {
    throw new RivetError(
      `a certificate until ${validity.notAfter.toISOString()} would outlive the intermediate (until ${end.toISOString()}) — run \`rivet-ca rotate-intermediate\``,
      'intermediate_expiring',
    );
  }
  // An explicit --not-before is the operator's (tests and migrations date certificates on purpose).
  return validity.defaultStart && validity.notBefore.getTime() < start.getTime()
    ? { ...validity, notBefore: start }
    : validity;
}
