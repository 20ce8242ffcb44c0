// Installing a CRL bundle on a node (DESIGN §5), shared by the push receiver and the pull
// fallback. A CRL is self-authenticating: what makes a bundle acceptable is its signatures and
// numbers, not who delivered it. So: every CRL signed by a CA of the installed chain, exactly one
// per CA, none older than what is installed for its issuer (no rollback to an un-revoked state),
// none already past nextUpdate (installing it would take every handshake down). A pull also brings
// the chain (GET /ca.crt): intermediates come and go (rotate-intermediate, tidy) and a bundle for
// the new set only verifies against the new chain, so rivet-ca.crt follows — but only with CA
// certificates signed by the very root already installed.
import fs from 'node:fs';
import path from 'node:path';
import { X509Certificate } from 'node:crypto';
import { RivetError, show, type ErrorCode } from '../core/errors.ts';
import { parseCrlBundle, crlSignedBy, type CrlInfo } from '../x509/crl.ts';
import { derToPem, pemToDer } from '../x509/der.ts';
import { subjectCn } from '../x509/cert.ts';
import { withLock } from '../sys/lock.ts';
import { PUBLIC_MODE, writeAtomic } from '../sys/files.ts';
import { meshTlsFiles } from '../mesh/tls.ts';
import { reloadWatchers } from '../mesh/watch.ts';

export type CrlSummary = { issuer: string; crlNumber: string; nextUpdate?: string; revoked: number };
export type InstallResult = { installed: boolean; reason: 'installed' | 'unchanged'; crls: CrlSummary[] };

/** A refused bundle; its code's HTTP status is what the receiver answers (400 invalid, 409 rollback). */
export class CrlRefused extends RivetError {
  constructor(message: string, code: ErrorCode) {
    super(message, code);
    this.name = 'CrlRefused';
  }
}

const nameOf = (c: X509Certificate) => subjectCn(c) ?? c.subject.replace(/\n/g, ', ');

/**
 * The chain served at /ca.crt, if it is usable in place of `installedPem`: the same root (byte for
 * byte) and otherwise only CA certificates that root signed. Throws a 400 CrlRefused otherwise.
 */
export function acceptServedChain(servedPem: string, installedPem: string): string {
  const installedRoot = chainCerts(installedPem).find((c) => c.checkIssued(c));
  let served: X509Certificate[];
  try { served = pemToDer(servedPem, 'CERTIFICATE').map((der) => new X509Certificate(der)); } catch (err) {
    throw new CrlRefused(`served chain refused: ${(err as Error).message}`, 'bad_chain');
  }
  const root = served.find((c) => installedRoot && c.raw.equals(installedRoot.raw));
  if (!root) throw new CrlRefused('served chain refused: it does not hold the root installed in rivet-ca.crt — wrong CA?', 'bad_chain');
  for (const c of served) {
    if (c !== root && !(c.ca && c.checkIssued(root) && c.verify(root.publicKey))) {
      throw new CrlRefused(`served chain refused: ${show(nameOf(c))} is not a CA certificate signed by the installed root`, 'bad_chain');
    }
  }
  return served.map((c) => c.toString()).join('');
}

function chainCerts(chainPem: string): X509Certificate[] {
  const certs = pemToDer(chainPem, 'CERTIFICATE').map((der) => new X509Certificate(der)).filter((c) => c.ca);
  if (certs.length === 0) throw new RivetError('installed CA chain (rivet-ca.crt) holds no CA certificate — re-enroll or fetch /ca.crt', 'no_chain');
  return certs;
}

/** Pairs each CRL with the chain CA that signed it; throws naming the first problem. */
export function verifyCrlBundle(pem: string, chainPem: string, installedPem?: string, now = new Date()): Array<{ ca: X509Certificate; crl: CrlInfo }> {
  let crls: CrlInfo[];
  try { crls = parseCrlBundle(pem); } catch (err) {
    throw new CrlRefused(`CRL bundle refused: ${(err as Error).message}`, 'bad_crl');
  }
  if (crls.length === 0) throw new CrlRefused('CRL bundle refused: no "-----BEGIN X509 CRL-----" block in the body', 'bad_crl');
  const cas = chainCerts(chainPem);
  const pairs: Array<{ ca: X509Certificate; crl: CrlInfo }> = [];
  for (const crl of crls) {
    const ca = cas.find((c) => crlSignedBy(crl, c));
    if (!ca) throw new CrlRefused(`CRL bundle refused: a CRL issued by ${show(crl.issuerCNs.join(', '))} is not signed by any CA of the installed chain — wrong CA, or the node's rivet-ca.crt is out of date`, 'foreign_crl');
    if (pairs.some((p) => p.ca === ca)) throw new CrlRefused(`CRL bundle refused: two CRLs from ${show(nameOf(ca))} — send exactly one per CA`, 'bad_crl');
    if (crl.crlNumber === undefined) throw new CrlRefused(`CRL bundle refused: the CRL of ${show(nameOf(ca))} has no crlNumber, so rollback cannot be ruled out`, 'bad_crl');
    if (crl.nextUpdate && crl.nextUpdate.getTime() <= now.getTime()) {
      throw new CrlRefused(`CRL bundle refused: the CRL of ${show(nameOf(ca))} expired at ${crl.nextUpdate.toISOString()} — the CA must re-sign it (\`rivet-ca crl\`)`, 'expired_crl');
    }
    pairs.push({ ca, crl });
  }
  const missing = cas.filter((c) => !pairs.some((p) => p.ca === c));
  if (missing.length) throw new CrlRefused(`CRL bundle refused: no CRL for ${missing.map((c) => show(nameOf(c))).join(', ')} — TLS needs one CRL per CA of the chain`, 'incomplete_crl');
  if (installedPem) {
    let installed: CrlInfo[] = [];
    try { installed = parseCrlBundle(installedPem); } catch { /* a broken installed file is simply replaced */ }
    for (const { ca, crl } of pairs) {
      const old = installed.find((i) => crlSignedBy(i, ca));
      if (old?.crlNumber !== undefined && crl.crlNumber! < old.crlNumber) {
        throw new CrlRefused(`CRL bundle refused: ${show(nameOf(ca))} crlNumber ${crl.crlNumber} is older than the installed ${old.crlNumber} — rollback is not allowed`, 'crl_rollback');
      }
    }
  }
  return pairs;
}

function summary(pairs: Array<{ ca: X509Certificate; crl: CrlInfo }>): CrlSummary[] {
  return pairs.map(({ ca, crl }) => ({ issuer: nameOf(ca), crlNumber: String(crl.crlNumber), nextUpdate: crl.nextUpdate?.toISOString(), revoked: crl.revoked.length }));
}

/**
 * Verifies `pem` against the chain installed in `dir` and, when it differs from what is there,
 * writes crl.pem atomically and switches this process's watched servers before returning.
 */
export async function installCrlBundle(dir: string, pem: string, opts: { chain?: string } = {}): Promise<InstallResult> {
  const files = meshTlsFiles(path.resolve(dir));
  return withLock(path.join(path.dirname(files.crl), '.crl.lock'), 'install crl.pem', async () => {
    let installedChain: string;
    try { installedChain = fs.readFileSync(files.ca, 'utf8'); } catch {
      throw new RivetError(`cannot read the CA chain ${show(files.ca)} to check the CRL against — enroll this node first`, 'no_chain');
    }
    const chainPem = opts.chain === undefined ? installedChain : acceptServedChain(opts.chain, installedChain);
    const installedPem = fs.existsSync(files.crl) ? fs.readFileSync(files.crl, 'utf8') : undefined;
    const pairs = verifyCrlBundle(pem, chainPem, installedPem);
    const normalised = pairs.map((p) => p.crl.der);
    const newChain = !sameDers(installedChain, pemToDer(chainPem, 'CERTIFICATE'), 'CERTIFICATE');
    const same = !newChain && installedPem !== undefined && sameDers(installedPem, normalised);
    if (same) return { installed: false, reason: 'unchanged', crls: summary(pairs) };
    // Chain first: the CRLs just checked against it are then never on disk without it.
    if (newChain) await writeAtomic(files.ca, chainPem, PUBLIC_MODE);
    // Only the verified CRLs are written, re-encoded: nothing else in the body reaches the disk.
    await writeAtomic(files.crl, normalised.map((der) => derToPem(der, 'X509 CRL')).join(''), PUBLIC_MODE);
    await reloadWatchers(path.dirname(files.crl));
    return { installed: true, reason: 'installed', crls: summary(pairs) };
  }, { timeoutMs: 10_000 });
}

function sameDers(pem: string, ders: Buffer[], label = 'X509 CRL'): boolean {
  const have = pemToDer(pem, label);
  return have.length === ders.length && have.every((d, i) => d.equals(ders[i]!));
}
