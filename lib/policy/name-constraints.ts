// Name constraints on the intermediate (DESIGN §3): a critical nameConstraints extension permitting
// DNS <domain> and localhost, IP = RIVET_SAN_CIDRS and URI host <domain> (the trust domain of
// spiffe://<domain>/…), so a stolen intermediate key cannot mint a certificate that verifiers
// accept for any other name. Chosen at issue-intermediate / rotate-intermediate time, recorded in
// the intermediate's directory, and checked at every issuance against the issuing certificate
// itself: a name outside them is refused (name_constraint) instead of signed into a certificate
// that every verifier would then reject.
//
// The URI constraint is the host alone ("mesh", not "spiffe://mesh"): RFC 5280 applies URI
// constraints to the host part, and OpenSSL compares that host with the constraint exactly, so
// "spiffe://mesh" would refuse every certificate we issue. Go (crypto/x509) accepts "mesh" too
// (and, more loosely, subdomains of it); GnuTLS ignores permitted URI subtrees altogether; Python
// cryptography's verifier refuses any chain whose CA constrains URIs ("unsupported name
// constraint", by design since 42.0) — `--no-uri-constraint` is for meshes with such verifiers.
import net from 'node:net';
import path from 'node:path';
import type { Cidr } from '../core/san.ts';
import { dnsName } from '../core/san.ts';
import type { MeshDomain } from '../core/identity.ts';
import { RivetError, UsageError, show } from '../core/errors.ts';
import type { TemplateValues } from '../sys/template.ts';
import { PUBLIC_MODE, readText, writeAtomic } from '../sys/files.ts';
import {
  dnsMatches,
  ipMatches,
  nameConstraintsOf,
  uriMatches,
  type NameConstraints,
  type Subtree,
} from '../x509/name-constraints.ts';
import { X509Certificate } from 'node:crypto';
import { parseCertDer, type CertInfo } from '../x509/cert.ts';

/** What the operator chose for one intermediate (recorded as name-constraints.json beside it). */
export type NameConstraintChoice = { constrained: boolean; uri: boolean; permit: string[] };
export const DEFAULT_NAME_CONSTRAINTS: NameConstraintChoice = { constrained: true, uri: true, permit: [] };
const CHOICE_FILE = 'name-constraints.json';

export type NameConstraintFlags = { nameConstraints?: boolean; uriConstraint?: boolean; permit?: readonly string[] };

/** `--permit DNS:name | IP:addr/bits | URI:host`, in canonical text. */
export function parsePermit(input: string): string {
  const colon = input.indexOf(':');
  const type = colon > 0 ? input.slice(0, colon).toUpperCase() : '';
  const value = input.slice(colon + 1);
  if (type === 'DNS' || type === 'URI') return `${type}:${dnsName(value)}`;
  if (type === 'IP') {
    const [addr, bits, ...rest] = value.split('/');
    const family = net.isIP(addr ?? '');
    const prefix = Number(bits);
    if (!family || rest.length || !Number.isInteger(prefix) || prefix < 0 || prefix > (family === 4 ? 32 : 128)) {
      throw new UsageError(`--permit ${show(input)}: want IP:<address>/<prefix bits>, e.g. IP:192.0.2.0/24`);
    }
    return `IP:${addr}/${prefix}`;
  }
  throw new UsageError(`--permit ${show(input)} must be DNS:<domain>, IP:<address>/<bits> or URI:<host>`);
}

/** The choice for a new intermediate: flags over what the previous one recorded, over the default. */
export function nameConstraintChoice(
  flags: NameConstraintFlags,
  inherited: NameConstraintChoice = DEFAULT_NAME_CONSTRAINTS,
): NameConstraintChoice {
  const permit = flags.permit?.length ? [...new Set(flags.permit.map(parsePermit))] : inherited.permit;
  const choice = {
    constrained: flags.nameConstraints ?? inherited.constrained,
    uri: flags.uriConstraint ?? inherited.uri,
    permit,
  };
  if (!choice.constrained && flags.permit?.length)
    throw new UsageError('--permit adds to the name constraints; it cannot go with --no-name-constraints');
  if (!choice.uri && choice.permit.some((p) => p.startsWith('URI:')))
    throw new UsageError('--permit URI:… needs the URI constraint; drop --no-uri-constraint');
  return choice;
}

/** The permitted subtrees of a choice, as openssl's `permitted;TYPE.n = value` lines. */
function permittedLines(
  choice: NameConstraintChoice,
  domain: MeshDomain,
  cidrs: readonly Cidr[],
): Array<[string, string]> {
  const extra = (t: string) => choice.permit.filter((p) => p.startsWith(`${t}:`)).map((p) => p.slice(t.length + 1));
  const dns = [domain, 'localhost', ...extra('DNS')];
  const ips = [...cidrs.map((c) => c.text), ...extra('IP')];
  const uris = choice.uri ? [domain, ...extra('URI')] : [];
  return [
    ...[...new Set(dns)].map((v, i): [string, string] => [`permitted;DNS.${i + 1}`, v]),
    ...[...new Set(ips)].map((v, i): [string, string] => [`permitted;IP.${i + 1}`, opensslIpRange(v)]),
    ...[...new Set(uris)].map((v, i): [string, string] => [`permitted;URI.${i + 1}`, v]),
  ];
}

/** `10.0.0.0/8` → `10.0.0.0/255.0.0.0`: openssl wants the mask spelled out (IPv6 too). */
function opensslIpRange(cidr: string): string {
  const [addr, bits] = cidr.split('/') as [string, string];
  const v4 = net.isIP(addr) === 4;
  const mask = Buffer.alloc(v4 ? 4 : 16);
  for (let i = 0; i < Number(bits); i++) mask[i >> 3]! |= 0x80 >> (i & 7);
  const text = v4
    ? [...mask].join('.')
    : [...Array(8).keys()].map((i) => mask.readUInt16BE(i * 2).toString(16)).join(':');
  return `${addr}/${text}`;
}

/** templates/intermediate.cnf: the extension section to sign with, and the permitted subtrees. */
export function nameConstraintProfile(
  choice: NameConstraintChoice,
  domain: MeshDomain,
  cidrs: readonly Cidr[],
): { section: string; values: TemplateValues } {
  if (!choice.constrained)
    return { section: 'v3_intermediate_unconstrained', values: { permitted: { lines: [], allowEmpty: true } } };
  return { section: 'v3_intermediate', values: { permitted: { lines: permittedLines(choice, domain, cidrs) } } };
}

export async function readNameConstraintChoice(dir: string): Promise<NameConstraintChoice | undefined> {
  const text = await readText(path.join(dir, CHOICE_FILE));
  if (text === undefined) return undefined;
  try {
    const v = JSON.parse(text) as NameConstraintChoice;
    if (typeof v.constrained === 'boolean' && typeof v.uri === 'boolean' && Array.isArray(v.permit))
      return { constrained: v.constrained, uri: v.uri, permit: v.permit.map(parsePermit) };
  } catch {
    /* reported below */
  }
  throw new RivetError(
    `${path.join(dir, CHOICE_FILE)} is not a name-constraint record — restore it, or delete it to use the defaults at the next rotation`,
    'bad_settings',
  );
}

export async function writeNameConstraintChoice(dir: string, choice: NameConstraintChoice): Promise<void> {
  await writeAtomic(path.join(dir, CHOICE_FILE), `${JSON.stringify(choice, null, 2)}\n`, PUBLIC_MODE);
}

/** One line for people: what the certificate permits, or that it is unconstrained. */
export function describeNameConstraints(info: CertInfo): string {
  const nc = nameConstraintsOf(info);
  if (!nc) return 'no name constraints (issued with --no-name-constraints)';
  const group = (t: Subtree['type']) =>
    nc.permitted.filter((s) => s.type === t).map((s) => s.text.slice(s.text.indexOf(':') + 1));
  const parts = (['DNS', 'IP', 'URI'] as const)
    .map((t) => [t, group(t)] as const)
    .filter(([, v]) => v.length)
    .map(([t, v]) => `${t} ${v.join(', ')}`);
  return `${nc.critical ? 'critical ' : ''}name constraints: ${parts.join('; ')}`;
}

export type Names = { dns: readonly string[]; ips: readonly string[]; uris: readonly string[] };

/**
 * Throws (exit 2, HTTP 403) naming the first name the issuer's name constraints do not permit.
 * RFC 5280: names of a form with no permitted subtree of that form are unconstrained.
 */
export function checkNameConstraints(issuer: CertInfo | X509Certificate, cn: string, names: Names): void {
  const nc = nameConstraintsOf(issuer instanceof X509Certificate ? parseCertDer(Buffer.from(issuer.raw)) : issuer);
  if (!nc) return;
  const permitted = (type: Subtree['type']) => nc.permitted.filter((s) => s.type === type);
  const list = (type: Subtree['type']) =>
    permitted(type)
      .map((s) => s.text.slice(s.text.indexOf(':') + 1))
      .join(', ');
  const fix = (san: string) =>
    `to allow it, rotate the intermediate with \`rivet-ca rotate-intermediate --permit ${san}\``;
  const dns = permitted('DNS');
  for (const name of dns.length ? names.dns : []) {
    if (dns.some((s) => s.type === 'DNS' && dnsMatches(name, s.value))) continue;
    if (!name.includes('.')) {
      throw new UsageError(
        `${cn}: SAN "DNS:${name}" is a bare alias, and the intermediate is name-constrained (DNS ${list('DNS')}): no constraint can cover a name without a dot — use a name under ${dns[0]!.text.slice(4)} instead; ${fix(`DNS:${name}`)} (or --no-name-constraints)`,
        'name_constraint',
      );
    }
    throw new UsageError(
      `${cn}: SAN "DNS:${name}" is outside the intermediate's name constraints (DNS ${list('DNS')}) — verifiers would refuse the certificate; ${fix(`DNS:${name}`)}`,
      'name_constraint',
    );
  }
  const ips = permitted('IP');
  for (const ip of ips.length ? names.ips : []) {
    if (ips.some((s) => s.type === 'IP' && ipMatches(ip, s))) continue;
    throw new UsageError(
      `${cn}: SAN "IP:${ip}" is outside the intermediate's name constraints (IP ${list('IP')}) — verifiers would refuse the certificate; ${fix(`IP:${ip}/${net.isIP(ip) === 4 ? 32 : 128}`)}`,
      'name_constraint',
    );
  }
  const uris = permitted('URI');
  for (const uri of uris.length ? names.uris : []) {
    if (uris.some((s) => s.type === 'URI' && uriMatches(uri, s.value))) continue;
    throw new UsageError(
      `${cn}: SAN "URI:${uri}" is outside the intermediate's name constraints (URI host ${list('URI')})`,
      'name_constraint',
    );
  }
}

export type { NameConstraints };
