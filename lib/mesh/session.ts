// `rivetos/session.attach` (seed: "validates the presented cert's CN matches the claimed
// agent_id"): an agent may attach only as itself. The session token is minted after the cert check
// and names this connection only; it cannot be lifted off the wire because the wire is mTLS.
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { show } from '../core/errors.ts';
import { MeshAuthError, peerIdentity, type PeerIdentity, type PeerOptions } from './peer.ts';
import type { AgentId, NodeId } from '../core/identity.ts';

export type Session = { agentId: AgentId; nodeId: NodeId; cn: string; sessionToken: string };

// One session per connection: attaching twice on the same socket returns the same token, and the
// entry disappears with the socket.
const sessions = new WeakMap<TLSSocket, Session>();

/**
 * The check itself, on an identity already verified: `peer` must be the agent certificate of
 * exactly `claimed`. Shared with rivet-ca/mcp, whose attach names an MCP session instead.
 */
export function checkAttachClaim(
  peer: PeerIdentity,
  claimed: unknown,
): { agentId: AgentId; nodeId: NodeId; cn: string } {
  if (typeof claimed !== 'string' || claimed.length === 0) {
    throw new MeshAuthError(
      `session.attach needs the claimed agent identity — send "<agent-id>@<node-id>" (this certificate is ${show(peer.cn)})`,
      'bad_claim',
    );
  }
  if (peer.kind !== 'agent') {
    throw new MeshAuthError(
      `a ${peer.kind} certificate (${show(peer.cn)}) cannot attach as agent ${show(claimed)} — connect with the agent's own certificate (agents/<id>.crt)`,
      'not_agent',
    );
  }
  if (claimed !== peer.cn) {
    const hint = claimed === peer.agentId ? ` — claim the full identity ${show(peer.cn)}` : '';
    throw new MeshAuthError(
      `certificate ${show(peer.cn)} cannot attach as ${show(claimed)}: the claim must equal the certificate CN exactly${hint}`,
      'wrong_agent',
    );
  }
  return { agentId: peer.agentId, nodeId: peer.nodeId, cn: peer.cn };
}

/**
 * Checks that the verified client certificate is the agent cert of exactly `claimed`
 * (`opus@ct111`) and returns the connection's session. Node and user certs cannot attach.
 */
export function attachSession(socket: TLSSocket, claimed: string, opts: PeerOptions = {}): Session {
  const ok = checkAttachClaim(peerIdentity(socket, opts), claimed);
  const existing = sessions.get(socket);
  if (existing) return existing;
  const session: Session = { ...ok, sessionToken: randomBytes(32).toString('base64url') };
  sessions.set(socket, session);
  socket.once('close', () => sessions.delete(socket));
  return session;
}

/** The session attached on this connection, if `token` is its token (constant-time compare). */
export function sessionOf(socket: TLSSocket, token: string): Session | undefined {
  const s = sessions.get(socket);
  if (!s || typeof token !== 'string') return undefined;
  const a = Buffer.from(s.sessionToken);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b) ? s : undefined;
}
