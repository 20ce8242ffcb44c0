// rivet-ca's public library: what the mesh's servers and our own scripts import (DESIGN §7).
// Keep this list deliberate: everything exported here is a promise to the mesh.
export { UsageError, RivetError, OpensslError } from './errors.ts';
export {
  parseIdentity, parseIdentityOf, commonName, spiffeId, fileStem, identityFromCommonName, nodeId, agentId, userName, meshDomain,
  type Identity, type NodeId, type AgentId, type UserName, type MeshDomain,
} from './identity.ts';
export { parseSan, type San } from './san.ts';
export { loadConfig, bootstrapSecret, type Config } from './config.ts';
export { openCa, type Ca } from './ca.ts';
export { parseCertPem, parseCertsPem, type CertInfo } from './cert.ts';
export { leafIdentity } from './check.ts';
export { parseCrlBundle, splitCrlBundle, crlSignedBy, isRevoked, type CrlInfo } from './crl.ts';
// mTLS for the mesh's servers and clients (DESIGN §7; docs/LIBRARY.md shows each in use).
export { loadMeshTls, meshServerOptions, meshClientOptions, meshDispatcher, meshTlsFiles, type MeshTls, type LoadMeshTlsOptions, type MeshServerOptions, type MeshClientOptions } from './tls.ts';
export { watchMeshTls, type WatchMeshTlsOptions, type StopWatching } from './watch.ts';
export { peerIdentity, MeshAuthError, type PeerIdentity } from './peer.ts';
export { attachSession, sessionOf, type Session } from './session.ts';
export { authenticate, type Authenticated, type AuthenticateOptions } from './authn.ts';
export { authorize, loadAllowList, allowListFrom, LEGACY_BEARER_KEY, type AllowList, type AllowListData } from './authz.ts';
export { crlReceiver, type CrlReceiverOptions } from './crl-receiver.ts';
export { installCrlBundle, verifyCrlBundle, CrlRefused, type InstallResult } from './crl-install.ts';
export { pullCrl, type PullCrlOptions } from './crl-pull.ts';
export { pushCrl, pushTargets, pushUrl, pushOptionsFrom, type PushResult, type PushOptions } from './crl-push.ts';
export { parseConnectTo } from './mesh-request.ts';
