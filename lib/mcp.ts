// rivet-ca/mcp: the official MCP SDK (@modelcontextprotocol/sdk, a peer dependency) on the mesh's
// mTLS (DESIGN §7). Server: mountMcp. Client: meshMcpTransport. Claude Desktop and Cursor:
// startMcpBridge, which `rivet-ca mcp-bridge` runs. docs/MCP.md shows each in use.
export {
  mountMcp,
  meshMcp,
  type MountMcpOptions,
  type McpMesh,
  type McpSessionInfo,
  type McpServerLike,
} from './mcp/server.ts';
export { meshIdentityOf, authInfoOf, type MeshAuthExtra } from './mcp/identity.ts';
export { ATTACH_METHOD, ATTACH_TOOL, checkAttachClaim, type AttachedSession, type AttachResult } from './mcp/attach.ts';
export { rpcErrorOf, type MeshRpcError } from './mcp/errors.ts';
export {
  meshMcpTransport,
  meshFetch,
  checkOwnCertificate,
  MeshMcpTransport,
  type MeshMcpClientOptions,
} from './mcp/client.ts';
export { startMcpBridge, type McpBridgeOptions, type McpBridge } from './mcp/bridge.ts';
export type { CrlSource } from './mcp/revocation.ts';
