// A minimal DER writer, the counterpart of der.ts: just enough to encode the subjectAltName value a
// profile gives (lib/csr.ts sanExtensionValue), so a CSR's requested SAN can be compared with it
// byte for byte. Definite lengths, the one DER form.
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

/** GeneralName choices we issue: [2] dNSName, [6] URI, [7] iPAddress (RFC 5280 §4.2.1.6). */
export const dnsName = (name: string): Buffer => tlv(0x82, Buffer.from(name, 'latin1'));
export const uriName = (uri: string): Buffer => tlv(0x86, Buffer.from(uri, 'latin1'));
export function ipName(ip: string): Buffer {
  return tlv(0x87, net.isIPv4(ip) ? Buffer.from(ip.split('.').map(Number)) : ipv6Bytes(ip));
}

function ipv6Bytes(ip: string): Buffer {
  const [head, tail] = ip.includes('::') ? ip.split('::') as [string, string] : [ip, undefined];
  const groups = (s: string | undefined) => (s ? s.split(':') : []);
  const h = groups(head), t = groups(tail);
  const all = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  const out = Buffer.alloc(16);
  all.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}
