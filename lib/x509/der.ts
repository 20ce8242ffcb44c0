// A minimal DER reader: enough to see what node:crypto does not expose (extension criticality,
// every CN of a subject, CRL contents and signatures). Reads only; never builds ASN.1.
import { RivetError } from '../core/errors.ts';
import { parseAsn1Time } from './time.ts';

export type Tlv = { tag: number; start: number; headerLength: number; length: number; bytes: Buffer };

export function readTlv(buf: Buffer, offset = 0): Tlv {
  if (offset + 2 > buf.length) throw new RivetError('DER: truncated header', 'der');
  const tag = buf[offset]!;
  if ((tag & 0x1f) === 0x1f) throw new RivetError('DER: multi-byte tags are not supported', 'der');
  let len = buf[offset + 1]!;
  let header = 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4 || offset + 2 + n > buf.length) throw new RivetError('DER: bad length', 'der');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[offset + 2 + i]!;
    header += n;
  }
  if (offset + header + len > buf.length) throw new RivetError('DER: value runs past the end', 'der');
  return { tag, start: offset, headerLength: header, length: len, bytes: buf.subarray(offset, offset + header + len) };
}

export const content = (t: Tlv): Buffer => t.bytes.subarray(t.headerLength);

export function children(t: Tlv): Tlv[] {
  const body = content(t);
  const out: Tlv[] = [];
  for (let off = 0; off < body.length;) {
    const child = readTlv(body, off);
    out.push(child);
    off += child.headerLength + child.length;
  }
  return out;
}

export function oid(t: Tlv): string {
  if (t.tag !== 0x06) throw new RivetError('DER: expected an OID', 'der');
  const b = content(t);
  const parts: number[] = [];
  let v = 0;
  for (const byte of b) {
    v = v * 128 + (byte & 0x7f);
    if (!(byte & 0x80)) {
      parts.push(v);
      v = 0;
    }
  }
  const first = parts.shift() ?? 0;
  const head = first < 80 ? [Math.floor(first / 40), first % 40] : [2, first - 80];
  return [...head, ...parts].join('.');
}

export const integerHex = (t: Tlv): string => {
  let hex = content(t).toString('hex').toUpperCase();
  while (hex.startsWith('00') && hex.length > 2) hex = hex.slice(2);
  return hex;
};

export function time(t: Tlv): Date {
  const s = content(t).toString('latin1');
  // The tag fixes the form: 13 characters for UTCTime, 15 for GeneralizedTime.
  const d = s.length === (t.tag === 0x17 ? 13 : 15) ? parseAsn1Time(s) : undefined;
  if (!d) throw new RivetError(`DER: bad time ${JSON.stringify(s)}`, 'der');
  return d;
}

export const isTime = (t: Tlv | undefined): t is Tlv => t !== undefined && (t.tag === 0x17 || t.tag === 0x18);

/** Attribute values of a Name, in order: [{ oid, value }]. */
export function nameAttributes(name: Tlv): Array<{ oid: string; value: string }> {
  const out: Array<{ oid: string; value: string }> = [];
  for (const rdn of children(name)) {
    for (const atv of children(rdn)) {
      const [type, value] = children(atv);
      if (!type || !value) throw new RivetError('DER: malformed name attribute', 'der');
      // BMPString (0x1e) is big-endian UTF-16; Node decodes only the little-endian form.
      out.push({
        oid: oid(type),
        value: value.tag === 0x1e ? bmpString(content(value)) : content(value).toString('utf8'),
      });
    }
  }
  return out;
}

function bmpString(b: Buffer): string {
  if (b.length % 2) throw new RivetError('DER: BMPString of odd length', 'der');
  return Buffer.from(b).swap16().toString('utf16le');
}

export type Extension = { oid: string; critical: boolean; value: Buffer };

export function extensions(list: Tlv): Extension[] {
  return children(list).map((ext) => {
    const parts = children(ext);
    const critical = parts.length === 3 && parts[1]!.tag === 0x01 && content(parts[1]!)[0] !== 0;
    return { oid: oid(parts[0]!), critical, value: content(parts[parts.length - 1]!) };
  });
}

export function pemToDer(pem: string, label: string): Buffer[] {
  const re = new RegExp(`-----BEGIN ${label}-----([\\s\\S]*?)-----END ${label}-----`, 'g');
  return [...pem.matchAll(re)].map((m) => Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64'));
}

export function derToPem(der: Buffer, label: string): string {
  const b64 = der
    .toString('base64')
    .replace(/(.{64})/g, '$1\n')
    .replace(/\n$/, '');
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

/** Signature algorithm OID -> digest name for crypto.verify. */
/** Signature algorithms seen in the wild that we refuse by name (weak digests). */
export const WEAK_SIGNATURES: Record<string, string> = {
  '1.2.840.113549.1.1.4': 'md5WithRSAEncryption',
  '1.2.840.113549.1.1.5': 'sha1WithRSAEncryption',
  '1.2.840.10045.4.1': 'ecdsa-with-SHA1',
  '1.2.840.10040.4.3': 'dsa-with-SHA1',
};

export const SIG_DIGEST: Record<string, string> = {
  '1.2.840.10045.4.3.2': 'sha256',
  '1.2.840.10045.4.3.3': 'sha384',
  '1.2.840.10045.4.3.4': 'sha512',
  '1.2.840.113549.1.1.11': 'sha256',
  '1.2.840.113549.1.1.12': 'sha384',
  '1.2.840.113549.1.1.13': 'sha512',
};
