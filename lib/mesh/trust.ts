// Would this peer pass a handshake *now*? Asked of every open connection when a node installs new
// CRLs or a new chain (DESIGN §5: revocation reaches live connections). The answer mirrors what
// OpenSSL checks at a handshake with our options: a path from the peer's leaf through CAs it sent or
// we hold to a self-signed root of the installed rivet-ca.crt, every certificate in its validity
// period, and for every CA in the path a current CRL (CRL_CHECK_ALL) that does not list the
// certificate below it. Signatures are checked with node:crypto — no process per connection.
import { X509Certificate } from 'node:crypto';
import type { DetailedPeerCertificate } from 'node:tls';
import { parseCertDer, subjectCn, type CertInfo } from '../x509/cert.ts';
import { crlSignedBy, parseCrlDer, type CrlInfo } from '../x509/crl.ts';
import { pemToDer } from '../x509/der.ts';

/** Why a peer would now be refused; `code` uses OpenSSL's verify-error names. */
export type TrustProblem = { code: string; message: string };

type Crl = { info: CrlInfo; revoked: Set<string> };

/** The installed chain and CRLs, parsed once per reload and shared by every connection check. */
export type TrustState = {
  readonly roots: ReadonlyMap<string, X509Certificate>;
  readonly pool: readonly X509Certificate[];
  readonly crls: readonly Crl[];
  /** CRLs by the fingerprint of the CA that signed them, filled on first use. */
  readonly crlsBy: Map<string, Crl[]>;
};

export function trustState(material: { ca: Buffer; crl: readonly Buffer[] }): TrustState {
  const pool = pemToDer(material.ca.toString('utf8'), 'CERTIFICATE').map((der) => new X509Certificate(der));
  const roots = new Map(pool.filter(selfSigned).map((c) => [c.fingerprint256, c] as const));
  const crls = material.crl
    .flatMap((pem) => pemToDer(pem.toString('utf8'), 'X509 CRL'))
    .map((der) => {
      const info = parseCrlDer(der);
      return { info, revoked: new Set(info.revoked.map((r) => r.serial)) };
    });
  return { roots, pool, crls, crlsBy: new Map() };
}

function selfSigned(c: X509Certificate): boolean {
  return c.checkIssued(c) && safeVerify(c, c);
}

function safeVerify(cert: X509Certificate, issuer: X509Certificate): boolean {
  try {
    return cert.verify(issuer.publicKey);
  } catch {
    return false;
  }
}

const cn = (c: X509Certificate) => JSON.stringify(subjectCn(c) ?? c.subject.replace(/\n/g, ', '));

/** The issuer of `cert` among `candidates` (name and key identifiers match, signature verifies). */
function issuerOf(cert: X509Certificate, candidates: readonly X509Certificate[]): X509Certificate | undefined {
  return candidates.find((c) => c.ca && cert.checkIssued(c) && safeVerify(cert, c));
}

function crlsOf(state: TrustState, ca: X509Certificate): Crl[] {
  let list = state.crlsBy.get(ca.fingerprint256);
  if (!list) {
    list = state.crls.filter((c) => crlSignedBy(c.info, ca));
    state.crlsBy.set(ca.fingerprint256, list);
  }
  return list;
}

function timeProblem(info: CertInfo, now: Date): TrustProblem | undefined {
  if (now < info.notBefore)
    return {
      code: 'CERT_NOT_YET_VALID',
      message: `certificate ${JSON.stringify(info.subjectCNs[0] ?? '')} is not valid before ${info.notBefore.toISOString()}`,
    };
  if (now > info.notAfter)
    return {
      code: 'CERT_HAS_EXPIRED',
      message: `certificate ${JSON.stringify(info.subjectCNs[0] ?? '')} expired at ${info.notAfter.toISOString()}`,
    };
  return undefined;
}

/**
 * Undefined when `leaf` (with the CA certificates the peer sent) still verifies against `state`;
 * otherwise the first reason a new handshake would fail.
 */
export function chainProblem(
  leaf: X509Certificate,
  sent: readonly X509Certificate[],
  state: TrustState,
  now = new Date(),
): TrustProblem | undefined {
  const candidates = [...state.pool, ...sent];
  const path: X509Certificate[] = [leaf];
  for (let cert = leaf; !state.roots.has(cert.fingerprint256);) {
    const issuer = issuerOf(cert, candidates);
    if (!issuer || path.length > 8 || path.includes(issuer)) {
      return {
        code: 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
        message: `certificate ${cn(cert)} does not chain to a root of the installed rivet-ca.crt`,
      };
    }
    // A self-signed CA that is not one of our roots (e.g. a rotated-out root the peer still sends).
    if (issuer === cert)
      return {
        code: 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
        message: `root ${cn(cert)} is not in the installed rivet-ca.crt`,
      };
    path.push(issuer);
    cert = issuer;
  }
  for (const [i, cert] of path.entries()) {
    const info = parseCertDer(Buffer.from(cert.raw));
    const late = timeProblem(info, now);
    if (late) return late;
    const issuer = path[i + 1];
    if (!issuer) break; // the root itself: a trust anchor, not CRL-checked (as OpenSSL)
    const crls = crlsOf(state, issuer).filter((c) => c.info.thisUpdate <= now);
    if (crls.length === 0) {
      const stale = crlsOf(state, issuer).length > 0;
      return stale
        ? { code: 'CRL_NOT_YET_VALID', message: `the CRL of ${cn(issuer)} is not yet valid` }
        : { code: 'UNABLE_TO_GET_CRL', message: `no CRL of ${cn(issuer)} is installed` };
    }
    if (!crls.some((c) => !c.info.nextUpdate || c.info.nextUpdate >= now))
      return { code: 'CRL_HAS_EXPIRED', message: `the CRL of ${cn(issuer)} has expired` };
    if (crls.some((c) => c.revoked.has(info.serial)))
      return { code: 'CERT_REVOKED', message: `certificate ${cn(cert)} (serial ${info.serial}) is revoked` };
  }
  return undefined;
}

/** The leaf a socket's peer presented and the CA certificates that came with it. */
export function peerChain(socket: {
  getPeerCertificate(detailed: true): DetailedPeerCertificate;
}): { leaf: X509Certificate; sent: X509Certificate[] } | undefined {
  const top = socket.getPeerCertificate(true);
  if (!top?.raw) return undefined;
  const leaf = new X509Certificate(top.raw);
  const sent: X509Certificate[] = [];
  const seen = new Set<string>([top.fingerprint256]);
  for (let c = top.issuerCertificate; c?.raw && !seen.has(c.fingerprint256); c = c.issuerCertificate) {
    seen.add(c.fingerprint256);
    sent.push(new X509Certificate(c.raw));
  }
  return { leaf, sent };
}
