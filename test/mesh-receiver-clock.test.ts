// Issue 13, done-means 3: with the CA's clock 120 s ahead (libfaketime on the CA's CLI only), a node
// keeps accepting valid clients throughout a revoke + push — the CRL is back-dated 5 minutes, like
// leaves — and the revoked agent is refused once the push lands. A CRL dated beyond this node's clock
// (the CA 10 minutes ahead) is refused and the installed bundle kept, instead of being installed and
// failing every handshake with CRL_NOT_YET_VALID.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import path from 'node:path';
import { X509Certificate } from 'node:crypto';
import { execa } from 'execa';
import { CLI } from './helpers/ca.ts';
import { makeKit, startMeshServer, probe, type Kit, type MeshServer } from './helpers/pki-kit.ts';
import { loadMeshTls, parseCrlBundle, type MeshTls } from '../lib/index.ts';
import { CRL_BACKDATE_MS, crlThisUpdate } from '../lib/sign/signer.ts';
import { nodeStatus } from '../lib/node/status.ts';

let kit: Kit;
const dirs: Record<string, string> = {};
let server: MeshServer;
let opus: MeshTls;
let grok: MeshTls;

/** The real CLI with the CA host's clock moved by `offset` (e.g. '+120'); nothing else is faked. */
const caAhead = (offset: string, args: string[], env: Record<string, string> = {}) =>
  execa('faketime', ['-f', `${offset} x1`, CLI, ...args], {
    reject: false,
    env: { RIVET_CA_DIR: kit.caDir, RIVET_ENV_FILE: '/dev/null', ...env },
  });

test.before(async () => {
  kit = await makeKit(['ct110', 'ct111', 'opus@ct111', 'grok@ct111']);
  for (const n of ['ct110', 'ct111']) dirs[n] = await kit.nodeDir(n, n === 'ct111' ? ['opus', 'grok'] : []);
  server = await startMeshServer(dirs.ct111!);
  opus = loadMeshTls({ dir: dirs.ct111!, agent: 'opus' });
  grok = loadMeshTls({ dir: dirs.ct111!, agent: 'grok' });
});
test.after(async () => {
  await server?.close();
  if (kit) fs.rmSync(kit.home, { recursive: true, force: true });
});

test('a CRL starts 5 minutes back, never before its issuer', () => {
  const now = new Date('2030-06-01T12:00:00.500Z');
  assert.is(crlThisUpdate(new Date('2030-01-01T00:00:00Z'), now).toISOString(), '2030-06-01T11:55:00.000Z');
  assert.is(crlThisUpdate(new Date('2030-06-01T11:58:00Z'), now).toISOString(), '2030-06-01T11:58:00.000Z');
  assert.is(CRL_BACKDATE_MS, 300_000);
});

test('CA clock 120 s ahead: valid clients are accepted throughout revoke + push, and opus is refused after it', async () => {
  const before = await probe(server.port, opus);
  assert.ok(before.ok && before.status === 200, JSON.stringify(before));
  let running = true;
  const failures: string[] = [];
  let probes = 0;
  const loop = (async () => {
    while (running) {
      const r = await probe(server.port, grok);
      probes++;
      if (!r.ok || r.status !== 200) failures.push(JSON.stringify(r));
    }
  })();
  const r = await caAhead('+120', ['revoke', 'opus@ct111'], {
    RIVET_NODE_DIR: dirs.ct110!,
    RIVET_CRL_PUSH_CONNECT_TO: `ct111.mesh:3000:127.0.0.1:${server.port}`,
  });
  const after = await probe(server.port, opus);
  // Keep probing a second past the push: a CRL dated ahead would fail every one of these.
  await new Promise((res) => setTimeout(res, 1000));
  running = false;
  await loop;
  assert.is(r.exitCode, 0, `${r.stdout}${r.stderr}`);
  assert.match(String(r.stdout), /push ok +ct111 \d+ ms — installed/);
  assert.not.ok(after.ok, `opus accepted after the push: ${JSON.stringify(after)}`);
  assert.equal(failures, [], `grok refused ${failures.length} of ${probes} times`);
  assert.equal(
    server.tlsErrors.filter((e) => /not yet valid/i.test(e)),
    [],
  );
  const installed = parseCrlBundle(fs.readFileSync(path.join(dirs.ct111!, 'crl.pem'), 'utf8'));
  const int = new X509Certificate(fs.readFileSync(path.join(kit.caDir, 'intermediate', 'int.crt')));
  assert.ok(
    installed[0]!.thisUpdate.getTime() <= Date.now(),
    `thisUpdate ${installed[0]!.thisUpdate.toISOString()} is in this node's past`,
  );
  assert.ok(installed[0]!.thisUpdate.getTime() >= new Date(int.validFrom).getTime(), 'not before its issuer');
  console.log(
    `    ${probes} handshakes as grok@ct111 during revoke + push with the CA 120 s ahead: ${failures.length} refused; opus refused right after`,
  );
});

test("CA clock 10 minutes ahead: a CRL dated after this node's clock is refused (409 crl_not_yet_valid), the installed one kept", async () => {
  const r = await caAhead('+600', ['crl']);
  assert.is(r.exitCode, 0, String(r.stderr));
  const body = `${fs.readFileSync(path.join(kit.caDir, 'intermediate', 'chain.pem'), 'utf8')}${fs.readFileSync(path.join(kit.caDir, 'crl.pem'), 'utf8')}`;
  const before = fs.readFileSync(path.join(dirs.ct111!, 'crl.pem'), 'utf8');
  const pushed = await probe(
    server.port,
    {
      cert: fs.readFileSync(path.join(dirs.ct110!, 'node.crt')),
      key: fs.readFileSync(path.join(dirs.ct110!, 'node.key')),
      ca: fs.readFileSync(path.join(dirs.ct111!, 'rivet-ca.crt')),
    },
    '/api/mesh/crl',
    {
      method: 'POST',
      body,
      headers: { 'content-length': Buffer.byteLength(body) },
    },
  );
  assert.ok(
    pushed.ok && pushed.status === 409 && pushed.json.error.code === 'crl_not_yet_valid',
    JSON.stringify(pushed),
  );
  if (pushed.ok)
    assert.match(
      pushed.json.error.message,
      /starts at \S+, \d+ s after this node's clock .* every handshake would fail with CRL_NOT_YET_VALID; the installed CRLs stay/,
    );
  assert.is(fs.readFileSync(path.join(dirs.ct111!, 'crl.pem'), 'utf8'), before, 'crl.pem untouched');
  const g = await probe(server.port, grok);
  assert.ok(g.ok && g.status === 200, `grok refused after the refused push: ${JSON.stringify(g)}`);
  assert.not.ok((await probe(server.port, opus)).ok, 'opus stays refused');
  const st = await nodeStatus(dirs.ct111!, { withinMs: 0 });
  assert.is(st.lastRefusal?.code, 'crl_not_yet_valid');
});

test.run();
