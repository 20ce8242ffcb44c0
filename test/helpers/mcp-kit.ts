// An MCP server on the mesh as an application would write it (official SDK McpServer + mountMcp
// on a meshServerOptions https server, hot reload ending revoked sessions), tools that record who
// called them, and a raw JSON-RPC POST for what the SDK client would never send (a hijack).
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import {
  loadMeshTls,
  meshServerOptions,
  meshClientOptions,
  watchMeshTls,
  allowListFrom,
  type AllowListData,
  type MeshTls,
} from '../../lib/index.ts';
import { mountMcp, meshIdentityOf, type McpMesh } from '../../lib/mcp.ts';

export type McpKitServer = {
  port: number;
  url: string;
  mesh: McpMesh;
  calls: string[];
  reloads: () => number;
  close: () => Promise<void>;
};

/** Tools: `whoami` (returns the caller from authInfo), `secret.read`, `memory.search`. */
export async function startMcpServer(
  dir: string,
  rules: AllowListData,
  opts: { maxSessionsPerIdentity?: number } = {},
): Promise<McpKitServer> {
  const server = https.createServer(meshServerOptions(loadMeshTls({ dir })));
  server.on('tlsClientError', () => {});
  const calls: string[] = [];
  const mesh = mountMcp(server, {
    allowList: allowListFrom(rules),
    maxSessionsPerIdentity: opts.maxSessionsPerIdentity,
    createServer: () => {
      const s = new McpServer({ name: 'mesh-test', version: '1.0.0' });
      const tool = (
        name: string,
        result: (extra: Parameters<typeof meshIdentityOf>[0] & { sessionId?: string }) => unknown,
      ) =>
        s.registerTool(name, { description: `test tool ${name}` }, async (extra) => {
          calls.push(`${name} by ${meshIdentityOf(extra).cn}`);
          return { content: [{ type: 'text', text: JSON.stringify(result(extra)) }] };
        });
      tool('whoami', (extra) => ({
        identity: meshIdentityOf(extra),
        authInfo: extra.authInfo,
        sessionId: extra.sessionId,
      }));
      tool('secret.read', () => ({ secret: 'the launch codes' }));
      tool('memory.search', () => ({ hits: [] }));
      return s;
    },
  });
  let reloads = 0;
  const stop = watchMeshTls(server, {
    dir,
    onReload: (t) => {
      reloads++;
      void mesh.dropRevoked(t);
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    url: `https://ct110-mcp.mesh:${port}/mcp`,
    mesh,
    calls,
    reloads: () => reloads,
    close: () =>
      new Promise<void>((resolve) => {
        stop();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export type RawReply = { status: number; body: any; sessionId?: string };

/** One JSON-RPC POST (or another method) on a fresh connection, with any headers. */
export function rawMcp(
  port: number,
  who: MeshTls,
  message: unknown,
  headers: Record<string, string> = {},
  method = 'POST',
): Promise<RawReply> {
  const body = message === undefined ? undefined : JSON.stringify(message);
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        ...meshClientOptions(who),
        host: '127.0.0.1',
        port,
        servername: 'ct110-mcp.mesh',
        path: '/mcp',
        method,
        agent: false,
        headers: {
          accept: 'application/json, text/event-stream',
          'content-type': 'application/json',
          'mcp-protocol-version': '2025-06-18',
          ...headers,
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString();
          let json: unknown = text;
          try {
            // An SSE reply: one event's JSON, or the list of them (a batch).
            const events = text.startsWith('event:')
              ? [...text.matchAll(/^data: (.+)$/gm)].map((m) => JSON.parse(m[1]!))
              : [JSON.parse(text)];
            json = events.length === 1 ? events[0] : events;
          } catch {
            /* keep text */
          }
          resolve({
            status: res.statusCode ?? 0,
            body: json,
            sessionId: res.headers['mcp-session-id'] as string | undefined,
          });
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}
