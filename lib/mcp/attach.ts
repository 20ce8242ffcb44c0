// `rivetos/session.attach` (seed: "validates the presented cert's CN matches the claimed
// agent_id"), for an MCP session rather than one TLS connection: one MCP session uses several
// connections (the SSE GET, pooled POSTs), so the token belongs to the Mcp-Session-Id, which only
// the identity that opened it can use. The check is lib/mesh/session.ts's, on the identity the
// gate verified for this request. SDK tool names are [A-Za-z0-9._-]{1,128}, so
// the tool spelling for generic clients is `rivetos.session.attach`.
import { randomBytes } from 'node:crypto';
import { secretMatches } from '../core/secret.ts';
import type { PeerIdentity } from '../mesh/peer.ts';
import { checkAttachClaim, type Session } from '../mesh/session.ts';

export { checkAttachClaim };

export const ATTACH_METHOD = 'rivetos/session.attach';
export const ATTACH_TOOL = 'rivetos.session.attach';

/** What attach returns (and `sessionOf` finds again): the wire form is snake_case like the claim. */
export type AttachedSession = Session;
export type AttachResult = { agent_id: string; node_id: string; cn: string; session_token: string };

/** Listed beside the server's own tools (JSON Schema, as tools/list carries it). */
export const ATTACH_TOOL_DEFINITION = {
  name: ATTACH_TOOL,
  title: 'Attach this session to an agent',
  description:
    'Checks that the client certificate is exactly the claimed agent (agent_id "<agent>@<node>") and returns the session token of this MCP session.',
  inputSchema: {
    type: 'object',
    properties: { agent_id: { type: 'string', description: 'the agent identity, e.g. opus@ct111' } },
    required: ['agent_id'],
  },
} as const;

/** The attachment of one MCP session: attaching again returns the same token. */
export class SessionAttachment {
  #session: AttachedSession | undefined;

  attach(peer: PeerIdentity, claimed: unknown): AttachResult {
    const ok = checkAttachClaim(peer, claimed);
    this.#session ??= { ...ok, sessionToken: randomBytes(32).toString('base64url') };
    const s = this.#session;
    return { agent_id: s.cn, node_id: s.nodeId, cn: s.cn, session_token: s.sessionToken };
  }

  get current(): AttachedSession | undefined {
    return this.#session;
  }

  /** The session, if `token` is its token (constant-time compare). */
  matches(token: unknown): AttachedSession | undefined {
    return this.#session && typeof token === 'string' && secretMatches(token, this.#session.sessionToken)
      ? this.#session
      : undefined;
  }
}
