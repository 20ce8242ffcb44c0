// Certificates and CRLs built in process, byte by byte and signed with node:crypto, so the x509
// parsers and checks are tested without an openssl process. Tests only: the CA never builds ASN.1
// beyond lib/x509/der-write.ts; its certificates come from openssl.
import crypto, { type KeyObject } from 'node:crypto';
import { tlv, sequence, leafSubjectDer, dnsName, uriName } from '../../../lib/x509/der-write.ts';
import { OID } from '../../../lib/x509/cert.ts';

export function oid(dotted: string): Buffer {
  const [a, b, ...rest] = dotted.split('.').map(Number) as [number, number, ...number[]];
  const bytes = [a * 40 + b];
  for (const arc of rest) {
    const chunk = [arc & 0x7f];
    for (let v = Math.floor(arc / 128); v > 0; v = Math.floor(v / 128)) chunk.unshift((v & 0x7f) | 0x80);
    bytes.push(...chunk);
  }
  return tlv(0x06, Buffer.from(bytes));
}
const int = (n: number | bigint) => {
  let hex = n.toString(16);
  if (hex.length % 2) hex = `0${hex}`;
  let b = Buffer.from(hex, 'hex');
  if (b[0]! & 0x80) b = Buffer.concat([Buffer.from([0]), b]);
  return tlv(0x02, b);
};
const utcTime = (d: Date) => tlv(0x17, Buffer.from(`${d.toISOString().slice(2, 19).replace(/[-T:]/g, '')}Z`, 'latin1'));
const bool = (v: boolean) => tlv(0x01, Buffer.from([v ? 0xff : 0]));
const octets = (b: Buffer) => tlv(0x04, b);
const bits = (b: Buffer) => tlv(0x03, Buffer.from([0]), b);
const ECDSA_SHA256 = sequence(oid('1.2.840.10045.4.3.2'));
const extension = (id: string, critical: boolean, value: Buffer) =>
  sequence(oid(id), ...(critical ? [bool(true)] : []), octets(value));

export const newKey = () => crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });

export type LeafSpec = {
  cns?: string[];
  dns?: string[];
  uris?: string[];
  eku?: string[];
  ca?: boolean;
  /** Extensions to leave out (by OID) or add. */
  omit?: string[];
  extra?: Array<{ oid: string; value: Buffer; critical?: boolean }>;
  issuerCn?: string;
  serial?: number;
  notBefore?: Date;
  days?: number;
};

/** A certificate for `key`'s public half, signed by `signer` (itself by default). */
export function buildCert(key: KeyObject, signer: KeyObject, spec: LeafSpec = {}): Buffer {
  const cns = spec.cns ?? ['ct1.mesh'];
  const subject =
    cns.length === 1
      ? leafSubjectDer(cns[0]!)
      : sequence(...cns.map((cn) => tlv(0x31, sequence(oid(OID.cn), tlv(0x0c, Buffer.from(cn))))));
  const issuer = leafSubjectDer(spec.issuerCn ?? 'Rivet Test CA');
  const spki = crypto.createPublicKey(key).export({ type: 'spki', format: 'der' });
  const notBefore = spec.notBefore ?? new Date(Math.floor(Date.now() / 1000) * 1000 - 60_000);
  const notAfter = new Date(notBefore.getTime() + (spec.days ?? 90) * 86_400_000);
  const keyId = crypto.createHash('sha1').update(spki).digest();
  const issuerKeyId = crypto
    .createHash('sha1')
    .update(crypto.createPublicKey(signer).export({ type: 'spki', format: 'der' }))
    .digest();
  const exts = [
    extension(OID.basicConstraints, true, sequence(...(spec.ca ? [bool(true)] : []))),
    // digitalSignature for a leaf; keyCertSign + cRLSign for a CA (verifiers check it on issuers).
    extension(OID.keyUsage, true, spec.ca ? tlv(0x03, Buffer.from([1, 0x06])) : tlv(0x03, Buffer.from([7, 0x80]))),
    extension(OID.eku, false, sequence(...(spec.eku ?? [OID.serverAuth, OID.clientAuth]).map(oid))),
    extension(OID.ski, false, octets(keyId)),
    extension(OID.aki, false, sequence(tlv(0x80, issuerKeyId))),
    extension(
      OID.san,
      false,
      sequence(...(spec.dns ?? ['ct1.mesh']).map(dnsName), ...(spec.uris ?? ['spiffe://mesh/node/ct1']).map(uriName)),
    ),
  ].filter(
    (_, i) => !(spec.omit ?? []).includes([OID.basicConstraints, OID.keyUsage, OID.eku, OID.ski, OID.aki, OID.san][i]!),
  );
  for (const x of spec.extra ?? []) exts.push(extension(x.oid, x.critical ?? false, x.value));
  const tbs = sequence(
    tlv(0xa0, int(2)),
    int(spec.serial ?? 0x1234),
    ECDSA_SHA256,
    issuer,
    sequence(utcTime(notBefore), utcTime(notAfter)),
    subject,
    spki,
    tlv(0xa3, sequence(...exts)),
  );
  return sequence(tbs, ECDSA_SHA256, bits(crypto.sign('sha256', tbs, signer)));
}

export type CrlSpec = {
  issuerCn?: string;
  revoked?: Array<{ serial: number; date: Date }>;
  crlNumber?: number;
  thisUpdate?: Date;
  nextUpdate?: Date;
};

export function buildCrl(signer: KeyObject, spec: CrlSpec = {}): Buffer {
  const thisUpdate = spec.thisUpdate ?? new Date(Math.floor(Date.now() / 1000) * 1000);
  const revoked = spec.revoked ?? [];
  const tbs = sequence(
    int(1),
    ECDSA_SHA256,
    leafSubjectDer(spec.issuerCn ?? 'Rivet Test CA'),
    utcTime(thisUpdate),
    ...(spec.nextUpdate ? [utcTime(spec.nextUpdate)] : []),
    ...(revoked.length ? [sequence(...revoked.map((r) => sequence(int(r.serial), utcTime(r.date))))] : []),
    ...(spec.crlNumber !== undefined ? [tlv(0xa0, sequence(extension('2.5.29.20', false, int(spec.crlNumber))))] : []),
  );
  return sequence(tbs, ECDSA_SHA256, bits(crypto.sign('sha256', tbs, signer)));
}
