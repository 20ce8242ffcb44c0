// Signing CRLs: each intermediate's (a week, re-signed when three days remain) and the root's (at
// ceremonies), then the published bundle (lib/ca/published.ts) is rebuilt.
import type { Ca } from '../ca/handle.ts';
import type { Issuer } from '../ca/store.ts';
import { generateCrl } from './signer.ts';
import type { CrlInfo } from '../x509/crl.ts';
import { PUBLIC_MODE, exists, writeAtomic } from '../sys/files.ts';
import { audit } from '../sys/audit.ts';
import { rootUnattendedProblem } from './pkcs11.ts';
import { INTERMEDIATE_CRL_HOURS, INTERMEDIATE_CRL_REFRESH_MS, ROOT_CRL_HOURS, ROOT_CRL_WARN_MS, readCrl, writeBundleLocked } from '../ca/published.ts';
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
