// Issuing leaf certificates (DESIGN §4.2): from a CSR (enrollment, `sign`) or with a key made on the
// CA host (operator path). The CA lock is held only around signing and the database write; keys
// and CSRs are made before it, so concurrent callers wait for milliseconds, not key generation.
import fsp from 'node:fs/promises';
import type { KeyObject, X509Certificate } from 'node:crypto';
import { type Ca, issuerCert } from './ca.ts';
import { fileStem, type Identity } from './identity.ts';
import { leafExtValues, leafProfile, LEAF_DAYS } from './profile.ts';
import { signCsr, signCsrBatch } from './signer.ts';
import { parseCertPem, publicKeyDer, type CertInfo } from './cert.ts';
import { checkIssued } from './check.ts';
import { createExclusive, KEY_MODE, PUBLIC_MODE, commitRename, tempPathFor, writeAtomic, readText } from './files.ts';
import { csrCarriesProfile, csrForKey, csrPublicKey, newKeyAndCsr } from './csr.ts';
import { digestFor, publicKeyOfPrivatePem, type KeyType } from './keys.ts';
import { audit } from './audit.ts';
import { checkNodeNamesLocked, liveRowsByCn } from './names.ts';
import { readDb, isLive } from './db.ts';
import { DAY_MS } from './duration.ts';
import { RivetError, UsageError, show } from './errors.ts';
import type { San } from './san.ts';
import type { Issuer } from './store.ts';

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

export type Issued = { cn: string; serial: string; certPem: string; info: CertInfo; issuer: Issuer };

/**
 * Signs a CSR's public key for `id` with the current intermediate, checks the result against the
 * request, and returns it with the intermediate appended. Caller holds the CA lock.
 */
export async function signLeafLocked(ca: Ca, id: Identity, csrPem: string, publicKey: KeyObject, sans: readonly San[], validity: Validity): Promise<Issued> {
  const issuer = await ca.store.current();
  const issuerX509 = await issuerCert(issuer);
  checkWithinIssuer(issuerX509, validity);
  const profile = leafProfile(id, ca.domain, sans);
  if (id.kind === 'node') await checkNodeNamesLocked(ca, id.nodeId, profile.dns);
  const keyType = keyTypeOf(publicKey);
  const pem = await signCsr(issuer, {
    csrPem, subject: `/CN=${profile.cn}`, extTemplate: profile.template, extSection: 'leaf',
    extValues: leafExtValues(profile), ...validity, digest: digestFor(keyType),
  });
  const info = parseCertPem(pem);
  checkIssued(info, { cn: profile.cn, dns: profile.dns, ips: profile.ips, uris: profile.uris, eku: profile.eku, ca: false, issuer: issuerX509, publicKey, ...validity });
  const chainPem = `${info.x509.toString()}${issuerX509.toString()}`;
  return { cn: profile.cn, serial: info.serial, certPem: chainPem, info, issuer };
}

export type LeafRequest = { id: Identity; csrPem: string; publicKey: KeyObject; sans: readonly San[] };

/**
 * Signs several leaves in one lock hold, results in request order (an Error for each that failed).
 * Requests whose CSR carries exactly the profile's subject and SAN (csrCarriesProfile: our own
 * CSRs, and provision-ct's) are signed together, one `openssl ca -infiles` run per profile and
 * digest; any other CSR gets its own run, as in signLeafLocked. If a shared run fails, its
 * requests are retried one by one, so one bad request fails alone. Each certificate is checked
 * against its request either way. The caller holds the CA lock and has ruled out two requests of
 * the group claiming the same identity or DNS name.
 */
export async function signLeavesLocked(ca: Ca, requests: readonly LeafRequest[], validity: Validity): Promise<Array<Issued | Error>> {
  const issuer = await ca.store.current();
  const issuerX509 = await issuerCert(issuer);
  checkWithinIssuer(issuerX509, validity);
  const out: Array<Issued | Error | undefined> = new Array(requests.length);
  const shared = new Map<string, number[]>();
  const live = await liveRowsByCn(ca);
  for (const [i, r] of requests.entries()) {
    const profile = leafProfile(r.id, ca.domain, r.sans);
    if (!csrCarriesProfile(r.csrPem, profile)) continue;
    try { if (r.id.kind === 'node') await checkNodeNamesLocked(ca, r.id.nodeId, profile.dns, live); } catch (err) { out[i] = err as Error; continue; }
    const key = `${profile.template} ${digestFor(keyTypeOf(r.publicKey))}`;
    shared.set(key, [...(shared.get(key) ?? []), i]);
  }
  for (const group of shared.values()) {
    if (group.length < 2) continue; // alone, it takes the ordinary path below
    const first = requests[group[0]!]!;
    const profile = leafProfile(first.id, ca.domain, first.sans);
    let pems: string[];
    try {
      pems = await signCsrBatch(issuer, {
        csrPems: group.map((i) => requests[i]!.csrPem), extTemplate: profile.template, extSection: 'leaf',
        extValues: leafExtValues(profile, 'csr'), ...validity, digest: digestFor(keyTypeOf(first.publicKey)),
      });
    } catch { continue; } // nothing was recorded: each is retried alone below
    for (const [k, i] of group.entries()) {
      const r = requests[i]!;
      const p = leafProfile(r.id, ca.domain, r.sans);
      try {
        const info = parseCertPem(pems[k]!);
        checkIssued(info, { cn: p.cn, dns: p.dns, ips: p.ips, uris: p.uris, eku: p.eku, ca: false, issuer: issuerX509, publicKey: r.publicKey, ...validity });
        out[i] = { cn: p.cn, serial: info.serial, certPem: `${info.x509.toString()}${issuerX509.toString()}`, info, issuer };
      } catch (err) { out[i] = err as Error; }
    }
  }
  for (const [i, r] of requests.entries()) {
    if (out[i] !== undefined) continue;
    try { out[i] = await signLeafLocked(ca, r.id, r.csrPem, r.publicKey, r.sans, validity); } catch (err) { out[i] = err as Error; }
  }
  return out as Array<Issued | Error>;
}

const keyTypeOf = (publicKey: KeyObject): KeyType => (publicKey.asymmetricKeyDetails?.namedCurve === 'secp384r1' ? 'ec-p384' : 'ec-p256');

/** Signs an externally made CSR (enrollment, `sign`): the CSR gives its key and nothing else. */
export async function signCsrFor(ca: Ca, id: Identity, csrPem: string, sans: readonly San[], validity: Validity, event = 'sign', source?: string): Promise<Issued> {
  leafProfile(id, ca.domain, sans); // refuse a bad request before taking the lock
  const publicKey = await csrPublicKey(csrPem);
  return ca.store.change(`${event} ${fileStem(id)}`, async () => {
    const issued = await signLeafLocked(ca, id, csrPem, publicKey, sans, validity);
    await audit(ca.store.auditLog, { event, result: 'ok', cn: issued.cn, serial: issued.serial, source });
    return issued;
  });
}

export type OperatorIssue = {
  sans?: readonly San[];
  keyType?: KeyType;
  validity?: Validity;
  /** Do nothing while a valid certificate with a matching key is in issued/. */
  ifMissing?: boolean;
  /** Replace a valid certificate that is already in issued/. */
  force?: boolean;
  event?: string;
};

export type OperatorResult = Issued & { certPath: string; keyPath: string } | { skipped: true; cn: string; serial: string; certPath: string; notAfter: Date };

/** The operator path: key made on the CA host, written to issued/<stem>.key (0600 from creation). */
export async function issueWithNewKey(ca: Ca, id: Identity, opts: OperatorIssue = {}): Promise<OperatorResult> {
  const stem = fileStem(id);
  const certPath = ca.store.issued(stem, 'crt');
  const keyPath = ca.store.issued(stem, 'key');
  const profile = leafProfile(id, ca.domain, opts.sans ?? []);
  const validity = opts.validity ?? leafValidity();
  await ca.store.current(); // fail fast, before making a key, when there is no CA

  const existing = await usableIssued(ca, certPath, keyPath);
  if (existing && opts.ifMissing) return { skipped: true, cn: profile.cn, serial: existing.serial, certPath, notAfter: existing.notAfter };
  if (existing && !opts.force) {
    throw new UsageError(`${profile.cn} already has a valid certificate (serial ${existing.serial}, until ${existing.notAfter.toISOString().slice(0, 10)}) — use \`renew\`, \`--if-missing\`, or \`--force\` to replace it`, 'exists');
  }

  const tmpKey = tempPathFor(keyPath);
  await createExclusive(tmpKey, KEY_MODE);
  try {
    const { csrPem, publicKey } = await newKeyAndCsr(tmpKey, opts.keyType ?? 'ec-p256', profile);
    return await ca.store.change(`${opts.event ?? 'issue'} ${stem}`, async () => {
      const again = await usableIssued(ca, certPath, keyPath);
      if (again && opts.ifMissing) return { skipped: true as const, cn: profile.cn, serial: again.serial, certPath, notAfter: again.notAfter };
      // Another process may have issued this identity while our key was being made.
      if (again && !opts.force) throw new UsageError(`${profile.cn} was just issued by another run (serial ${again.serial}) — use \`--force\` to replace it`, 'exists');
      const issued = await signLeafLocked(ca, id, csrPem, publicKey, opts.sans ?? [], validity);
      // Key before certificate: if we die in between, the pair no longer matches, which
      // usableIssued() notices, so --if-missing and renew repair it rather than trusting it.
      await commitRename(tmpKey, keyPath);
      await writeAtomic(certPath, issued.certPem, PUBLIC_MODE);
      await audit(ca.store.auditLog, { event: opts.event ?? 'issue', result: 'ok', cn: issued.cn, serial: issued.serial });
      return { ...issued, certPath, keyPath };
    });
  } finally {
    await fsp.rm(tmpKey, { force: true });
  }
}

/** Re-signs the key already in issued/ (renewal: the key stays, the certificate rotates). */
export async function reissueWithSameKey(ca: Ca, id: Identity, sans: readonly San[], validity: Validity, event = 'renew'): Promise<Issued & { certPath: string }> {
  const stem = fileStem(id);
  const keyPath = ca.store.issued(stem, 'key');
  const certPath = ca.store.issued(stem, 'crt');
  const keyPem = await readText(keyPath);
  if (keyPem === undefined) throw new RivetError(`no key for ${stem} in ${ca.store.issuedDir} — its holder renews it (provision-ct renew)`, 'no_key');
  const publicKey = publicKeyOfPrivatePem(keyPem);
  const profile = leafProfile(id, ca.domain, sans);
  const csrPem = await csrForKey(keyPath, profile);
  return ca.store.change(`${event} ${stem}`, async () => {
    const issued = await signLeafLocked(ca, id, csrPem, publicKey, sans, validity);
    await writeAtomic(certPath, issued.certPem, PUBLIC_MODE);
    await audit(ca.store.auditLog, { event, result: 'ok', cn: issued.cn, serial: issued.serial });
    return { ...issued, certPath };
  });
}

/** The certificate in issued/ if it is live in the database and its key matches; else undefined. */
export async function usableIssued(ca: Ca, certPath: string, keyPath: string): Promise<CertInfo | undefined> {
  const [certPem, keyPem] = await Promise.all([readText(certPath), readText(keyPath)]);
  if (!certPem || !keyPem) return undefined;
  let info: CertInfo;
  try { info = parseCertPem(certPem); } catch { return undefined; }
  try {
    if (!publicKeyDer(info.x509).equals(publicKeyDer(publicKeyOfPrivatePem(keyPem)))) return undefined;
  } catch { return undefined; }
  for (const issuer of await ca.store.intermediates()) {
    const row = (await readDb(issuer.dir)).find((e) => e.serial === info.serial);
    if (row) return isLive(row) ? info : undefined;
  }
  return undefined;
}
