// Clock skew between a node and its datahub (DESIGN §6): certificates and CRLs carry dates, so a
// node whose clock is off sees "not yet valid" or "expired" where nothing is wrong but its clock.
// The datahub's HTTP Date header tells by how much; every certificate-date failure says so.
import { meshRequest } from '../distribute/mesh-request.ts';
import { RivetError, UsageError } from '../core/errors.ts';
import type { Endpoint } from './settings.ts';

/** Beyond this, dates start to fail: leaves and CRLs are back-dated 5 minutes (lib/sign/validity.ts). */
export const SKEW_TOLERATED_MS = 5 * 60_000;
/** Below this a difference is just network delay and the Date header's whole seconds. */
const SKEW_NOTICED_MS = 60_000;

/** TLS verify codes that are about dates, where the clock is the first suspect. */
export const DATE_ERRORS = new Set([
  'CERT_NOT_YET_VALID',
  'CERT_HAS_EXPIRED',
  'CRL_NOT_YET_VALID',
  'CRL_HAS_EXPIRED',
  'crl_not_yet_valid',
  'expired_crl',
]);

export type Skew = { ms: number; theirs: Date; ours: Date };

/**
 * The datahub's clock minus ours, from the Date header of GET /healthz. Unverified on purpose:
 * nothing is sent, and only a date is read (a liar can only make us print a wrong hint).
 */
export async function measureSkew(ep: Endpoint): Promise<Skew | undefined> {
  try {
    const sent = Date.now();
    const res = await meshRequest(`${ep.base}/healthz`, {
      tls: { rejectUnauthorized: false },
      connectTo: ep.connectTo,
      timeoutMs: 5000,
      maxBytes: 64 * 1024,
    });
    return skewFrom(res.date, sent, Date.now());
  } catch {
    return undefined;
  }
}

/** The skew a response's Date header shows, taking our clock at the middle of the round trip. */
export function skewFrom(date: Date | undefined, sent: number, received: number): Skew | undefined {
  if (!date || Number.isNaN(date.getTime())) return undefined;
  const ours = new Date((sent + received) / 2);
  return { ms: date.getTime() - ours.getTime(), theirs: date, ours };
}

function span(ms: number): string {
  const s = Math.round(Math.abs(ms) / 1000);
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  if (s < 172_800) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86_400)} days`;
}

/** "this host's clock is 10 min behind ct110.mesh's (…)", or undefined when the clocks agree. */
export function describeSkew(skew: Skew | undefined, peer: string): string | undefined {
  if (!skew || Math.abs(skew.ms) < SKEW_NOTICED_MS) return undefined;
  return `this host's clock is ${span(skew.ms)} ${skew.ms > 0 ? 'behind' : 'ahead of'} ${peer}'s (here ${skew.ours.toISOString()}, there ${skew.theirs.toISOString()}) — fix the clock (NTP) of whichever is wrong`;
}

/** Before the secret is spent: refuse to enroll across a skew the certificates cannot absorb. */
export function refuseSkew(skew: Skew | undefined, peer: string): void {
  if (skew && Math.abs(skew.ms) > SKEW_TOLERATED_MS) {
    throw new UsageError(
      `not enrolling: ${describeSkew(skew, peer)}; certificates and CRLs from there would be ${skew.ms > 0 ? 'not yet valid' : 'expired'} here (nothing was sent)`,
      'clock_skew',
    );
  }
}

/** A date failure (TLS verify code or CRL refusal) rethrown with the measured skew, when there is one. */
export async function withSkewHint<T>(ep: Endpoint, peer: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    const code = (err as { code?: string; reason?: string }).code;
    const reason = (err as { reason?: string }).reason;
    const causeCode = (err as { cause?: { code?: string } }).cause?.code;
    if (![code, reason, causeCode].some((c) => c !== undefined && DATE_ERRORS.has(c))) throw err;
    const hint = describeSkew(await measureSkew(ep), peer);
    if (!hint) throw err;
    throw new RivetError(`${(err as Error).message} — ${hint}`, err instanceof RivetError ? err.code : 'clock_skew', {
      cause: err,
    });
  }
}
