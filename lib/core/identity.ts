// Identity grammar (DESIGN §3). Every name that reaches a template, a file name or an openssl
// argument passes through here first; the branded types make it impossible to skip by mistake.
import { UsageError, show } from './errors.ts';

declare const brand: unique symbol;
type Brand<T, B extends string> = T & { readonly [brand]: B };
export type NodeId = Brand<string, 'NodeId'>;
export type AgentId = Brand<string, 'AgentId'>;
export type UserName = Brand<string, 'UserName'>;
export type MeshDomain = Brand<string, 'MeshDomain'>;

export type Identity =
  | { kind: 'node'; nodeId: NodeId }
  | { kind: 'agent'; agentId: AgentId; nodeId: NodeId }
  | { kind: 'user'; user: UserName };

export type IdentityKind = Identity['kind'];

/** `external` names the user namespace; a node of that name would make `x@external` ambiguous. */
export const RESERVED_NODE_IDS = new Set(['external']);

const RULES = {
  'node-id': {
    re: /^[a-z](?:[a-z0-9-]{0,30}[a-z0-9])?$/,
    text: '^[a-z](?:[a-z0-9-]{0,30}[a-z0-9])?$ (a letter, then letters, digits or "-", at most 32)',
  },
  'agent-id': {
    re: /^[a-z](?:[a-z0-9_-]{0,30}[a-z0-9])?$/,
    text: '^[a-z](?:[a-z0-9_-]{0,30}[a-z0-9])?$ (a letter, then letters, digits, "_" or "-", at most 32)',
  },
  user: {
    re: /^[a-z](?:[a-z0-9._-]{0,62}[a-z0-9])?$/,
    text: '^[a-z](?:[a-z0-9._-]{0,62}[a-z0-9])?$ (a letter, then letters, digits, ".", "_" or "-", at most 64)',
  },
  domain: {
    re: /^(?=.{1,200}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/,
    text: 'lower-case DNS labels separated by "."',
  },
} as const;
type RuleName = keyof typeof RULES;

function check(rule: RuleName, value: string): string {
  const { re, text } = RULES[rule];
  if (typeof value !== 'string' || value.length === 0)
    throw new UsageError(`${rule} is empty — give a name matching ${text}`);
  if (re.test(value)) return value;
  const lower = value.toLowerCase();
  if (lower !== value && re.test(lower)) {
    throw new UsageError(`${rule} ${show(value)} must be lower case — did you mean ${show(lower)}?`);
  }
  throw new UsageError(`${rule} ${show(value)} does not match ${text}`);
}

export function nodeId(value: string): NodeId {
  check('node-id', value);
  if (RESERVED_NODE_IDS.has(value))
    throw new UsageError(`node-id ${show(value)} is reserved for external users — pick another name`);
  return value as NodeId;
}
export const agentId = (value: string): AgentId => check('agent-id', value) as AgentId;
export const userName = (value: string): UserName => check('user', value) as UserName;
export const meshDomain = (value: string): MeshDomain => check('domain', value) as MeshDomain;

/**
 * Parses what an operator types: `ct111` or `ct111.<domain>` (node), `opus@ct111` (agent),
 * `alice@external` (user). Exactly one `@`; nothing is folded or trimmed.
 */
export function parseIdentity(input: string, domain: MeshDomain): Identity {
  if (typeof input !== 'string' || input.length === 0)
    throw new UsageError('identity is empty — give a node-id, <agent-id>@<node-id> or <user>@external');
  const parts = input.split('@');
  if (parts.length > 2)
    throw new UsageError(`identity ${show(input)} has more than one "@" — use <agent-id>@<node-id> or <user>@external`);
  if (parts.length === 2) {
    const [left, right] = parts as [string, string];
    if (right === 'external') return { kind: 'user', user: userName(left) };
    return { kind: 'agent', agentId: agentId(left), nodeId: nodeId(right) };
  }
  const suffix = `.${domain}`;
  const bare = input.endsWith(suffix) ? input.slice(0, -suffix.length) : input;
  return { kind: 'node', nodeId: nodeId(bare) };
}

/** Like parseIdentity, but insists on one kind. */
export function parseIdentityOf(kind: IdentityKind, input: string, domain: MeshDomain): Identity {
  const id = parseIdentity(input, domain);
  if (id.kind !== kind) {
    const want = { node: '<node-id>', agent: '<agent-id>@<node-id>', user: '<user>@external' }[kind];
    throw new UsageError(`${show(input)} is a ${id.kind} identity — this command wants ${want}`);
  }
  return id;
}

/** The certificate subject CN of an identity. */
export function commonName(id: Identity, domain: MeshDomain): string {
  switch (id.kind) {
    case 'node':
      return `${id.nodeId}.${domain}`;
    case 'agent':
      return `${id.agentId}@${id.nodeId}`;
    case 'user':
      return `${id.user}@external`;
  }
}

/** The SPIFFE ID carried as a URI SAN, the same identity as the CN. */
export function spiffeId(id: Identity, domain: MeshDomain): string {
  switch (id.kind) {
    case 'node':
      return `spiffe://${domain}/node/${id.nodeId}`;
    case 'agent':
      return `spiffe://${domain}/agent/${id.nodeId}/${id.agentId}`;
    case 'user':
      return `spiffe://${domain}/user/${id.user}`;
  }
}

/** File stem under issued/: `ct111`, `opus@ct111`, `alice@external`. Safe: grammar has no `/`. */
export function fileStem(id: Identity): string {
  switch (id.kind) {
    case 'node':
      return id.nodeId;
    case 'agent':
      return `${id.agentId}@${id.nodeId}`;
    case 'user':
      return `${id.user}@external`;
  }
}

/** Reads a certificate CN back into an identity; refuses anything outside the grammar. */
export function identityFromCommonName(cn: string, domain: MeshDomain): Identity {
  if (cn.includes('@')) return parseIdentity(cn, domain);
  const suffix = `.${domain}`;
  if (!cn.endsWith(suffix))
    throw new UsageError(`CN ${show(cn)} is neither <node-id>${suffix} nor <agent-id>@<node-id> nor <user>@external`);
  return { kind: 'node', nodeId: nodeId(cn.slice(0, -suffix.length)) };
}

export function sameIdentity(a: Identity, b: Identity): boolean {
  return fileStem(a) === fileStem(b) && a.kind === b.kind;
}
