// Who is on the other end of a mesh connection (DESIGN §7). Read from the certificate the TLS
// stack *verified* (raw DER, every CN), never from a subject string a proxy could have forwarded.
import type { TLSSocket } from 'node:tls';
import { RivetError, show, type ErrorCode } from '../core/errors.ts';
import { parseCertDer } from '../x509/cert.ts';
import { leafIdentity } from '../x509/leaf-check.ts';
import { commonName, type MeshDomain, type NodeId, type AgentId, type UserName } from '../core/identity.ts';
import { defaultDomain } from './tls.ts';
import { trackedDomain, wasCut } from './live.ts';

export type PeerIdentity =
  | { kind: 'node'; cn: string; nodeId: NodeId }
  | { kind: 'agent'; cn: string; nodeId: NodeId; agentId: AgentId }
  | { kind: 'user'; cn: string; nodeId: 'external'; user: UserName };

/** A refused caller; its code's HTTP status is 401 (who are you) or 403 (not allowed). */
export class MeshAuthError extends RivetError {
  constructor(message: string, code: ErrorCode) {
    super(message, code);
    this.name = 'MeshAuthError';
  }
}

export type PeerOptions = {
  /** Default: the domain of the material the connection was admitted with (watchMeshTls), else
   * RIVET_MESH_DOMAIN as read once per process. */
  domain?: MeshDomain | string;
};

// One identity per connection: the certificate cannot change on a TLS 1.3 socket (no
// renegotiation), so after the first request the answer is a lookup.
const identities = new WeakMap<TLSSocket, { domain: MeshDomain; identity: PeerIdentity }>();

function isTlsSocket(socket: unknown): socket is TLSSocket {
  return typeof (socket as TLSSocket | undefined)?.getPeerX509Certificate === 'function';
}

/**
 * The verified peer's identity. Refuses a connection whose certificate the handshake did not
 * verify (possible only on a `legacyClients` server), one without a certificate, a CA cert,
 * several CNs, a CN outside the grammar, or a SPIFFE URI SAN that disagrees with the CN.
 */
export function peerIdentity(socket: TLSSocket, opts: PeerOptions = {}): PeerIdentity {
  if (!isTlsSocket(socket))
    throw new MeshAuthError(
      'peerIdentity needs the TLS socket of the connection (req.socket) — is this server plain HTTP?',
      'not_tls',
    );
  if (wasCut(socket))
    throw new MeshAuthError(
      'this connection was closed: the peer certificate no longer verifies (revoked, expired or no longer trusted)',
      'connection_cut',
    );
  const domain = opts.domain !== undefined ? defaultDomain(opts.domain) : (trackedDomain(socket) ?? defaultDomain());
  const cached = identities.get(socket);
  if (cached && cached.domain === domain) return cached.identity;
  const identity = Object.freeze(verifiedIdentity(socket, domain));
  identities.set(socket, { domain, identity });
  return identity;
}

function verifiedIdentity(socket: TLSSocket, domain: MeshDomain): PeerIdentity {
  const x509 = socket.getPeerX509Certificate();
  if (!x509)
    throw new MeshAuthError(
      'the client presented no certificate — connect with a mesh certificate (node.crt or agents/<id>.crt)',
      'no_cert',
    );
  if (socket.authorized !== true) {
    const why = socket.authorizationError ? String(socket.authorizationError) : 'not verified';
    throw new MeshAuthError(
      `client certificate ${show(x509.subject.replace(/\n/g, ', '))} was refused: ${why} — it must chain to rivet-ca and not be revoked or expired`,
      'untrusted_cert',
    );
  }
  let info;
  try {
    info = parseCertDer(x509.raw);
  } catch (err) {
    throw new MeshAuthError(`client certificate cannot be read: ${(err as Error).message}`, 'bad_cert');
  }
  let id;
  try {
    id = leafIdentity(info, domain);
  } catch (err) {
    throw new MeshAuthError(`client certificate refused: ${(err as Error).message}`, 'cert_identity');
  }
  const cn = commonName(id, domain);
  switch (id.kind) {
    case 'node':
      return { kind: 'node', cn, nodeId: id.nodeId };
    case 'agent':
      return { kind: 'agent', cn, nodeId: id.nodeId, agentId: id.agentId };
    case 'user':
      return { kind: 'user', cn, nodeId: 'external', user: id.user };
  }
}
