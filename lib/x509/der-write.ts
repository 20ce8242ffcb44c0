// A minimal DER writer, the counterpart of der.ts: just enough to encode the subject and the
// subjectAltName value a leaf profile gives (leafSubjectDer, lib/sign/csr.ts sanExtensionValue), so a
// CSR or a certificate can be compared with them byte for byte. Definite lengths, the one DER form.
import net from 'node:net';

function lengthBytes(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

export function tlv(tag: number, ...parts: Buffer[]): Buffer {
  const body = Buffer.concat(parts);
  return Buffer.concat([Buffer.from([tag]), lengthBytes(body.length), body]);
}

export const sequence = (...parts: Buffer[]): Buffer => tlv(0x30, ...parts);
const set = (...parts: Buffer[]): Buffer => tlv(0x31, ...parts);

function objectId(dotted: string): Buffer {
  const [a, b, ...rest] = dotted.split('.').map(Number);
  const bytes: number[] = [a! * 40 + b!];
  for (const arc of rest) {
    const chunk: number[] = [arc & 0x7f];
    for (let v = Math.floor(arc / 128); v > 0; v = Math.floor(v / 128)) chunk.unshift((v & 0x7f) | 0x80);
    bytes.push(...chunk);
  }
  return tlv(0x06, Buffer.from(bytes));
}

/**
 * The one subject a leaf has: a single RDN holding the CN as a UTF8String, as `openssl req` and
 * `openssl ca -subj` write it. Decoded text is not enough to compare: a CN in another string type
 * (a BMPString "ct1.mesh") reads the same, but openssl's database records its raw bytes, and the
 * row would then name nobody (not revocable by CN, not seen by the one-live-certificate check).
 */
export function leafSubjectDer(cn: string): Buffer {
  return sequence(set(sequence(objectId('2.5.4.3'), tlv(0x0c, Buffer.from(cn, 'utf8')))));
}

/** GeneralName choices we issue: [2] dNSName, [6] URI, [7] iPAddress (RFC 5280 §4.2.1.6). */
export const dnsName = (name: string): Buffer => tlv(0x82, Buffer.from(name, 'latin1'));
export const uriName = (uri: string): Buffer => tlv(0x86, Buffer.from(uri, 'latin1'));
export function ipName(ip: string): Buffer {
  return tlv(0x87, net.isIPv4(ip) ? Buffer.from(ip.split('.').map(Number)) : ipv6Bytes(ip));
}

function ipv6Bytes(ip: string): Buffer {
  const [head, tail] = ip.includes('::') ? (ip.split('::') as [string, string]) : [ip, undefined];
  const groups = (s: string | undefined) => (s ? s.split(':') : []);
  const h = groups(head),
    t = groups(tail);
  const all = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  const out = Buffer.alloc(16);
  all.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}
