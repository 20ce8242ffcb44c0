// `rivetos/session.attach` (seed: "validates the presented cert's CN matches the claimed
// agent_id"), for an MCP session rather than one TLS connection: one MCP session uses several
// connections (the SSE GET, pooled POSTs), so the token belongs to the Mcp-Session-Id, which only
// the identity that opened it can use. The same check as lib/mesh/session.ts attachSession, on
// the identity the gate verified for this request. SDK tool names are [A-Za-z0-9._-]{1,128}, so
// the tool spelling for generic clients is `rivetos.session.attach`.
import { randomBytes } from 'node:crypto';
import { show } from '../core/errors.ts';
import { secretMatches } from '../core/secret.ts';
import { MeshAuthError, type PeerIdentity } from '../mesh/peer.ts';
import type { AgentId, NodeId } from '../core/identity.ts';

export const ATTACH_METHOD = 'rivetos/session.attach';
export const ATTACH_TOOL = 'rivetos.session.attach';

/** What attach returns (and `sessionOf` finds again): the wire form is snake_case like the claim. */
export type AttachedSession = { agentId: AgentId; nodeId: NodeId; cn: string; sessionToken: string };
export type AttachResult = { agent_id: string; node_id: string; cn: string; session_token: string };

/** Listed beside the server's own tools (JSON Schema, as tools/list carries it). */
export const ATTACH_TOOL_DEFINITION = {
  name: ATTACH_TOOL,
  title: 'Attach this session to an agent',
  description: 'Checks that the client certificate is exactly the claimed agent (agent_id "<agent>@<node>") and returns the session token of this MCP session.',
  inputSchema: { type: 'object', properties: { agent_id: { type: 'string', description: 'the agent identity, e.g. opus@ct111' } }, required: ['agent_id'] },
} as const;

/** Refuses unless `peer` is the agent certificate of exactly `claimed`. */
export function checkAttachClaim(peer: PeerIdentity, claimed: unknown): { agentId: AgentId; nodeId: NodeId; cn: string } {
  if (typeof claimed !== 'string' || claimed.length === 0) {
    throw new MeshAuthError(`session.attach needs the claimed agent identity — send {"agent_id": "<agent-id>@<node-id>"} (this certificate is ${show(peer.cn)})`, 'bad_claim');
  }
  if (peer.kind !== 'agent') {
    throw new MeshAuthError(`a ${peer.kind} certificate (${show(peer.cn)}) cannot attach as agent ${show(claimed)} — connect with the agent's own certificate (agents/<id>.crt)`, 'not_agent');
  }
  if (claimed !== peer.cn) {
    const hint = claimed === peer.agentId ? ` — claim the full identity ${show(peer.cn)}` : '';
    throw new MeshAuthError(`certificate ${show(peer.cn)} cannot attach as ${show(claimed)}: the claim must equal the certificate CN exactly${hint}`, 'wrong_agent');
  }
  return { agentId: peer.agentId, nodeId: peer.nodeId, cn: peer.cn };
}

/** The attachment of one MCP session: attaching again returns the same token. */
export class SessionAttachment {
  #session: AttachedSession | undefined;

  attach(peer: PeerIdentity, claimed: unknown): AttachResult {
    const ok = checkAttachClaim(peer, claimed);
    this.#session ??= { ...ok, sessionToken: randomBytes(32).toString('base64url') };
    const s = this.#session;
    return { agent_id: s.cn, node_id: s.nodeId, cn: s.cn, session_token: s.sessionToken };
  }

  get current(): AttachedSession | undefined { return this.#session; }

  /** The session, if `token` is its token (constant-time compare). */
  matches(token: unknown): AttachedSession | undefined {
    return this.#session && typeof token === 'string' && secretMatches(token, this.#session.sessionToken) ? this.#session : undefined;
  }
}
