// CRLs (DESIGN §5): parsing and signature checks in-process (receivers and handshakes must not pay
// a process start), generation by openssl, and the bundle every node installs: each live
// intermediate's CRL, then the root's. Node's tls reads only the first CRL of a PEM, so consumers
// load the bundle as an array (splitCrlBundle).
import crypto, { X509Certificate } from 'node:crypto';
import { RivetError } from '../core/errors.ts';
import { subjectCn } from './cert.ts';
import {
  children,
  content,
  derToPem,
  extensions,
  integerHex,
  isTime,
  nameAttributes,
  oid,
  pemToDer,
  readTlv,
  time,
  SIG_DIGEST,
} from './der.ts';
import { serialOf, type Serial } from './serial.ts';

export type CrlInfo = {
  der: Buffer;
  issuerCNs: string[];
  thisUpdate: Date;
  nextUpdate?: Date;
  crlNumber?: bigint;
  revoked: Array<{ serial: Serial; date: Date }>;
  tbs: Buffer;
  signatureAlg: string;
  signature: Buffer;
};

export function parseCrlDer(der: Buffer): CrlInfo {
  try {
    const top = children(readTlv(der));
    const [tbsTlv, algTlv, sigTlv] = top;
    if (top.length !== 3 || !tbsTlv || !algTlv || !sigTlv) throw new Error('not a CertificateList');
    const f = children(tbsTlv);
    let i = f[0]!.tag === 0x02 ? 1 : 0; // optional version
    i++; // inner signature algorithm
    const issuer = nameAttributes(f[i++]!);
    const thisUpdate = time(f[i++]!);
    const nextUpdate = isTime(f[i]) ? time(f[i++]!) : undefined;
    const revoked: CrlInfo['revoked'] = [];
    if (f[i]?.tag === 0x30) {
      for (const entry of children(f[i++]!)) {
        const [serial, date] = children(entry);
        revoked.push({ serial: serialOf(integerHex(serial!)), date: time(date!) });
      }
    }
    let crlNumber: bigint | undefined;
    if (f[i]?.tag === 0xa0) {
      const num = extensions(children(f[i]!)[0]!).find((e) => e.oid === '2.5.29.20');
      if (num) crlNumber = BigInt(`0x${content(readTlv(num.value)).toString('hex') || '0'}`);
    }
    return {
      der,
      issuerCNs: issuer.filter((a) => a.oid === '2.5.4.3').map((a) => a.value),
      thisUpdate,
      nextUpdate,
      crlNumber,
      revoked,
      tbs: tbsTlv.bytes,
      signatureAlg: oid(children(algTlv)[0]!),
      signature: content(sigTlv).subarray(1),
    };
  } catch (err) {
    throw new RivetError(`not a valid CRL: ${(err as Error).message}`, 'bad_crl');
  }
}

/** Every CRL in a PEM bundle, in order. */
export function parseCrlBundle(pem: string): CrlInfo[] {
  return pemToDer(pem, 'X509 CRL').map(parseCrlDer);
}

/** The bundle as separate PEM strings: what tls.createSecureContext wants for `crl`. */
export function splitCrlBundle(pem: string): string[] {
  return pemToDer(pem, 'X509 CRL').map((der) => derToPem(der, 'X509 CRL'));
}

/** True when `crl` is signed by `issuer` (names match and the signature verifies). */
export function crlSignedBy(crl: CrlInfo, issuer: X509Certificate): boolean {
  const digest = SIG_DIGEST[crl.signatureAlg];
  if (!digest) return false;
  const issuerCN = subjectCn(issuer);
  if (!issuerCN || crl.issuerCNs.length !== 1 || crl.issuerCNs[0] !== issuerCN) return false;
  try {
    return crypto.verify(digest, crl.tbs, issuer.publicKey, crl.signature);
  } catch {
    return false;
  }
}

export function isRevoked(crls: readonly CrlInfo[], serial: string): boolean {
  const s = serialOf(serial);
  return crls.some((c) => c.revoked.some((r) => r.serial === s));
}
