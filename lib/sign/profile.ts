// What each leaf profile contains (DESIGN §3): derived from the validated identity alone. A CSR
// contributes only its public key; subject and every extension come from here.
import { commonName, spiffeId, type Identity, type MeshDomain } from '../core/identity.ts';
import { UsageError, show } from '../core/errors.ts';
import { OID } from '../x509/cert.ts';
import { sanText, uniqueSans, type San } from '../core/san.ts';
import type { TemplateValues } from '../sys/template.ts';

export const LEAF_DAYS = 90;

export type LeafProfile = {
  template: 'node.cnf' | 'agent.cnf' | 'user.cnf';
  cn: string;
  dns: string[];
  ips: string[];
  uris: string[];
  eku: string[];
};

/** The DNS names every node cert carries: one per listener the node exposes. */
export function nodeBaseNames(nodeId: string, domain: MeshDomain): string[] {
  return [`${nodeId}.${domain}`, `${nodeId}-mcp.${domain}`, `${nodeId}-runtime-rpc.${domain}`];
}

export function leafProfile(id: Identity, domain: MeshDomain, extraSans: readonly San[] = []): LeafProfile {
  const cn = commonName(id, domain);
  const uris = [spiffeId(id, domain)];
  if (id.kind !== 'node') {
    if (extraSans.length)
      throw new UsageError(
        `${show(cn)} is a ${id.kind} identity: extra SANs (${extraSans.map(sanText).join(' ')}) are only for node certs`,
      );
    return {
      template: id.kind === 'agent' ? 'agent.cnf' : 'user.cnf',
      cn,
      dns: [],
      ips: [],
      uris,
      eku: [OID.clientAuth],
    };
  }
  const sans = uniqueSans(extraSans);
  const dns = [
    ...new Set([...nodeBaseNames(id.nodeId, domain), ...sans.filter((s) => s.type === 'DNS').map((s) => s.value)]),
  ];
  const ips = sans.filter((s) => s.type === 'IP').map((s) => s.value);
  return { template: 'node.cnf', cn, dns, ips, uris, eku: [OID.serverAuth, OID.clientAuth] };
}

/** Subject alternative names as lists; absent or empty lists mean none of that kind. */
export type SanNames = { dns?: readonly string[]; ips?: readonly string[]; uris?: readonly string[] };

/**
 * The `{{san}}` and `{{alt_names}}` template values (templates/*.cnf, req.cnf): a
 * `subjectAltName = @alt_names` line and its section, DNS then IP then URI — the order
 * csr.ts sanExtensionValue encodes — or both empty when there are no names.
 */
export function sanValues(n: SanNames): TemplateValues {
  const lines: Array<[string, string]> = [];
  (n.dns ?? []).forEach((v, i) => lines.push([`DNS.${i + 1}`, v]));
  (n.ips ?? []).forEach((v, i) => lines.push([`IP.${i + 1}`, v]));
  (n.uris ?? []).forEach((v, i) => lines.push([`URI.${i + 1}`, v]));
  if (lines.length === 0) return { san: { lines: [], allowEmpty: true }, alt_names: { lines: [], allowEmpty: true } };
  return { san: { lines: [['subjectAltName', '@alt_names']] }, alt_names: { lines } };
}

/**
 * Template values for a leaf profile's extensions: its SAN from `[alt_names]`, or, for a batch
 * whose CSRs carry exactly this SAN (csrProfileMismatch), none, so `openssl ca` copies each CSR's.
 */
export function leafExtValues(p: LeafProfile, sanFrom: 'profile' | 'csr' = 'profile'): TemplateValues {
  return sanValues(sanFrom === 'csr' ? {} : p);
}
