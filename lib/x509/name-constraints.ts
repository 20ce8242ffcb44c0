// The nameConstraints extension (RFC 5280 §4.2.1.10) read from a CA certificate, and the RFC's
// matching rules for the three name forms we issue. node:crypto does not expose the extension, so
// the DER reader does. What issuance checks (lib/policy/name-constraints.ts) is what verifiers
// will check, read from the issuing certificate itself rather than from a setting beside it.
import net from 'node:net';
import { RivetError } from '../core/errors.ts';
import { children, content, readTlv } from './der.ts';
import type { CertInfo } from './cert.ts';

export const NAME_CONSTRAINTS_OID = '2.5.29.30';

/** One permitted or excluded subtree. IP subtrees keep address and mask; `text` is for people. */
export type Subtree =
  | { type: 'DNS' | 'URI' | 'email'; value: string; text: string }
  | { type: 'IP'; address: Buffer; mask: Buffer; text: string }
  | { type: 'other'; tag: number; text: string };

export type NameConstraints = { critical: boolean; permitted: Subtree[]; excluded: Subtree[] };

function subtree(tlv: ReturnType<typeof readTlv>): Subtree {
  const base = children(tlv)[0];
  if (!base) throw new RivetError('nameConstraints: empty GeneralSubtree', 'der');
  const body = content(base);
  if (base.tag === 0x82) return { type: 'DNS', value: body.toString('latin1'), text: `DNS:${body.toString('latin1')}` };
  if (base.tag === 0x86) return { type: 'URI', value: body.toString('latin1'), text: `URI:${body.toString('latin1')}` };
  if (base.tag === 0x81)
    return { type: 'email', value: body.toString('latin1'), text: `email:${body.toString('latin1')}` };
  if (base.tag === 0x87 && (body.length === 8 || body.length === 32)) {
    const half = body.length / 2;
    const address = body.subarray(0, half);
    const mask = body.subarray(half);
    return { type: 'IP', address, mask, text: `IP:${cidrText(address, mask)}` };
  }
  return { type: 'other', tag: base.tag, text: `GeneralName tag 0x${base.tag.toString(16)}` };
}

/** The extension of `info`, or undefined when it has none. */
export function nameConstraintsOf(info: CertInfo): NameConstraints | undefined {
  const ext = info.extensions.find((e) => e.oid === NAME_CONSTRAINTS_OID);
  if (!ext) return undefined;
  const out: NameConstraints = { critical: ext.critical, permitted: [], excluded: [] };
  for (const part of children(readTlv(ext.value))) {
    const list = part.tag === 0xa0 ? out.permitted : part.tag === 0xa1 ? out.excluded : undefined;
    if (!list) throw new RivetError(`nameConstraints: unexpected tag 0x${part.tag.toString(16)}`, 'der');
    for (const s of children(part)) list.push(subtree(s));
  }
  return out;
}

/** `addr/bits`; a mask that is not a run of leading ones (which no CA of ours writes) keeps its bits count. */
function cidrText(address: Buffer, mask: Buffer): string {
  let bits = 0;
  for (const byte of mask) bits += byte.toString(2).replace(/0/g, '').length;
  const addr =
    address.length === 4
      ? [...address].join('.')
      : new URL(
          `http://[${[...Array(8).keys()].map((i) => address.readUInt16BE(i * 2).toString(16)).join(':')}]/`,
        ).hostname.slice(1, -1);
  return `${addr}/${bits}`;
}

/**
 * RFC 5280: a DNS constraint is a domain; the name matches when it is that domain or ends with
 * "." + it. (A leading "." in the constraint, which some verifiers read as "subdomains only", is
 * matched as a plain suffix.)
 */
export function dnsMatches(name: string, constraint: string): boolean {
  const n = name.toLowerCase();
  const c = constraint.toLowerCase();
  if (c === '') return true;
  if (c.startsWith('.')) return n.endsWith(c);
  return n === c || n.endsWith(`.${c}`);
}

export function ipMatches(ip: string, s: Extract<Subtree, { type: 'IP' }>): boolean {
  const family = net.isIP(ip);
  if ((family === 4 ? 4 : 16) !== s.address.length || family === 0) return false;
  const [addr, bits] = s.text.slice('IP:'.length).split('/') as [string, string];
  const list = new net.BlockList();
  list.addSubnet(addr, Number(bits), family === 4 ? 'ipv4' : 'ipv6');
  return list.check(ip, family === 4 ? 'ipv4' : 'ipv6');
}

/**
 * RFC 5280: a URI constraint applies to the URI's host, and is a host (exact) or, with a leading
 * ".", a domain whose subdomains match. This is OpenSSL's reading, the strictest of the verifiers
 * we test (Go also lets "mesh" match "x.mesh"), so what passes here passes them all.
 */
export function uriMatches(uri: string, constraint: string): boolean {
  const host = /^[a-z][a-z0-9+.-]*:\/\/([^/:?#]*)/i.exec(uri)?.[1]?.toLowerCase();
  if (!host) return false;
  const c = constraint.toLowerCase();
  return c.startsWith('.') ? host.endsWith(c) : host === c;
}
