// Reading certificates back. node:crypto's X509Certificate does the parsing and signature work;
// the DER reader adds what it hides (extension criticality, every CN). Used to check what openssl
// produced before it is put in place, and to read peers' certificates.
import { X509Certificate, createPublicKey, type KeyObject } from 'node:crypto';
import { RivetError } from '../core/errors.ts';
import { canonicalIpv6 } from '../core/san.ts';
import {
  children,
  content,
  extensions,
  integerHex,
  nameAttributes,
  oid,
  pemToDer,
  readTlv,
  type Extension,
} from './der.ts';
import { serialOf, type Serial } from './serial.ts';

export const OID = {
  cn: '2.5.4.3',
  org: '2.5.4.10',
  ski: '2.5.29.14',
  keyUsage: '2.5.29.15',
  san: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  aki: '2.5.29.35',
  eku: '2.5.29.37',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
} as const;

export type CertInfo = {
  x509: X509Certificate;
  der: Buffer;
  serial: Serial;
  subjectCNs: string[];
  subjectOrg: string[];
  /** The subject Name exactly as encoded. */
  subjectDer: Buffer;
  issuerCNs: string[];
  notBefore: Date;
  notAfter: Date;
  dns: string[];
  ips: string[];
  uris: string[];
  eku: string[];
  ca: boolean;
  pathLen?: number;
  extensions: Extension[];
  fingerprint256: string; // hex, lower case, no colons
};

function sanEntries(value: Buffer): { dns: string[]; ips: string[]; uris: string[] } {
  const out = { dns: [] as string[], ips: [] as string[], uris: [] as string[] };
  for (const gn of children(readTlv(value))) {
    const body = content(gn);
    if (gn.tag === 0x82) out.dns.push(body.toString('latin1'));
    else if (gn.tag === 0x86) out.uris.push(body.toString('latin1'));
    else if (gn.tag === 0x87) out.ips.push(formatIp(body));
    else out.uris.push(`unsupported:${gn.tag}`);
  }
  return out;
}

function formatIp(b: Buffer): string {
  if (b.length === 4) return [...b].join('.');
  const groups: string[] = [];
  for (let i = 0; i + 1 < b.length; i += 2) groups.push(b.readUInt16BE(i).toString(16));
  return canonicalIpv6(groups.join(':'));
}

export function parseCertDer(der: Buffer): CertInfo {
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(der);
  } catch (err) {
    throw new RivetError(`not a certificate: ${(err as Error).message}`, 'bad_cert');
  }
  const tbs = children(readTlv(der))[0]!;
  const fields = children(tbs);
  const hasVersion = fields[0]!.tag === 0xa0;
  const at = (i: number) => fields[i + (hasVersion ? 1 : 0)]!;
  const issuer = nameAttributes(at(2));
  const subject = nameAttributes(at(4));
  const extWrapper = fields.find((f) => f.tag === 0xa3);
  const exts = extWrapper ? extensions(children(extWrapper)[0]!) : [];
  const find = (o: string) => exts.find((e) => e.oid === o);
  const san = find(OID.san);
  const sans = san ? sanEntries(san.value) : { dns: [], ips: [], uris: [] };
  const ekuExt = find(OID.eku);
  const eku = ekuExt ? children(readTlv(ekuExt.value)).map(oid) : [];
  const bcExt = find(OID.basicConstraints);
  let ca = false;
  let pathLen: number | undefined;
  if (bcExt) {
    for (const part of children(readTlv(bcExt.value))) {
      if (part.tag === 0x01) ca = content(part)[0] !== 0;
      if (part.tag === 0x02) pathLen = content(part).readUIntBE(0, Math.min(content(part).length, 6));
    }
  }
  return {
    x509,
    der,
    serial: serialOf(integerHex(at(0))),
    subjectCNs: subject.filter((a) => a.oid === OID.cn).map((a) => a.value),
    subjectOrg: subject.filter((a) => a.oid === OID.org).map((a) => a.value),
    subjectDer: at(4).bytes,
    issuerCNs: issuer.filter((a) => a.oid === OID.cn).map((a) => a.value),
    notBefore: new Date(x509.validFrom),
    notAfter: new Date(x509.validTo),
    ...sans,
    eku,
    ca,
    pathLen,
    extensions: exts,
    fingerprint256: x509.fingerprint256.replace(/:/g, '').toLowerCase(),
  };
}

/**
 * The SANs of a certificate from its DER alone, without node:crypto's full parse: the ownership
 * index (lib/policy/live-names.ts) reads every live node certificate's names.
 */
export function sansOfDer(der: Buffer): { dns: string[]; ips: string[]; uris: string[] } {
  const tbs = children(readTlv(der))[0]!;
  const extWrapper = children(tbs).find((f) => f.tag === 0xa3);
  const san = extWrapper ? extensions(children(extWrapper)[0]!).find((e) => e.oid === OID.san) : undefined;
  return san ? sanEntries(san.value) : { dns: [], ips: [], uris: [] };
}

/** Every certificate in a PEM text, in order. */
export function parseCertsPem(pem: string): CertInfo[] {
  return pemToDer(pem, 'CERTIFICATE').map(parseCertDer);
}

export function parseCertPem(pem: string): CertInfo {
  const [first] = parseCertsPem(pem);
  if (!first) throw new RivetError('no PEM certificate found', 'bad_cert');
  return first;
}

/** Remembered per object: the enrollment service compares the same keys many times per group. */
const spkiOf = new WeakMap<KeyObject | X509Certificate, Buffer>();

export function publicKeyDer(key: KeyObject | X509Certificate): Buffer {
  let der = spkiOf.get(key);
  if (!der) {
    const k = key instanceof X509Certificate ? key.publicKey : key.type === 'private' ? createPublicKey(key) : key;
    der = k.export({ type: 'spki', format: 'der' });
    spkiOf.set(key, der);
  }
  return der;
}

export function hasExtension(info: CertInfo, o: string, critical?: boolean): boolean {
  const e = info.extensions.find((x) => x.oid === o);
  return e !== undefined && (critical === undefined || e.critical === critical);
}

/** The CN of a certificate's subject as node:crypto prints it (first CN; undefined if none). */
export function subjectCn(x509: X509Certificate): string | undefined {
  return /(?:^|\n)CN=([^\n]*)/.exec(x509.subject)?.[1];
}
