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
