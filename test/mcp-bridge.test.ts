// `rivet-ca mcp-bridge` as Claude Desktop and Cursor run it: the SDK's StdioClientTransport spawns
// the real CLI with phil@external's PKCS#12 and calls a tool on a mesh MCP server over mTLS; a
// revoked p12 makes the bridge fail saying so.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import path from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport, getDefaultEnvironment } from '@modelcontextprotocol/sdk/client/stdio.js';
import { CLI } from './helpers/ca.ts';
import { makeKit, type Kit } from './helpers/pki-kit.ts';
import { startMcpServer, type McpKitServer } from './helpers/mcp-kit.ts';

let kit: Kit;
let server: McpKitServer;
let laptop: string;
let p12: string;
let passFile: string;

type Bridged = { client: Client; stderr: () => string; exit: Promise<number | null> };

/** Spawns the bridge the way an MCP host does and connects the SDK client through it. */
async function bridge(args: string[]): Promise<Bridged & { error?: Error }> {
  const transport = new StdioClientTransport({
    command: CLI,
    args: ['mcp-bridge', '--url', server.url, '--connect-to', `127.0.0.1:${server.port}`, ...args],
    env: { ...getDefaultEnvironment(), RIVET_ENV_FILE: '/dev/null' },
    stderr: 'pipe',
  });
  let err = '';
  transport.stderr!.on('data', (c: Buffer) => {
    err += c.toString();
  });
  const exit = new Promise<number | null>((resolve) => {
    transport.onclose = () => resolve(null);
  });
  const client = new Client({ name: 'claude-desktop-stand-in', version: '1.0.0' });
  try {
    await client.connect(transport);
  } catch (error) {
    await exit;
    return { client, stderr: () => err, exit, error: error as Error };
  }
  return { client, stderr: () => err, exit };
}

test.before(async () => {
  kit = await makeKit(['ct110']);
  const dir = await kit.nodeDir('ct110');
  laptop = path.join(kit.home, 'laptop');
  fs.mkdirSync(laptop, { mode: 0o700 });
  p12 = path.join(laptop, 'phil.p12');
  passFile = path.join(laptop, 'p12.pass');
  fs.writeFileSync(passFile, 'correct horse battery\n', { mode: 0o600 });
  const r = await kit.cli(['issue-user', 'phil@external', '--p12', p12, '--passphrase-file', passFile]);
  assert.is(r.exitCode, 0, r.stderr);
  fs.copyFileSync(path.join(kit.caDir, 'intermediate', 'chain.pem'), path.join(laptop, 'rivet-ca.crt'));
  fs.copyFileSync(path.join(kit.caDir, 'crl.pem'), path.join(laptop, 'crl.pem'));
  server = await startMcpServer(dir, { 'phil@external': ['whoami'] });
});
test.after(async () => {
  await server.close();
});

test('StdioClientTransport spawns the bridge with phil.p12 and calls a tool on the mesh MCP server', async () => {
  const b = await bridge(['--p12', p12, '--passphrase-file', passFile, '--node-dir', laptop]);
  assert.is(b.error, undefined, `${b.error?.message}\n${b.stderr()}`);
  const { tools } = await b.client.listTools();
  assert.ok(tools.some((t) => t.name === 'whoami'));
  assert.not.ok(
    tools.some((t) => t.name === 'secret.read'),
    'the remote allow-list applies through the bridge',
  );
  const r = (await b.client.callTool({ name: 'whoami' })) as { content: Array<{ text: string }> };
  assert.equal(JSON.parse(r.content[0]!.text).identity, {
    kind: 'user',
    cn: 'phil@external',
    nodeId: 'external',
    user: 'phil',
  });
  // A refusal arrives as the server sent it: 403, forbidden.
  try {
    await b.client.callTool({ name: 'secret.read' });
    assert.unreachable('refused');
  } catch (err) {
    assert.is((err as { code: number }).code, 403);
    assert.is((err as { data: { code: string } }).data.code, 'forbidden');
  }
  await b.client.close();
  await b.exit;
});

test('the same identity as cert + key works too', async () => {
  const issued = path.join(kit.caDir, 'issued');
  const b = await bridge([
    '--cert',
    path.join(issued, 'phil@external.crt'),
    '--key',
    path.join(issued, 'phil@external.key'),
    '--node-dir',
    laptop,
  ]);
  assert.is(b.error, undefined, `${b.error?.message}\n${b.stderr()}`);
  assert.ok((await b.client.listTools()).tools.some((t) => t.name === 'whoami'));
  await b.client.close();
});

test('a wrong p12 passphrase is one line naming the file, exit 2, before any connection', async () => {
  const wrong = path.join(laptop, 'wrong.pass');
  fs.writeFileSync(wrong, 'not the passphrase\n');
  const b = await bridge(['--p12', p12, '--passphrase-file', wrong, '--node-dir', laptop]);
  assert.ok(b.error, 'connect failed');
  assert.match(b.stderr(), /PKCS#12 file ".*phil\.p12" does not open with this passphrase/);
  assert.not.match(b.stderr(), /not the passphrase/, 'the passphrase is never shown');
});

test("with phil revoked, a bridge whose CRL still predates it fails saying so: the server's refusal carries cert_revoked", async () => {
  const r = await kit.cli(['revoke', 'phil@external']);
  assert.is(r.exitCode, 0, r.stderr);
  const serverDir = path.join(kit.home, 'nodes', 'ct110');
  const reloads = server.reloads();
  fs.copyFileSync(path.join(kit.caDir, 'crl.pem'), path.join(serverDir, 'crl.pem.tmp'));
  fs.renameSync(path.join(serverDir, 'crl.pem.tmp'), path.join(serverDir, 'crl.pem'));
  for (let i = 0; i < 200 && server.reloads() === reloads; i++) await new Promise((res) => setTimeout(res, 10));
  const b = await bridge(['--p12', p12, '--passphrase-file', passFile, '--node-dir', laptop]);
  assert.ok(b.error, 'connect failed');
  assert.match(b.error!.message, /refused: your client certificate is revoked/);
  assert.is((b.error as { data?: { code?: string } }).data?.code, 'cert_revoked', 'the client can branch on the code');
  assert.is(await b.exit, null);
});

test('with phil revoked and the CRL on the laptop, the bridge fails saying the certificate was revoked', async () => {
  fs.copyFileSync(path.join(kit.caDir, 'crl.pem'), path.join(laptop, 'crl.pem'));
  const b = await bridge(['--p12', p12, '--passphrase-file', passFile, '--node-dir', laptop]);
  assert.ok(b.error, 'connect failed');
  assert.match(b.stderr(), /rivet-ca: certificate "phil@external" \(serial [0-9A-F]+\) was revoked/);
});

test.run();
