// rivet-ca/mcp with the official SDK on both ends (McpServer + Client over Streamable HTTP): the
// caller in authInfo, sessions bound to the identity that opened them, session.attach for an MCP
// session, allow-lists on tools/list and tools/call, and revoked identities' sessions ending.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import path from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { ResultSchema } from '@modelcontextprotocol/sdk/types.js';
import { makeKit, type Kit } from './helpers/pki-kit.ts';
import { startMcpServer, rawMcp, type McpKitServer } from './helpers/mcp-kit.ts';
import { loadMeshTls, type MeshTls } from '../lib/index.ts';
import { meshMcpTransport, ATTACH_METHOD, ATTACH_TOOL } from '../lib/mcp.ts';

let kit: Kit;
let server: McpKitServer;
let clientDir: string;
let opusTls: MeshTls;
let sonnetTls: MeshTls;
const open: Client[] = [];

const RULES = { 'opus@ct111': ['whoami', 'memory.*'], 'sonnet@ct111': ['whoami', 'secret.read'] };

async function connect(agent: string, sessionId?: string): Promise<Client> {
  const client = new Client({ name: `test-${agent}`, version: '1.0.0' });
  await client.connect(
    meshMcpTransport(server.url, {
      identity: { dir: clientDir, agent },
      connectTo: `127.0.0.1:${server.port}`,
      transport: { sessionId },
    }),
  );
  open.push(client);
  return client;
}

const sessionOf = (c: Client) => (c.transport as { sessionId?: string }).sessionId!;
const textOf = (r: any) => JSON.parse(r.content[0].text);
async function refusal(p: Promise<unknown>): Promise<{ code: number; data: any; message: string }> {
  try {
    await p;
  } catch (err) {
    return err as any;
  }
  throw new Error('expected a refusal');
}

test.before(async () => {
  kit = await makeKit(['ct110', 'ct111', 'opus@ct111', 'sonnet@ct111']);
  const dir = await kit.nodeDir('ct110');
  clientDir = await kit.nodeDir('ct111', ['opus', 'sonnet']);
  opusTls = loadMeshTls({ dir: clientDir, agent: 'opus' });
  sonnetTls = loadMeshTls({ dir: clientDir, agent: 'sonnet' });
  server = await startMcpServer(dir, RULES);
});
test.after(async () => {
  for (const c of open) await c.close().catch(() => {});
  await server.close();
});

test('initialize, tools/list and tools/call as opus@ct111: authInfo is the verified certificate', async () => {
  const opus = await connect('opus');
  const { tools } = await opus.listTools();
  assert.equal(
    tools.map((t) => t.name).sort(),
    ['memory.search', ATTACH_TOOL, 'whoami'].sort(),
    'only allowed tools and attach are listed',
  );
  const who = textOf(await opus.callTool({ name: 'whoami' }));
  assert.equal(who.identity, { kind: 'agent', cn: 'opus@ct111', nodeId: 'ct111', agentId: 'opus' });
  assert.is(who.authInfo.clientId, 'opus@ct111');
  assert.equal(who.authInfo.scopes, ['whoami', 'memory.*']);
  assert.match(who.authInfo.token, /^x509-sha256:[0-9A-F:]+$/);
  assert.is(
    who.authInfo.extra.serial,
    new (await import('node:crypto')).X509Certificate(opusTls.cert).serialNumber.toUpperCase(),
  );
  assert.is(who.sessionId, sessionOf(opus));
});

test("a tool outside opus's allow-list is neither listed nor callable: JSON-RPC error 403 forbidden, handler never runs", async () => {
  const opus = await connect('opus');
  const before = server.calls.length;
  const err = await refusal(opus.callTool({ name: 'secret.read' }));
  assert.is(err.code, 403, 'not -32603');
  assert.is(err.data.code, 'forbidden');
  assert.match(err.message, /"opus@ct111" may not "secret.read"/);
  assert.is(server.calls.length, before, 'the tool handler did not run');
  // The same tool is sonnet's to call: the list decides per identity.
  const sonnet = await connect('sonnet');
  assert.ok((await sonnet.listTools()).tools.some((t) => t.name === 'secret.read'));
  assert.is(textOf(await sonnet.callTool({ name: 'secret.read' })).secret, 'the launch codes');
});

test('a request id still in flight is refused: the tools/list filter pairs replies with requests by id', async () => {
  const opus = await connect('opus');
  const sid = sessionOf(opus);
  const batch = await rawMcp(
    server.port,
    opusTls,
    [
      { jsonrpc: '2.0', id: 7, method: 'ping' }, // answered first: its reply would take the list's place in the filter
      { jsonrpc: '2.0', id: 7, method: 'tools/list' },
    ],
    { 'mcp-session-id': sid },
  );
  assert.is(batch.status, 200);
  const replies = [batch.body].flat();
  assert.ok(
    replies.some((r) => r.error?.data?.code === 'bad_request'),
    JSON.stringify(replies),
  );
  assert.not.match(JSON.stringify(replies), /secret\.read/, 'no reply names a tool opus may not call');
});

test("opus's session driven with sonnet@ct111's certificate is refused (403) and touches nothing", async () => {
  const opus = await connect('opus');
  const sid = sessionOf(opus);
  const stateBefore = JSON.stringify(server.mesh.sessions().find((s) => s.id === sid));
  const callsBefore = server.calls.length;
  // The SDK client, reconnecting to opus's session id with sonnet's certificate.
  const hijack = await connect('sonnet', sid);
  const err = await refusal(hijack.callTool({ name: 'whoami' }));
  assert.is(err.data?.code ?? (err as any).code, 'not_your_session', String(err.message));
  // Raw requests: a call, the SSE stream and DELETE (which would end the session).
  const call = await rawMcp(
    server.port,
    sonnetTls,
    { jsonrpc: '2.0', id: 9, method: 'tools/call', params: { name: 'whoami' } },
    { 'mcp-session-id': sid },
  );
  assert.is(call.status, 403);
  assert.is(call.body.error.data.code, 'not_your_session');
  assert.is((await rawMcp(server.port, sonnetTls, undefined, { 'mcp-session-id': sid }, 'GET')).status, 403);
  assert.is((await rawMcp(server.port, sonnetTls, undefined, { 'mcp-session-id': sid }, 'DELETE')).status, 403);
  assert.is(server.calls.length, callsBefore, 'no tool ran');
  assert.is(
    JSON.stringify(server.mesh.sessions().find((s) => s.id === sid)),
    stateBefore,
    'the session is as it was: no serial of sonnet, not ended',
  );
  assert.is(textOf(await opus.callTool({ name: 'whoami' })).identity.cn, 'opus@ct111', 'opus still drives its session');
});

test('rivetos/session.attach: the claim must be the certificate CN; the token belongs to the MCP session, not a connection', async () => {
  const opus = await connect('opus');
  const sid = sessionOf(opus);
  const wrong = await refusal(
    opus.request({ method: ATTACH_METHOD, params: { agent_id: 'sonnet@ct111' } }, ResultSchema),
  );
  assert.is(wrong.code, 403);
  assert.is(wrong.data.code, 'wrong_agent');
  assert.match(wrong.message, /"opus@ct111" cannot attach as "sonnet@ct111"/);
  const bare = await refusal(opus.request({ method: ATTACH_METHOD, params: { agent_id: 'opus' } }, ResultSchema));
  assert.match(bare.message, /claim the full identity "opus@ct111"/);
  assert.is(server.mesh.sessions().find((s) => s.id === sid)?.attached, undefined, 'refused claims attach nothing');
  const ok = (await opus.request(
    { method: ATTACH_METHOD, params: { agent_id: 'opus@ct111' } },
    ResultSchema,
  )) as Record<string, string>;
  assert.is(ok.agent_id, 'opus@ct111');
  assert.is(ok.node_id, 'ct111');
  assert.equal(server.mesh.sessionOf(sid, ok.session_token!)?.cn, 'opus@ct111');
  assert.is(server.mesh.sessionOf(sid, `${ok.session_token}x`), undefined);
  // New TLS connections (a new client on the same session): same session, same token.
  const again = await connect('opus', sid);
  const viaTool = await again.callTool({ name: ATTACH_TOOL, arguments: { agent_id: 'opus@ct111' } });
  assert.is((viaTool.structuredContent as Record<string, string>).session_token, ok.session_token);
  const toolWrong = await refusal(again.callTool({ name: ATTACH_TOOL, arguments: { agent_id: 'sonnet@ct111' } }));
  assert.is(toolWrong.data.code, 'wrong_agent', 'the tool makes the same check');
  // The token names opus's session only.
  const sonnet = await connect('sonnet');
  assert.is(server.mesh.sessionOf(sessionOf(sonnet), ok.session_token!), undefined);
});

test('a node or user certificate cannot attach as an agent', async () => {
  const init = {
    jsonrpc: '2.0',
    id: 1,
    method: 'initialize',
    params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
  };
  const node = loadMeshTls({ dir: clientDir });
  const r = await rawMcp(server.port, node, init);
  assert.is(r.status, 200);
  const attach = await rawMcp(
    server.port,
    node,
    { jsonrpc: '2.0', id: 2, method: ATTACH_METHOD, params: { agent_id: 'ct111.mesh' } },
    { 'mcp-session-id': r.sessionId! },
  );
  assert.is(attach.body.error.code, 403);
  assert.is(attach.body.error.data.code, 'not_agent');
});

test('requests without a live session are refused before any session state exists', async () => {
  const count = server.mesh.sessions().length;
  const unknown = await rawMcp(
    server.port,
    opusTls,
    { jsonrpc: '2.0', id: 1, method: 'tools/list' },
    { 'mcp-session-id': 'not-a-session' },
  );
  assert.is(unknown.status, 404);
  assert.is(unknown.body.error.data.code, 'unknown_session');
  assert.is((await rawMcp(server.port, opusTls, undefined, {}, 'GET')).status, 400);
  const notInit = await rawMcp(server.port, opusTls, { jsonrpc: '2.0', id: 1, method: 'tools/list' });
  assert.is(notInit.status, 400, 'a first request that is not initialize opens nothing');
  assert.is(server.mesh.sessions().length, count);
});

test('one identity holds a bounded number of sessions: opening one more ends its least recently used', async () => {
  const small = await startMcpServer(path.join(kit.home, 'nodes', 'ct110'), RULES, { maxSessionsPerIdentity: 2 });
  try {
    const init = (who: MeshTls) =>
      rawMcp(small.port, who, {
        jsonrpc: '2.0',
        id: 1,
        method: 'initialize',
        params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
      });
    const ids = [];
    for (let i = 0; i < 3; i++) ids.push((await init(opusTls)).sessionId!);
    await init(sonnetTls);
    const mine = small.mesh
      .sessions()
      .filter((s) => s.owner.cn === 'opus@ct111')
      .map((s) => s.id);
    assert.equal(mine.sort(), ids.slice(1).sort(), "the oldest of opus's three is gone");
    assert.is(
      small.mesh.sessions().filter((s) => s.owner.cn === 'sonnet@ct111').length,
      1,
      'other identities are not affected',
    );
  } finally {
    await small.close();
  }
});

test("revoking opus ends its MCP sessions when the CRL lands (≤ 1 s), sonnet's stay", async () => {
  const opus = await connect('opus');
  const sonnet = await connect('sonnet');
  const sid = sessionOf(opus);
  const r = await kit.cli(['revoke', 'opus@ct111']);
  assert.is(r.exitCode, 0, r.stderr);
  const serverDir = path.join(kit.home, 'nodes', 'ct110');
  const reloads = server.reloads();
  const t0 = performance.now();
  fs.copyFileSync(path.join(kit.caDir, 'crl.pem'), path.join(serverDir, 'crl.pem.tmp'));
  fs.renameSync(path.join(serverDir, 'crl.pem.tmp'), path.join(serverDir, 'crl.pem'));
  while (server.mesh.sessions().some((s) => s.owner.cn === 'opus@ct111') && performance.now() - t0 < 5000)
    await new Promise((res) => setTimeout(res, 5));
  const ms = performance.now() - t0;
  console.log(`  opus's sessions ended ${ms.toFixed(0)} ms after the CRL landed`);
  assert.ok(server.reloads() > reloads, 'the server reloaded');
  assert.ok(ms <= 1000, `ended within 1 s (took ${ms.toFixed(0)} ms)`);
  // Its open keep-alive connection (cut by the mesh's connection watch) finds no session either.
  const err = await refusal(opus.callTool({ name: 'whoami' }));
  assert.ok(
    ['unknown_session', 'cert_revoked', 'connection_cut'].includes(err.data?.code ?? (err as any).code),
    String(err.message),
  );
  assert.ok(server.mesh.sessions().every((s) => s.id !== sid));
  assert.is(textOf(await sonnet.callTool({ name: 'whoami' })).identity.cn, 'sonnet@ct111');
});

test.run();
