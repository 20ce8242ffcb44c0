// Subject alternative names an operator or a node may ask for (DESIGN §3), parsed into values
// that are safe to place in a template: DNS names in LDH form, IP addresses in canonical form.
import net from 'node:net';
import { UsageError, show } from './errors.ts';
import type { MeshDomain, NodeId } from './identity.ts';

declare const brand: unique symbol;
export type San = { readonly type: 'DNS' | 'IP'; readonly value: string; readonly [brand]: 'San' };

const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

export function dnsName(value: string): string {
  if (value.length === 0 || value.length > 253)
    throw new UsageError(`DNS name ${show(value)} must be 1 to 253 characters`);
  const labels = value.split('.');
  for (const label of labels) {
    if (LABEL.test(label)) continue;
    if (LABEL.test(label.toLowerCase()))
      throw new UsageError(`DNS name ${show(value)} must be lower case — did you mean ${show(value.toLowerCase())}?`);
    throw new UsageError(
      `DNS name ${show(value)} has an invalid label ${show(label)} — labels are letters, digits and "-" (no wildcards)`,
    );
  }
  return value;
}

export function ipAddress(value: string): string {
  const version = net.isIP(value);
  if (version === 0) throw new UsageError(`IP address ${show(value)} is not a valid IPv4 or IPv6 address`);
  // net.isIP accepts a zone id (fe80::1%eth0); it names an interface of one host, never a SAN.
  if (value.includes('%')) throw new UsageError(`IP address ${show(value)} carries a zone id — give the address alone`);
  // Canonical form, so the same address is never requested twice under two spellings.
  return version === 4 ? value : canonicalIpv6(value);
}

/** RFC 5952 compressed lower-case form (WHATWG URL parsing produces exactly that). */
export function canonicalIpv6(text: string): string {
  return new URL(`http://[${text}]/`).hostname.slice(1, -1);
}

/** `DNS:name` or `IP:address`, one value per flag (a comma is never a separator). */
export function parseSan(input: string): San {
  if (typeof input !== 'string') throw new UsageError('SAN must be text like DNS:name or IP:address');
  const colon = input.indexOf(':');
  const type = colon > 0 ? input.slice(0, colon).toUpperCase() : '';
  const value = input.slice(colon + 1);
  if (type === 'DNS') return { type: 'DNS', value: dnsName(value) } as San;
  if (type === 'IP') return { type: 'IP', value: ipAddress(value) } as San;
  throw new UsageError(`SAN ${show(input)} must be DNS:<name> or IP:<address>, one per --san`);
}

export function sanText(san: San): string {
  return `${san.type}:${san.value}`;
}

/** Drops repeats while keeping the order given. */
export function uniqueSans(sans: readonly San[]): San[] {
  const seen = new Set<string>();
  return sans.filter((s) => !seen.has(sanText(s)) && seen.add(sanText(s)) !== undefined);
}

export type Cidr = { readonly text: string; readonly list: net.BlockList };

export function parseCidrs(text: string): Cidr[] {
  return text
    .split(/[\s,]+/)
    .filter(Boolean)
    .map((entry) => {
      const [addr, bits] = entry.split('/');
      const family = net.isIP(addr ?? '');
      const prefix = Number(bits);
      if (family === 0 || !Number.isInteger(prefix) || prefix < 0 || prefix > (family === 4 ? 32 : 128)) {
        throw new UsageError(`RIVET_SAN_CIDRS entry ${show(entry)} is not a CIDR like 10.0.0.0/8 or fc00::/7`);
      }
      const list = new net.BlockList();
      list.addSubnet(addr!, prefix, family === 4 ? 'ipv4' : 'ipv6');
      return { text: entry, list };
    });
}

export const DEFAULT_SAN_CIDRS = '127.0.0.0/8,::1/128,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,100.64.0.0/10,fc00::/7';

/**
 * The enrollment policy for a node's extra SANs (DESIGN §3): aliases inside the node's own
 * namespace, and IPs inside the configured private ranges. Throws naming the SAN and the rule.
 */
export function checkNodeSanPolicy(san: San, node: NodeId, domain: MeshDomain, cidrs: readonly Cidr[]): void {
  if (san.type === 'DNS') {
    const v = san.value;
    const ok =
      v === node ||
      v === 'localhost' ||
      v.endsWith(`.${node}.${domain}`) ||
      v === `${node}.${domain}` ||
      (v.startsWith(`${node}-`) &&
        v.endsWith(`.${domain}`) &&
        !v.slice(node.length + 1, -domain.length - 1).includes('.'));
    if (!ok)
      throw new UsageError(
        `SAN ${show(sanText(san))} is not under ${node}.${domain} or ${node}-*.${domain}`,
        'san_policy',
      );
    return;
  }
  const family = net.isIP(san.value) === 4 ? 'ipv4' : 'ipv6';
  if (!cidrs.some((c) => c.list.check(san.value, family))) {
    throw new UsageError(
      `SAN ${show(sanText(san))} is outside the allowed ranges ${cidrs.map((c) => c.text).join(', ')}`,
      'san_policy',
    );
  }
}
