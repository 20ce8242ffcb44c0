// An MCP client on the mesh: the official SDK's Client over mTLS with an agent's certificate;
// attaches the session as that agent, lists the tools its allow-list grants and calls one.
// Run: RIVET_NODE_DIR=/etc/rivetos AGENT=opus NODE_ID=ct111 URL=https://ct110-mcp.mesh:8443/mcp [CONNECT_TO=10.0.0.10:8443] npx tsx examples/mcp-client.ts
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { ResultSchema } from '@modelcontextprotocol/sdk/types.js';
import { meshMcpTransport, ATTACH_METHOD } from '../lib/mcp.ts';

const agent = process.env.AGENT ?? 'opus';
const url = process.env.URL ?? 'https://ct110-mcp.mesh:8443/mcp';
const client = new Client({ name: 'rivet-example-client', version: '1.0.0' });
// CONNECT_TO: where to connect when the name is not in DNS; the server must still prove the URL's name.
await client.connect(
  meshMcpTransport(url, {
    identity: { dir: process.env.RIVET_NODE_DIR ?? '/etc/rivetos', agent },
    connectTo: process.env.CONNECT_TO,
  }),
);
const attached = await client.request(
  { method: ATTACH_METHOD, params: { agent_id: `${agent}@${process.env.NODE_ID ?? 'ct111'}` } },
  ResultSchema,
);
console.log('attached as', attached.agent_id, 'session token', String(attached.session_token).slice(0, 8) + '…');
console.log('tools', (await client.listTools()).tools.map((t) => t.name).join(', '));
const who = (await client.callTool({ name: 'whoami' })) as { content: Array<{ text: string }> };
console.log('whoami', who.content[0]!.text);
await client.close();
