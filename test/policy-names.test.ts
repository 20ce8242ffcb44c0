// Issue 14's name attacks, each refused: every DNS name and IP of a live node certificate belongs
// to that node alone, prefix rules in both directions, on every issuance path (the service's
// /enroll and /renew over real HTTPS, the CLI's issue-node, sign and issue --roster). A refusal
// names the holder, answers 409 `name_taken` or exits 2, and leaves the CA dir byte-identical but
// for audit.log. The operator's --allow-shared-name is the one, audited, way past it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import path from 'node:path';
import {
  enrollFixture,
  enrollNode,
  newCsr,
  call,
  caState,
  backdated,
  auditLines,
  SECRET,
  type Fixture,
} from './helpers/enroll.ts';
import { cli } from './helpers/ca.ts';
import { nodeId } from '../lib/core/identity.ts';
import { parseCertPem } from '../lib/x509/cert.ts';

let fx: Fixture;
test.before(async () => {
  fx = await enrollFixture();
  // The live holders: ct3-api and ct1-db with their listener names, ct111 with an address.
  for (const [cn, sans] of [
    ['ct3-api.mesh', []],
    ['ct1-db.mesh', []],
    ['ct111.mesh', ['IP:10.0.0.111', 'IP:127.0.0.1']],
  ] as const) {
    const { csr } = await newCsr(fx.work, cn);
    const r = await call(fx, 'POST', '/enroll', { bearer: SECRET, body: { csr, sans } });
    assert.is(r.status, 200, r.text);
  }
});
test.after(async () => {
  await fx.close();
});

async function refused409(
  what: string,
  run: () => Promise<{ status: number; json: any; text: string }>,
  holder: RegExp,
): Promise<void> {
  const before = caState(fx.ca);
  const r = await run();
  assert.is(r.status, 409, `${what}: ${r.text}`);
  assert.is(r.json.error.code, 'name_taken', what);
  assert.match(r.json.error.message, holder, what);
  assert.equal(caState(fx.ca), before, `${what}: CA dir unchanged but audit.log`);
}

test("/renew: ct3 may not take ct3-api's listener names while ct3-api lives (the issue's 200)", async () => {
  const ct3 = await enrollNode(fx, 'ct3.mesh');
  const old = await backdated(fx.ca, { kind: 'node', nodeId: nodeId('ct3') }, ct3.keyFile, 70, { retire: true }); // inside its renewal window
  const sans = ['DNS:ct3-api-mcp.mesh', 'DNS:ct3-api-runtime-rpc.mesh', 'DNS:ct3-api-grafana.mesh'];
  for (const san of [sans, ['DNS:ct3-api-grafana.mesh']]) {
    const { csr } = await newCsr(fx.work, 'ct3.mesh', ct3.keyFile);
    await refused409(
      `renew with ${san.join(' ')}`,
      () => call(fx, 'POST', '/renew', { body: { csr, sans: san }, cert: old, key: ct3.key }),
      /node ct3-api/,
    );
  }
  const { csr } = await newCsr(fx.work, 'ct3.mesh', ct3.keyFile);
  const ok = await call(fx, 'POST', '/renew', {
    body: { csr, sans: ['DNS:ct3-grafana.mesh'] },
    cert: old,
    key: ct3.key,
  });
  assert.is(ok.status, 200, `its own names are fine: ${ok.text}`);
});

test("/enroll: a new node may not carry a live node's listener name, in either prefix direction", async () => {
  await refused409(
    'ct1 with ct1-db-mcp.mesh',
    async () =>
      call(fx, 'POST', '/enroll', {
        bearer: SECRET,
        body: { csr: (await newCsr(fx.work, 'ct1.mesh')).csr, sans: ['DNS:ct1-db-mcp.mesh'] },
      }),
    /ct1-db/,
  );
  // ct5 takes ct5-api-grafana.mesh while no ct5-api exists; then ct5-api may not enroll.
  assert.is(
    (
      await call(fx, 'POST', '/enroll', {
        bearer: SECRET,
        body: { csr: (await newCsr(fx.work, 'ct5.mesh')).csr, sans: ['DNS:ct5-api-grafana.mesh'] },
      })
    ).status,
    200,
  );
  await refused409(
    'ct5-api while ct5 carries ct5-api-grafana.mesh',
    async () =>
      call(fx, 'POST', '/enroll', { bearer: SECRET, body: { csr: (await newCsr(fx.work, 'ct5-api.mesh')).csr } }),
    /ct5-api-grafana\.mesh already belongs to node ct5\.mesh/,
  );
});

test("/enroll: IP addresses are exclusive too (any spelling); loopback is everyone's", async () => {
  for (const ip of ['IP:10.0.0.111', 'IP:::ffff:10.0.0.111', 'IP:::ffff:a00:6f']) {
    await refused409(
      `ct112 with ${ip}`,
      async () =>
        call(fx, 'POST', '/enroll', {
          bearer: SECRET,
          body: { csr: (await newCsr(fx.work, 'ct112.mesh')).csr, sans: [ip] },
        }),
      /already belongs to node ct111\.mesh/,
    );
  }
  const r = await call(fx, 'POST', '/enroll', {
    bearer: SECRET,
    body: { csr: (await newCsr(fx.work, 'ct112.mesh')).csr, sans: ['IP:127.0.0.1', 'DNS:localhost'] },
  });
  assert.is(r.status, 200, r.text);
});

test("CLI: issue-node, sign and issue --roster refuse a live node's name or address with exit 2 naming the holder", async () => {
  const before = caState(fx.ca);
  const node = await cli(fx.ca, ['issue-node', 'ct113', '--san', 'IP:10.0.0.111']);
  assert.is(node.exitCode, 2, node.stderr);
  assert.match(node.stderr, /IP address 10\.0\.0\.111 already belongs to node ct111\.mesh \(serial [0-9A-F]+\)/);
  const csr = path.join(fx.work, 'ct9.csr');
  fs.writeFileSync(csr, (await newCsr(fx.work, 'ct9.mesh')).csr);
  const signed = await cli(fx.ca, [
    'sign',
    csr,
    '--as',
    'ct9',
    '--san',
    'DNS:ct3-api-x.mesh',
    '--out',
    path.join(fx.work, 'ct9.crt'),
  ]);
  assert.is(signed.exitCode, 2, signed.stderr);
  assert.match(signed.stderr, /DNS name ct3-api-x\.mesh lies in the names of node ct3-api/);
  const roster = path.join(fx.work, 'roster.txt');
  fs.writeFileSync(roster, 'ct20\nct1-db-mcp\nopus@ct20\n');
  const r = await cli(fx.ca, ['issue', '--roster', roster]);
  assert.is(r.exitCode, 2, r.stderr);
  assert.match(r.stderr, /roster line 2: DNS name ct1-db-mcp\.mesh already belongs to node ct1-db\.mesh/);
  assert.equal(caState(fx.ca), before, 'nothing issued by any of them');
  fs.writeFileSync(roster, 'ct21 DNS:ct21-x.mesh\nct21-x\n');
  const inner = await cli(fx.ca, ['issue', '--roster', roster]);
  assert.is(inner.exitCode, 2);
  assert.match(inner.stderr, /roster lines 1 and 2: both nodes would carry DNS name ct21-x\.mesh/);
  assert.equal(caState(fx.ca), before);
});

test('--allow-shared-name is the explicit override: issued, and the shared name and holder are audited', async () => {
  const r = await cli(fx.ca, ['issue-node', 'ct114', '--san', 'IP:10.0.0.111', '--allow-shared-name']);
  assert.is(r.exitCode, 0, r.stderr);
  assert.equal(parseCertPem(fs.readFileSync(fx.ca.store.issued('ct114', 'crt'), 'utf8')).ips, ['10.0.0.111']);
  const line = (await auditLines(fx.ca)).find((l) => l.event === 'issue' && l.cn === 'ct114.mesh');
  assert.match(String(line?.detail), /--allow-shared-name: 10\.0\.0\.111 shared with ct111 \(serial [0-9A-F]+\)/);
  // The service never overrides: a third node with that address is still refused there.
  await refused409(
    'ct115 at /enroll',
    async () =>
      call(fx, 'POST', '/enroll', {
        bearer: SECRET,
        body: { csr: (await newCsr(fx.work, 'ct115.mesh')).csr, sans: ['IP:10.0.0.111'] },
      }),
    /already belongs to node/,
  );
});

test.run();
