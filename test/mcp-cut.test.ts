// Issue 13 with the official MCP SDK on both ends: an McpServer behind StreamableHTTPServerTransport
// on a mesh HTTPS server (meshServerOptions + watchMeshTls), SDK clients on undici fetch with the
// agent's certificate (meshDispatcher). When grok's revocation lands in the node dir, its session
// — the standalone SSE stream and the pooled POST connection — is cut within 1 s and tools/call
// stops working for it; opus's session carries on, on the same connections.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import path from 'node:path';
import https from 'node:https';
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { fetch as undiciFetch } from 'undici';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { makeKit, type Kit } from './helpers/pki-kit.ts';
import { installAtomically } from './helpers/live.ts';
import {
  loadMeshTls,
  meshServerOptions,
  meshDispatcher,
  watchMeshTls,
  peerIdentity,
  MeshAuthError,
  type MeshLogEvent,
} from '../lib/index.ts';

let kit: Kit;
let dir: string;
let server: https.Server;
let stop: () => void;
let url: URL;
const events: MeshLogEvent[] = [];
// Server side, per caller CN: the sockets its requests came on and when each closed; SSE streams.
const sockets = new Map<string, Map<TLSSocket, number | undefined>>();
const sse = new Set<string>();
const sessions = new Map<string, { transport: StreamableHTTPServerTransport; cn: string }>();

async function mcpHandler(req: IncomingMessage, res: ServerResponse): Promise<void> {
  let cn: string;
  try {
    cn = peerIdentity(req.socket as TLSSocket).cn;
  } catch (err) {
    res
      .writeHead((err as MeshAuthError).status ?? 500)
      .end(JSON.stringify({ error: { code: (err as MeshAuthError).code, message: (err as Error).message } }));
    return;
  }
  const socket = req.socket as TLSSocket;
  const mine = sockets.get(cn) ?? new Map();
  sockets.set(cn, mine);
  if (!mine.has(socket)) {
    mine.set(socket, undefined);
    socket.once('close', () => mine.set(socket, performance.now()));
  }
  if (req.method === 'GET') sse.add(cn);
  const sid = req.headers['mcp-session-id'];
  let session = typeof sid === 'string' ? sessions.get(sid) : undefined;
  if (session && session.cn !== cn) {
    res
      .writeHead(403)
      .end(
        JSON.stringify({ error: { code: 'not_your_session', message: 'this session belongs to another identity' } }),
      );
    return;
  }
  if (!session) {
    const transport: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      onsessioninitialized: (id) => {
        sessions.set(id, { transport, cn });
      },
    });
    const mcp = new McpServer({ name: 'ct111', version: '1.0.0' });
    mcp.registerTool('whoami', { description: 'The verified identity of the caller' }, async () => ({
      content: [{ type: 'text', text: cn }],
    }));
    await mcp.connect(transport);
    session = { transport, cn };
  }
  await session.transport.handleRequest(req, res);
}

async function connectAs(agent: string) {
  const dispatcher = meshDispatcher(loadMeshTls({ dir, agent }), {
    servername: 'ct111.mesh',
    logger: (e) => events.push(e),
  });
  const transport = new StreamableHTTPClientTransport(url, {
    fetch: ((u: string | URL, init?: RequestInit) => undiciFetch(u, { ...(init as object), dispatcher })) as never,
    reconnectionOptions: {
      maxRetries: 0,
      initialReconnectionDelay: 50,
      maxReconnectionDelay: 50,
      reconnectionDelayGrowFactor: 1,
    },
  });
  const client = new Client({ name: agent, version: '1.0.0' });
  client.onerror = () => {};
  await client.connect(transport);
  const call = async () => {
    const r = await Promise.race([
      client.callTool({ name: 'whoami', arguments: {} }),
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error('tools/call timed out')), 5000)),
    ]);
    return (r.content as Array<{ text: string }>)[0]!.text;
  };
  return {
    client,
    call,
    close: async () => {
      await client.close().catch(() => {});
      await dispatcher.close();
    },
  };
}

test.before(async () => {
  kit = await makeKit(['ct111', 'opus@ct111', 'grok@ct111']);
  dir = await kit.nodeDir('ct111', ['opus', 'grok']);
  server = https.createServer(meshServerOptions(loadMeshTls({ dir })), (req, res) => void mcpHandler(req, res));
  server.keepAliveTimeout = 60_000;
  stop = watchMeshTls(server, { dir, logger: (e) => events.push(e) });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = new URL(`https://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`);
});
test.after(() => {
  stop?.();
  server?.closeAllConnections();
  server?.close();
  if (kit) fs.rmSync(kit.home, { recursive: true, force: true });
});

test("a revoked agent's MCP session (SSE stream and pooled POSTs) is cut ≤ 1 s after the CRL lands; another session carries on", async () => {
  const grok = await connectAs('grok');
  const opus = await connectAs('opus');
  try {
    assert.is(await grok.call(), 'grok@ct111');
    assert.is(await opus.call(), 'opus@ct111');
    for (let i = 0; i < 100 && !(sse.has('grok@ct111') && sse.has('opus@ct111')); i++)
      await new Promise((r) => setTimeout(r, 20));
    assert.ok(sse.has('grok@ct111') && sse.has('opus@ct111'), 'both clients opened the standalone SSE stream');
    const r = await kit.cli(['revoke', 'grok@ct111', '--no-push']);
    assert.is(r.exitCode, 0, r.stderr);
    assert.is(await grok.call(), 'grok@ct111', 'before the CRL reaches the node, the session still works');

    const landed = installAtomically(path.join(kit.caDir, 'crl.pem'), path.join(dir, 'crl.pem'));
    const grokSockets = sockets.get('grok@ct111')!;
    for (let i = 0; i < 150 && [...grokSockets.values()].some((t) => t === undefined); i++)
      await new Promise((r) => setTimeout(r, 10));
    const closedMs = [...grokSockets.values()].map((t) => (t === undefined ? Infinity : Math.round(t - landed)));
    console.log(`    grok's ${closedMs.length} MCP connections closed ${closedMs.join(', ')} ms after the CRL landed`);
    assert.ok(closedMs.length >= 2, 'the SSE stream and the POSTs used connections of their own');
    for (const ms of closedMs) assert.ok(ms <= 1000, `${ms} ms`);

    const refused = await grok.call().then(
      (text) => `answered ${text}`,
      (err: Error) => err.message,
    );
    assert.not.match(refused, /^answered/, 'tools/call still works for the revoked agent');
    const opusBefore = [...sockets.get('opus@ct111')!.keys()];
    assert.is(await opus.call(), 'opus@ct111');
    assert.ok(
      [...sockets.get('opus@ct111')!.values()].every((t) => t === undefined),
      'an opus connection was closed',
    );
    assert.equal([...sockets.get('opus@ct111')!.keys()], opusBefore, 'opus is still on the connections it had');
    assert.ok(
      events.some((e) => e.event === 'cut' && e.cn === 'grok@ct111' && e.code === 'CERT_REVOKED'),
      JSON.stringify(events),
    );
  } finally {
    await grok.close();
    await opus.close();
  }
});

test.run();
