// Checks on certificates: that what openssl issued is exactly what was asked (before it is put in
// place), and that any leaf follows our profile rules (for verify and for peers). Each failure
// says what was found and what was wanted.
import type { KeyObject, X509Certificate } from 'node:crypto';
import { RivetError } from '../core/errors.ts';
import { leafSubjectDer } from './der-write.ts';
import { OID, hasExtension, publicKeyDer, type CertInfo } from './cert.ts';
import { identityFromCommonName, spiffeId, type Identity, type MeshDomain } from '../core/identity.ts';

export type Expected = {
  cn: string;
  dns?: string[];
  ips?: string[];
  uris?: string[];
  eku: string[];
  ca: boolean;
  pathLen?: number;
  issuer: X509Certificate;
  publicKey: KeyObject;
  notBefore: Date;
  notAfter: Date;
};

const same = (a: readonly string[], b: readonly string[]) =>
  a.length === b.length && [...a].sort().every((v, i) => v === [...b].sort()[i]);
const list = (a: readonly string[]) => `[${a.join(', ')}]`;

const LEAF_EXTENSIONS = new Set<string>([OID.basicConstraints, OID.keyUsage, OID.eku, OID.ski, OID.aki, OID.san]);

/** Compares an issued certificate with its request; throws naming every difference. */
export function checkIssued(info: CertInfo, want: Expected): void {
  const problems: string[] = [];
  const eq = (what: string, got: readonly string[], exp: readonly string[]) => {
    if (!same(got, exp)) problems.push(`${what}: got ${list(got)}, want ${list(exp)}`);
  };
  eq('subject CN', info.subjectCNs, [want.cn]);
  eq('DNS SANs', info.dns, want.dns ?? []);
  eq('IP SANs', info.ips, want.ips ?? []);
  eq('URI SANs', info.uris, want.uris ?? []);
  eq('extendedKeyUsage', info.eku, want.eku);
  if (info.ca !== want.ca) problems.push(`basicConstraints CA: got ${info.ca}, want ${want.ca}`);
  if (want.pathLen !== undefined && info.pathLen !== want.pathLen)
    problems.push(`pathlen: got ${info.pathLen}, want ${want.pathLen}`);
  if (!info.x509.checkIssued(want.issuer) || !info.x509.verify(want.issuer.publicKey))
    problems.push(`issuer: not signed by ${want.issuer.subject.replace(/\n/g, ', ')}`);
  if (!publicKeyDer(info.x509).equals(publicKeyDer(want.publicKey)))
    problems.push('public key: differs from the request');
  if (Math.abs(info.notBefore.getTime() - want.notBefore.getTime()) > 1000)
    problems.push(`notBefore: got ${info.notBefore.toISOString()}, want ${want.notBefore.toISOString()}`);
  if (Math.abs(info.notAfter.getTime() - want.notAfter.getTime()) > 1000)
    problems.push(`notAfter: got ${info.notAfter.toISOString()}, want ${want.notAfter.toISOString()}`);
  problems.push(...structuralProblems(info));
  // A batch lets openssl take the subject and copy the SAN from each CSR: nothing else may have come
  // along with them, and the subject must be exactly the one a leaf has (see leafSubjectDer).
  const extra = want.ca ? [] : info.extensions.map((e) => e.oid).filter((o) => !LEAF_EXTENSIONS.has(o));
  if (extra.length) problems.push(`extensions outside the profile: ${list(extra)}`);
  if (!want.ca && !info.subjectDer.equals(leafSubjectDer(want.cn)))
    problems.push(`subject: got ${JSON.stringify(info.x509.subject)}, want exactly CN=${want.cn} as one UTF8String`);
  if (problems.length)
    throw new RivetError(
      `issued certificate for ${want.cn} does not match the request — ${problems.join('; ')}`,
      'check',
    );
}

/** Rules every certificate we issue follows (DESIGN §3). */
export function structuralProblems(info: CertInfo): string[] {
  const problems: string[] = [];
  if (!hasExtension(info, OID.basicConstraints, true)) problems.push('basicConstraints must be present and critical');
  if (!hasExtension(info, OID.keyUsage, true)) problems.push('keyUsage must be present and critical');
  if (!hasExtension(info, OID.ski)) problems.push('subjectKeyIdentifier is missing');
  if (!info.ca && !hasExtension(info, OID.aki)) problems.push('authorityKeyIdentifier is missing');
  return problems;
}

/**
 * A leaf's identity, read from a certificate and checked against our profile rules: exactly one
 * CN, inside the grammar, the SPIFFE URI SAN saying the same, EKU fitting the kind.
 */
export function leafIdentity(info: CertInfo, domain: MeshDomain): Identity {
  if (info.subjectCNs.length !== 1)
    throw new RivetError(`certificate has ${info.subjectCNs.length} CNs — exactly one is allowed`, 'cert_identity');
  if (info.ca)
    throw new RivetError(`certificate ${info.subjectCNs[0]} is a CA certificate, not a leaf`, 'cert_identity');
  let id: Identity;
  try {
    id = identityFromCommonName(info.subjectCNs[0]!, domain);
  } catch (err) {
    throw new RivetError(`certificate CN is outside the grammar: ${(err as Error).message}`, 'cert_identity');
  }
  const want = spiffeId(id, domain);
  if (info.uris.length !== 1 || info.uris[0] !== want)
    throw new RivetError(
      `certificate CN ${info.subjectCNs[0]} and URI SAN disagree — got ${list(info.uris)}, want [${want}]`,
      'cert_identity',
    );
  const eku = id.kind === 'node' ? [OID.serverAuth, OID.clientAuth] : [OID.clientAuth];
  if (!same(info.eku, eku))
    throw new RivetError(
      `certificate ${info.subjectCNs[0]} has extendedKeyUsage ${list(info.eku)}, want ${list(eku)}`,
      'cert_identity',
    );
  return id;
}
