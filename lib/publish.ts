// What the CA publishes for verifiers: chain.pem (intermediates + root) and crl.pem (each live
// intermediate's CRL, then the root's). Rebuilt under the CA lock whenever a CRL changes.
import fsp from 'node:fs/promises';
import type { Ca } from './ca.ts';
import type { Issuer } from './store.ts';
import { generateCrl, type IssuerSecret } from './signer.ts';
import { parseCrlBundle, type CrlInfo } from './crl.ts';
import { PUBLIC_MODE, exists, readText, writeAtomic } from './files.ts';
import { DAY_MS } from './duration.ts';
import { audit } from './audit.ts';
import { rootUnattendedProblem } from './pkcs11.ts';

/** Intermediate CRLs live a week and are re-signed once fewer than three days remain (DESIGN §5). */
export const INTERMEDIATE_CRL_HOURS = 7 * 24;
export const INTERMEDIATE_CRL_REFRESH_MS = 3 * DAY_MS;
/** The root CRL is signed at ceremonies only, so it lives long; doctor warns 60 days ahead. */
export const ROOT_CRL_HOURS = 365 * 24;
export const ROOT_CRL_WARN_MS = 60 * DAY_MS;

export async function readCrl(file: string): Promise<CrlInfo | undefined> {
  const pem = await readText(file);
  return pem ? parseCrlBundle(pem)[0] : undefined;
}

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
  if (opts.force || due(await readCrl(root.crl), ROOT_CRL_WARN_MS, now)) {
    const problem = await rootUnattendedProblem(root.dir, ca.root);
    if (!problem) {
      await signCrl(root, ROOT_CRL_HOURS, ca.root);
      refreshed.push('root');
    } else {
      rootSkipped = `${problem} — the root CRL is re-signed at a ceremony (\`rivet-ca root online\`, then \`rivet-ca root crl\`)`;
    }
  }
  if (refreshed.length || !(await exists(ca.store.crlBundle))) await writeBundleLocked(ca);
  if (refreshed.length) await audit(ca.store.auditLog, { event: 'crl', result: 'ok', detail: refreshed.join(', ') });
  return { refreshed, rootSkipped };
}

export async function refreshCrls(ca: Ca, opts: RefreshOptions = {}): Promise<RefreshResult> {
  return ca.store.change('crl', () => refreshCrlsLocked(ca, opts));
}

// Both take only the store, so that crash recovery (which has no Ca) can rebuild them.
export async function writeBundleLocked(ca: Pick<Ca, 'store'>): Promise<void> {
  const parts: string[] = [];
  for (const issuer of [...(await ca.store.intermediates()), ca.store.root()]) {
    const pem = await readText(issuer.crl);
    if (pem) parts.push(pem.endsWith('\n') ? pem : `${pem}\n`);
  }
  await writeAtomic(ca.store.crlBundle, parts.join(''), PUBLIC_MODE);
}

export async function writeChainLocked(ca: Pick<Ca, 'store'>): Promise<void> {
  const parts: string[] = [];
  for (const issuer of [...(await ca.store.intermediates()), ca.store.root()]) {
    parts.push(await fsp.readFile(issuer.cert, 'utf8'));
  }
  await writeAtomic(ca.store.chainFile, parts.join(''), PUBLIC_MODE);
}
