// examples/mcp-server.ts and examples/mcp-client.ts run as the README shows (tsx, environment
// variables), on a fresh CA: the client attaches as opus@ct111, sees its allowed tools, calls one.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import path from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { ROOT } from './helpers/ca.ts';
import { makeKit } from './helpers/pki-kit.ts';

const tsx = path.join(ROOT, 'node_modules', '.bin', 'tsx');
let server: ResultPromise | undefined;
test.after(() => {
  server?.kill('SIGTERM');
});

test('the example server and client talk MCP over mTLS', async () => {
  const kit = await makeKit(['ct110', 'ct111', 'opus@ct111']);
  const serverDir = await kit.nodeDir('ct110');
  const clientDir = await kit.nodeDir('ct111', ['opus']);
  fs.writeFileSync(path.join(serverDir, 'allow-list.json'), JSON.stringify({ 'opus@ct111': ['whoami'] }));
  server = execa(tsx, [path.join(ROOT, 'examples', 'mcp-server.ts')], {
    env: { RIVET_NODE_DIR: serverDir, PORT: '0', HOST: '127.0.0.1', RIVET_ENV_FILE: '/dev/null' },
    reject: false,
  });
  const port = await new Promise<number>((resolve, reject) => {
    server!.stdout!.on('data', (d: Buffer) => {
      const m = /port (\d+)/.exec(d.toString());
      if (m) resolve(Number(m[1]));
    });
    void server!.then((r) => reject(new Error(`server exited: ${r.stderr}`)));
  });
  const client = await execa(tsx, [path.join(ROOT, 'examples', 'mcp-client.ts')], {
    env: {
      RIVET_NODE_DIR: clientDir,
      AGENT: 'opus',
      NODE_ID: 'ct111',
      URL: `https://ct110-mcp.mesh:${port}/mcp`,
      CONNECT_TO: `127.0.0.1:${port}`,
      RIVET_ENV_FILE: '/dev/null',
    },
    reject: false,
    timeout: 60_000,
  });
  assert.is(client.exitCode, 0, client.stderr);
  assert.match(client.stdout, /attached as opus@ct111 session token/);
  assert.match(client.stdout, /tools whoami, rivetos\.session\.attach/, "time.now is not on opus's allow-list");
  assert.match(client.stdout, /whoami \{"kind":"agent","cn":"opus@ct111","nodeId":"ct111","agentId":"opus"\}/);
});

test.run();
