// The CA host is a node of its own mesh (issue 15): `rivet-ca host` installs its node identity in
// RIVET_NODE_DIR as provision-ct would, CA-side renew renews it, and every push updates its node
// dir first and counts it among the nodes reached.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import path from 'node:path';
import { cli, freshCa, tempDir } from './helpers/ca.ts';
import { parseCertPem } from '../lib/x509/cert.ts';
import { parseCrlBundle, isRevoked } from '../lib/x509/crl.ts';
import type { Ca } from '../lib/ca/handle.ts';

let ca: Ca;
let nodeDir: string;
const env = () => ({
  RIVET_NODE_DIR: nodeDir,
  RIVET_CRL_PUSH_URL: 'https://{node}.{domain}:9/api/mesh/crl',
  RIVET_CRL_PUSH_CONNECT_TO: 'ct111.mesh:9:127.0.0.1:9',
});
test.before(async () => {
  ca = await freshCa();
  nodeDir = path.join(await tempDir('rivet-host-'), 'rivetos');
});

test('host installs the node files with the modes provision-ct uses, and a rerun changes nothing', async () => {
  const r = await cli(ca, ['host', 'ct110', '--san', 'DNS:ct110-admin.mesh'], { env: env() });
  assert.is(r.exitCode, 0, r.stderr);
  assert.match(
    r.stdout,
    /^issued ct110\.mesh: serial [0-9A-F]+, until \d{4}-\d\d-\d\d in .* \(wrote rivet-ca\.crt, crl\.pem, node\.key, node\.crt, node\.json\)/,
  );
  assert.is(fs.statSync(path.join(nodeDir, 'node.key')).mode & 0o777, 0o600);
  assert.is(fs.statSync(nodeDir).mode & 0o777, 0o700);
  const leaf = parseCertPem(fs.readFileSync(path.join(nodeDir, 'node.crt'), 'utf8'));
  assert.ok(leaf.dns.includes('ct110-admin.mesh') && leaf.dns.includes('ct110-mcp.mesh'), leaf.dns.join(','));
  assert.is(fs.readFileSync(path.join(nodeDir, 'rivet-ca.crt'), 'utf8'), fs.readFileSync(ca.store.chainFile, 'utf8'));
  const settings = JSON.parse(fs.readFileSync(path.join(nodeDir, 'node.json'), 'utf8'));
  assert.is(settings.caHost, 'ct110');
  assert.is(settings.datahub, 'https://ct110.mesh:8443');
  const again = await cli(ca, ['host', 'ct110', '--san', 'DNS:ct110-admin.mesh'], { env: env() });
  assert.match(again.stdout, /^unchanged ct110\.mesh/);
});

test('one host identity per node dir: another node-id is refused, nothing changes', async () => {
  const before = fs.readFileSync(path.join(nodeDir, 'node.crt'), 'utf8');
  const r = await cli(ca, ['host', 'ct119'], { env: env() });
  assert.is(r.exitCode, 2);
  assert.match(r.stderr, /already holds node ct110/);
  assert.is(fs.readFileSync(path.join(nodeDir, 'node.crt'), 'utf8'), before);
});

test("a revoke reaches the CA host's node dir first and counts it as pushed", async () => {
  assert.is((await cli(ca, ['issue-agent', 'opus@ct111'], { env: env() })).exitCode, 0);
  const serial = parseCertPem(fs.readFileSync(ca.store.issued('opus@ct111', 'crt'), 'utf8')).serial;
  const r = await cli(ca, ['revoke', 'opus@ct111'], { env: env() });
  assert.is(r.exitCode, 0, r.stderr);
  assert.match(r.stdout, /push ok +ct110 .*installed in the CA host's node dir/);
  assert.ok(
    isRevoked(parseCrlBundle(fs.readFileSync(path.join(nodeDir, 'crl.pem'), 'utf8')), serial),
    'the host now refuses opus too',
  );
});

test('CA-side renew renews the host identity when due, with the same key', async () => {
  const key = fs.readFileSync(path.join(nodeDir, 'node.key'));
  const old = parseCertPem(fs.readFileSync(path.join(nodeDir, 'node.crt'), 'utf8'));
  const r = await cli(ca, ['renew', '--within', '100d'], { env: env() });
  assert.match(r.stdout, /renewed +ct110\.mesh serial [0-9A-F]+ until .*\(CA host node dir/);
  const now = parseCertPem(fs.readFileSync(path.join(nodeDir, 'node.crt'), 'utf8'));
  assert.is.not(now.serial, old.serial);
  assert.equal(fs.readFileSync(path.join(nodeDir, 'node.key')), key, 'key unchanged');
});

test.run();
