// What the CA publishes for verifiers: chain.pem (intermediates + root) and crl.pem (each live
// intermediate's CRL, then the root's). Rebuilt under the CA lock whenever a CRL changes; signing
// the CRLs themselves is lib/sign/crl-sign.ts.
import fsp from 'node:fs/promises';
import type { CaStore } from './store.ts';
import { parseCrlBundle, type CrlInfo } from '../x509/crl.ts';
import { PUBLIC_MODE, readText, writeAtomic } from '../sys/files.ts';
import { DAY_MS } from '../core/duration.ts';

/** Intermediate CRLs live a week and are re-signed once fewer than three days remain (DESIGN §5). */
export const INTERMEDIATE_CRL_HOURS = 7 * 24;
export const INTERMEDIATE_CRL_REFRESH_MS = 3 * DAY_MS;
/** The root's CRLs are a series signed at ceremonies (lib/sign/root-crl-series.ts); doctor warns 60 days before it ends. */
export const ROOT_CRL_WARN_MS = 60 * DAY_MS;

export async function readCrl(file: string): Promise<CrlInfo | undefined> {
  const pem = await readText(file);
  return pem ? parseCrlBundle(pem)[0] : undefined;
}

// Both take only the store, so that crash recovery (which has no Ca) can rebuild them.
export async function writeBundleLocked(ca: { store: CaStore }): Promise<void> {
  const parts: string[] = [];
  for (const issuer of [...(await ca.store.intermediates()), ca.store.root()]) {
    const pem = await readText(issuer.crl);
    if (pem) parts.push(pem.endsWith('\n') ? pem : `${pem}\n`);
  }
  await writeAtomic(ca.store.crlBundle, parts.join(''), PUBLIC_MODE);
}

export async function writeChainLocked(ca: { store: CaStore }): Promise<void> {
  const parts: string[] = [];
  for (const issuer of [...(await ca.store.intermediates()), ca.store.root()]) {
    parts.push(await fsp.readFile(issuer.cert, 'utf8'));
  }
  await writeAtomic(ca.store.chainFile, parts.join(''), PUBLIC_MODE);
}
