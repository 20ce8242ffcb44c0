// rivet-ca's public library: what the mesh's servers and our own scripts import (DESIGN §7).
// Keep this list deliberate: everything exported here is a promise to the mesh.
export { UsageError, RivetError, OpensslError } from './core/errors.ts';
export {
  parseIdentity,
  parseIdentityOf,
  commonName,
  spiffeId,
  fileStem,
  identityFromCommonName,
  nodeId,
  agentId,
  userName,
  meshDomain,
  type Identity,
  type NodeId,
  type AgentId,
  type UserName,
  type MeshDomain,
} from './core/identity.ts';
export { parseSan, type San } from './core/san.ts';
export { loadConfig, bootstrapSecret, type Config } from './sys/config.ts';
export { openCa, type Ca } from './ca/handle.ts';
export { parseCertPem, parseCertsPem, type CertInfo } from './x509/cert.ts';
export { leafIdentity } from './x509/leaf-check.ts';
export { parseCrlBundle, splitCrlBundle, crlSignedBy, isRevoked, type CrlInfo } from './x509/crl.ts';
// mTLS for the mesh's servers and clients (DESIGN §7; docs/LIBRARY.md shows each in use).
export {
  loadMeshTls,
  meshServerOptions,
  meshClientOptions,
  meshTlsFiles,
  type MeshTls,
  type TlsMaterial,
  type LoadMeshTlsOptions,
  type MeshServerOptions,
  type MeshClientOptions,
} from './mesh/tls.ts';
export { meshDispatcher, type MeshDispatcherOptions } from './mesh/dispatcher.ts';
export { watchMeshTls, type WatchMeshTlsOptions, type StopWatching, type ConnectionOptions } from './mesh/watch.ts';
export { trackMeshSocket } from './mesh/track.ts';
export { type MeshLogger, type MeshLogEvent } from './mesh/live.ts';
export { type RefusalMode } from './mesh/gate.ts';
export { peerIdentity, MeshAuthError, type PeerIdentity } from './mesh/peer.ts';
export { attachSession, sessionOf, type Session } from './mesh/session.ts';
export { authenticate, type Authenticated, type AuthenticateOptions } from './mesh/authn.ts';
export {
  authorize,
  loadAllowList,
  allowListFrom,
  LEGACY_BEARER_KEY,
  type AllowList,
  type AllowListData,
} from './mesh/authz.ts';
export { crlReceiver, type CrlReceiverOptions } from './distribute/receiver.ts';
export { installCrlBundle, verifyCrlBundle, CrlRefused, type InstallResult } from './distribute/install.ts';
export { pullCrl, type PullCrlOptions } from './distribute/pull.ts';
export {
  pushCrl,
  pushTargets,
  pushUrl,
  pushOptionsFrom,
  type PushResult,
  type PushOptions,
} from './distribute/push.ts';
export { parseConnectTo } from './distribute/mesh-request.ts';
