// The SDK's `authInfo`, filled from the certificate the TLS stack verified, so a tool handler knows
// its caller without ever seeing the socket: `meshIdentityOf(extra)` in any handler.
import type { X509Certificate } from 'node:crypto';
import type { AuthInfo } from '@modelcontextprotocol/sdk/server/auth/types.js';
import { RivetError } from '../core/errors.ts';
import type { PeerIdentity } from '../mesh/peer.ts';

/** What `authInfo.extra` holds on a mesh MCP server. */
export type MeshAuthExtra = {
  kind: PeerIdentity['kind'];
  cn: string;
  nodeId: string;
  agentId?: string;
  user?: string;
  /** The presented certificate: its serial (upper-case hex) and SHA-256 fingerprint. */
  serial: string;
  fingerprint256: string;
};

export function authInfoOf(peer: PeerIdentity, cert: X509Certificate, scopes: readonly string[]): AuthInfo {
  const extra: MeshAuthExtra = {
    kind: peer.kind,
    cn: peer.cn,
    nodeId: peer.nodeId,
    ...(peer.kind === 'agent' ? { agentId: peer.agentId } : {}),
    ...(peer.kind === 'user' ? { user: peer.user } : {}),
    serial: cert.serialNumber.toUpperCase(),
    fingerprint256: cert.fingerprint256,
  };
  // mTLS has no bearer token: `token` names the credential (the certificate), which is no secret.
  return {
    token: `x509-sha256:${cert.fingerprint256}`,
    clientId: peer.cn,
    scopes: [...scopes],
    expiresAt: Math.floor(new Date(cert.validTo).getTime() / 1000),
    extra,
  };
}

/** The verified caller of a request on a mesh MCP server (from `extra.authInfo`). */
export function meshIdentityOf(extra: { authInfo?: AuthInfo }): PeerIdentity {
  const x = extra.authInfo?.extra as Partial<MeshAuthExtra> | undefined;
  if (!x?.cn || !x.kind || !x.nodeId)
    throw new RivetError(
      'this request carries no mesh identity — is the MCP server mounted with mountMcp()?',
      'no_cert',
    );
  switch (x.kind) {
    case 'agent':
      return { kind: 'agent', cn: x.cn, nodeId: x.nodeId, agentId: x.agentId! } as PeerIdentity;
    case 'user':
      return { kind: 'user', cn: x.cn, nodeId: 'external', user: x.user! } as PeerIdentity;
    default:
      return { kind: 'node', cn: x.cn, nodeId: x.nodeId } as PeerIdentity;
  }
}
