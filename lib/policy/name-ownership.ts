// Every DNS name and IP address of a live node certificate belongs to that node alone (DESIGN §3).
// Node-ids may contain "-" and a node's listener names are <node-id>-<x>.<domain>, so ct3's
// "ct3-api-mcp.mesh" is also a listener name of a node called "ct3-api". Without this check a
// node holding the bootstrap secret (or its own cert, at /renew) could carry another node's name
// or address and then pass a client's host check as that node (issue 14: ct3 served as
// ct3-api-mcp.mesh; ct112 took ct111's IP and was accepted as the datahub).
//
// A name under the mesh domain also lies in a node's namespace: <n>.<domain>, *.<n>.<domain> and
// <n>-*.<domain>. Namespaces nest (ct3-api's lies inside ct3's), and the most specific live node
// owns a name in both. So, first come first served, a node A may not take a name that
//   - another live node carries (DNS or IP), or
//   - lies in the namespace of a live node more specific for it than A (ct3 may not take
//     ct3-api-grafana.mesh while ct3-api lives),
// and A may not exist at all while a less specific live node carries a name in A's namespace
// (ct3-api may not enroll while ct3 carries ct3-api-grafana.mesh).
// `localhost` (and *.localhost) and loopback addresses name "this host" on every host: they
// identify nobody, so any node may carry them; provision-ct never trusts them for the datahub.
import net from 'node:net';
import { UsageError } from '../core/errors.ts';
import type { MeshDomain } from '../core/identity.ts';
import { nodeBaseNames } from '../sign/profile.ts';

export type NameConflict = { name: string; holder: string; serial: string; message: string };
type Entry = { node: string; serial: string; name: string };

/** Not exclusive: names and addresses that mean the local host wherever they are used. */
export function isHostLocal(name: string): boolean {
  if (name === 'localhost' || name.endsWith('.localhost')) return true;
  const ip = ipKey(name);
  return ip !== undefined && (ip.startsWith('127.') || ip === '::1');
}

/** One spelling per address: IPv4-mapped IPv6 (::ffff:10.0.0.1) is the IPv4 address it maps. */
export function ipKey(text: string): string | undefined {
  const v = net.isIP(text);
  if (v === 4) return text;
  if (v !== 6) return undefined;
  const dotted = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(text);
  if (dotted) return dotted[1]!;
  const m = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/i.exec(text);
  if (!m) return text.toLowerCase();
  const hi = parseInt(m[1]!, 16);
  const lo = parseInt(m[2]!, 16);
  return [hi >> 8, hi & 255, lo >> 8, lo & 255].join('.');
}

/** The label that decides namespace membership: the one just left of the domain, or a bare name. */
function ownerLabel(name: string, domain: MeshDomain): string | undefined {
  const suffix = `.${domain}`;
  if (name.endsWith(suffix)) return name.slice(0, -suffix.length).split('.').pop();
  return name.includes('.') ? undefined : name;
}

const inNamespace = (label: string | undefined, node: string) =>
  label !== undefined && (label === node || label.startsWith(`${node}-`));
const firstSegment = (label: string) => label.split('-')[0]!;

/**
 * The ownership index: who carries which name among live node certificates. Built under the CA
 * lock from the issuers' databases (lib/policy/live-names.ts); `claim` adds what a group is about
 * to sign, so two requests of one lock hold are checked against each other too.
 */
export class NameIndex {
  private readonly exact = new Map<string, Entry[]>();
  private readonly liveNodes = new Map<string, string>();
  /** DNS names in some namespace, bucketed by the first "-" segment of their owner label. */
  private readonly bySegment = new Map<string, Array<Entry & { label: string }>>();

  constructor(readonly domain: MeshDomain) {}

  add(node: string, serial: string, dns: readonly string[], ips: readonly string[]): void {
    if (!this.liveNodes.has(node)) this.liveNodes.set(node, serial);
    for (const name of [...dns, ...ips.map((ip) => ipKey(ip) ?? ip)]) {
      if (isHostLocal(name)) continue;
      const list = this.exact.get(name) ?? [];
      list.push({ node, serial, name });
      this.exact.set(name, list);
    }
    for (const name of dns) {
      const label = ownerLabel(name, this.domain);
      if (label === undefined || isHostLocal(name)) continue;
      const bucket = this.bySegment.get(firstSegment(label)) ?? [];
      bucket.push({ node, serial, name, label });
      this.bySegment.set(firstSegment(label), bucket);
    }
  }

  get nodeCount(): number {
    return this.liveNodes.size;
  }

  /** The first conflict of node `node` asking for `dns` and `ips`, or undefined. */
  conflict(node: string, dns: readonly string[], ips: readonly string[]): NameConflict | undefined {
    return this.conflicts(node, dns, ips)[0];
  }

  /** Every name of the request that conflicts (one entry per name), most direct first. */
  conflicts(node: string, dns: readonly string[], ips: readonly string[]): NameConflict[] {
    const out: NameConflict[] = [];
    const found = (c: NameConflict) => {
      if (!out.some((o) => o.name === c.name)) out.push(c);
    };
    const cn = (n: string) => `${n}.${this.domain}`;
    const own = new Set(nodeBaseNames(node, this.domain));
    const fix = (name: string, holder: string) =>
      own.has(name) || inNamespace(ownerLabel(name, this.domain), node)
        ? `node-id ${node} would overlap it; pick another node-id or revoke ${cn(holder)}'s certificate`
        : `pick another alias or revoke ${cn(holder)}'s certificate`;
    for (const ip of ips) {
      const key = ipKey(ip) ?? ip;
      const other = this.exact.get(key)?.find((e) => e.node !== node);
      if (other)
        found({
          name: ip,
          holder: other.node,
          serial: other.serial,
          message: `IP address ${ip} already belongs to node ${cn(other.node)} (serial ${other.serial}) — pick another address or revoke ${cn(other.node)}'s certificate`,
        });
    }
    for (const name of dns) {
      const other = this.exact.get(name)?.find((e) => e.node !== node);
      if (!other) continue;
      if (name === cn(other.node))
        found({
          name,
          holder: other.node,
          serial: other.serial,
          message: `DNS name ${name} is the name of node ${other.node}, which holds a valid certificate — pick another alias`,
        });
      else
        found({
          name,
          holder: other.node,
          serial: other.serial,
          message: `DNS name ${name} already belongs to node ${cn(other.node)} (serial ${other.serial}) — ${fix(name, other.node)}`,
        });
    }
    // A requested name inside a more specific live node's namespace.
    for (const name of dns) {
      const label = ownerLabel(name, this.domain);
      if (label === undefined || isHostLocal(name)) continue;
      for (let i = label.length; i > 0; i = label.lastIndexOf('-', i - 1)) {
        const owner = label.slice(0, i);
        if (owner === node || (inNamespace(label, node) && node.length > owner.length)) break;
        const serial = this.liveNodes.get(owner);
        if (serial) {
          found({
            name,
            holder: owner,
            serial,
            message: `DNS name ${name} lies in the names of node ${owner} (${owner}.${this.domain}, ${owner}-*.${this.domain}), which holds a valid certificate (serial ${serial}) — pick another alias or revoke ${cn(owner)}'s certificate`,
          });
          break;
        }
      }
    }
    // A live node carrying a name that lies in our namespace, where we would be the more specific owner.
    for (const e of this.bySegment.get(firstSegment(node)) ?? []) {
      if (e.node === node || !inNamespace(e.label, node)) continue;
      if (inNamespace(e.label, e.node) && e.node.length > node.length) continue;
      found({
        name: e.name,
        holder: e.node,
        serial: e.serial,
        message: `DNS name ${e.name} already belongs to node ${cn(e.node)} (serial ${e.serial}) — node-id ${node} would overlap it; pick another node-id or revoke ${cn(e.node)}'s certificate`,
      });
    }
    return out;
  }
}

/** Throws the conflict as a usage error (exit 2; HTTP 409 `name_taken`). */
export function refuseConflict(c: NameConflict | undefined): void {
  if (c) throw new UsageError(c.message, 'name_taken');
}
