// An MCP server on the mesh: the official SDK's McpServer behind mTLS, its callers known from their
// certificates, tools allow-listed per identity, each session bound to the certificate that opened
// it, the CRL push endpoint beside it and revoked identities' sessions ended when the CRL lands.
// Run: RIVET_NODE_DIR=/etc/rivetos PORT=8443 [HOST=127.0.0.1] [ALLOW_LIST=FILE] npx tsx examples/mcp-server.ts
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { loadMeshTls, meshServerOptions, watchMeshTls, crlReceiver, loadAllowList } from '../lib/index.ts';
import { mountMcp, meshIdentityOf } from '../lib/mcp.ts';

const dir = process.env.RIVET_NODE_DIR ?? '/etc/rivetos';
// { "opus@ct111": ["whoami", "time.*"], "phil@external": ["whoami"] } — default deny.
const allowList = loadAllowList(process.env.ALLOW_LIST ?? `${dir}/allow-list.json`, {
  onError: (e) => console.error(e.message),
});
const receiveCrl = crlReceiver({ dir });

const server = https.createServer(meshServerOptions(loadMeshTls({ dir })));
const mcp = mountMcp(server, {
  allowList,
  fallback: (req, res) => (req.url === '/api/mesh/crl' ? receiveCrl(req, res) : void res.writeHead(404).end()),
  createServer: () => {
    const s = new McpServer({ name: 'rivet-example', version: '1.0.0' });
    s.registerTool('whoami', { description: 'who the mesh says you are' }, async (extra) => ({
      content: [{ type: 'text', text: JSON.stringify(meshIdentityOf(extra)) }],
    }));
    s.registerTool('time.now', { description: 'the server clock' }, async () => ({
      content: [{ type: 'text', text: new Date().toISOString() }],
    }));
    return s;
  },
});
watchMeshTls(server, { dir, onReload: (tls) => void mcp.dropRevoked(tls), onError: (e) => console.error(e.message) });
server.listen(Number(process.env.PORT ?? 8443), process.env.HOST, () =>
  console.log(`mcp server up on port ${(server.address() as AddressInfo).port}, endpoint /mcp`),
);
