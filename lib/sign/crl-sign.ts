// Signing CRLs: each intermediate's (a week, re-signed when three days remain) and the root's (a
// series signed at ceremonies, root-crl-series.ts), then the published bundle (lib/ca/published.ts).
import type { Ca } from '../ca/handle.ts';
import type { Issuer } from '../ca/store.ts';
import { generateCrl } from './signer.ts';
import type { CrlInfo } from '../x509/crl.ts';
import { PUBLIC_MODE, exists, writeAtomic } from '../sys/files.ts';
import { audit } from '../sys/audit.ts';
import { rootUnattendedProblem } from './pkcs11.ts';
import {
  INTERMEDIATE_CRL_HOURS,
  INTERMEDIATE_CRL_REFRESH_MS,
  ROOT_CRL_WARN_MS,
  readCrl,
  writeBundleLocked,
} from '../ca/published.ts';
import {
  installCurrentRootCrlLocked,
  readRootCrlSeries,
  seriesEnd,
  signRootCrlSeriesLocked,
} from './root-crl-series.ts';
import { type IssuerSecret } from '../ca/handle.ts';

function due(crl: CrlInfo | undefined, windowMs: number, now: Date): boolean {
  return !crl?.nextUpdate || crl.nextUpdate.getTime() - now.getTime() < windowMs;
}

export async function signCrl(issuer: Issuer, hours: number, secret?: IssuerSecret): Promise<void> {
  const pem = await generateCrl(issuer, hours, 'sha256', secret);
  await writeAtomic(issuer.crl, pem, PUBLIC_MODE);
}

export type RefreshOptions = { force?: boolean; forceFor?: readonly Issuer[]; now?: Date };
export type RefreshResult = { refreshed: string[]; rootSkipped?: string };

/**
 * Re-signs every CRL that is due (or forced), then rebuilds the bundle. The caller holds the CA
 * lock. The root CRL is re-signed only when the root key is on this host.
 */
export async function refreshCrlsLocked(ca: Ca, opts: RefreshOptions = {}): Promise<RefreshResult> {
  const now = opts.now ?? new Date();
  const refreshed: string[] = [];
  const forced = new Set((opts.forceFor ?? []).map((i) => i.dir));
  for (const issuer of await ca.store.intermediates()) {
    if (opts.force || forced.has(issuer.dir) || due(await readCrl(issuer.crl), INTERMEDIATE_CRL_REFRESH_MS, now)) {
      await signCrl(issuer, INTERMEDIATE_CRL_HOURS);
      refreshed.push(`intermediate ${issuer.generation}`);
    }
  }
  const root = ca.store.root();
  let rootSkipped: string | undefined;
  // The root's CRLs come as a series signed at ceremonies (root-crl-series.ts): re-signed here only
  // when forced or when the series nears its end, and only with the root key on this host;
  // otherwise the window that has started is swapped in, which needs no key.
  const series = await readRootCrlSeries(ca.store);
  const end = series ? seriesEnd(series) : (await readCrl(root.crl))?.nextUpdate;
  let signed = false;
  if (opts.force || !end || end.getTime() - now.getTime() < ROOT_CRL_WARN_MS) {
    const problem = await rootUnattendedProblem(root.dir, ca.root);
    if (!problem) {
      const s = await signRootCrlSeriesLocked(ca, { now });
      refreshed.push(`root (${s.windows} windows, until ${s.end.toISOString().slice(0, 10)})`);
      signed = true;
    } else {
      rootSkipped = `${problem} — the root CRL series is re-signed at a ceremony (\`rivet-ca root online\`, then \`rivet-ca root crl\`)`;
    }
  }
  const swapped = signed ? undefined : await installCurrentRootCrlLocked(ca.store, now);
  if (swapped) refreshed.push(swapped);
  if (refreshed.length || !(await exists(ca.store.crlBundle))) await writeBundleLocked(ca);
  if (refreshed.length) await audit(ca.store.auditLog, { event: 'crl', result: 'ok', detail: refreshed.join(', ') });
  return { refreshed, rootSkipped };
}
