// lib/policy/name-ownership.ts (the ownership index) built by lib/policy/live-names.ts: a DNS name
// belongs to one node at a time. The live rows are given as the CA's database would list them,
// with the certificates in a temporary newcerts/.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import path from 'node:path';
import { checkNodeNamesLocked as check, nameIndexLocked, type DbRow } from '../../../lib/policy/live-names.ts';
import { NameIndex, ipKey, isHostLocal } from '../../../lib/policy/name-ownership.ts';
import { openCa } from '../../../lib/ca/handle.ts';
import { meshDomain, nodeId } from '../../../lib/core/identity.ts';
import { derToPem } from '../../../lib/x509/der.ts';
import type { DbEntry } from '../../../lib/ca/database.ts';
import { serialOf } from '../../../lib/x509/serial.ts';
import { tempDir } from '../../helpers/temp.ts';
import { buildCert, newKey } from '../x509/build.ts';

const mesh = meshDomain('mesh');
const ca = openCa('/nonexistent/rivet-ca', mesh); // only its domain is read when the rows are given
const key = newKey().privateKey;
let live: NameIndex;
const checkNodeNamesLocked = (c: typeof ca, node: string, dns: string[], index: NameIndex) =>
  check(c, node, { dns, ips: [] }, { index });

async function refusedWith(checking: Promise<unknown>, message: RegExp): Promise<void> {
  try {
    await checking;
  } catch (err) {
    assert.match((err as Error).message, message);
    return;
  }
  assert.unreachable(`accepted; wanted ${message}`);
}

test.before(async () => {
  const dir = await tempDir();
  fs.mkdirSync(path.join(dir, 'newcerts'));
  const rows: DbRow[] = [];
  const add = (cn: string, serial: string, dns: string[]) => {
    fs.writeFileSync(
      path.join(dir, 'newcerts', `${serial}.pem`),
      derToPem(buildCert(key, key, { cns: [cn], dns }), 'CERTIFICATE'),
    );
    const row: DbEntry = {
      status: 'V',
      notAfter: new Date(Date.now() + 86_400_000),
      serial: serialOf(serial),
      cn,
      line: '',
    };
    rows.push({ row, dir });
  };
  add('ct1.mesh', '1001', ['ct1.mesh', 'ct1-mcp.mesh', 'ct1-runtime-rpc.mesh', 'ct1-grafana.mesh']);
  add('ct2-db.mesh', '1002', ['ct2-db.mesh', 'ct2-db-mcp.mesh', 'ct2-db-runtime-rpc.mesh']);
  live = await nameIndexLocked(ca, rows);
});

test('a node may keep its own names and take free aliases', async () => {
  await checkNodeNamesLocked(ca, nodeId('ct1'), ['ct1.mesh', 'ct1-mcp.mesh', 'ct1-new.mesh'], live);
  await checkNodeNamesLocked(ca, nodeId('ct3'), ['ct3.mesh', 'ct3-mcp.mesh', 'db.lan'], live);
});

test("an alias may not be another live node's name", async () => {
  await refusedWith(
    checkNodeNamesLocked(ca, nodeId('ct2'), ['ct2.mesh', 'ct2-db.mesh'], live),
    /DNS name ct2-db\.mesh is the name of node ct2-db, which holds a valid certificate — pick another alias/,
  );
});

test('a node may not take a name a live node carries as a listener name or alias', async () => {
  for (const taken of ['ct1-mcp', 'ct1-grafana']) {
    await refusedWith(
      checkNodeNamesLocked(ca, nodeId(taken), [`${taken}.mesh`, `${taken}-mcp.mesh`], live),
      new RegExp(
        `DNS name ${taken}\\.mesh already belongs to node ct1\\.mesh \\(serial 1001\\) — node-id ${taken} would overlap it`,
      ),
    );
  }
  await checkNodeNamesLocked(ca, nodeId('ct1-other'), ['ct1-other.mesh'], live);
});

test("prefix rules run both ways: a name in a more specific live node's namespace, and a live name in ours", () => {
  const index = new NameIndex(mesh);
  index.add('ct3-api', 'A1', ['ct3-api.mesh', 'ct3-api-mcp.mesh', 'ct3-api-runtime-rpc.mesh'], []);
  index.add('ct5', 'B1', ['ct5.mesh', 'ct5-mcp.mesh', 'ct5-runtime-rpc.mesh', 'ct5-api-grafana.mesh'], []);
  assert.match(
    index.conflict('ct3', ['ct3.mesh', 'ct3-api-grafana.mesh'], [])!.message,
    /ct3-api-grafana\.mesh lies in the names of node ct3-api/,
  );
  assert.match(index.conflict('ct3', ['ct3.mesh', 'x.ct3-api.mesh'], [])!.message, /lies in the names of node ct3-api/);
  assert.is(
    index.conflict('ct3', ['ct3.mesh', 'ct3-grafana.mesh', 'x.ct3.mesh'], []),
    undefined,
    'its own namespace is free',
  );
  assert.is(
    index.conflict('ct3-api-db', ['ct3-api-db.mesh'], []),
    undefined,
    'a more specific node than the holder is fine',
  );
  assert.match(
    index.conflict('ct5-api', ['ct5-api.mesh', 'ct5-api-mcp.mesh'], [])!.message,
    /ct5-api-grafana\.mesh already belongs to node ct5\.mesh \(serial B1\) — node-id ct5-api would overlap it/,
  );
  assert.is(index.conflict('ct5-db', ['ct5-db.mesh'], []), undefined);
});

test('addresses: exclusive in every spelling, loopback and localhost shared', () => {
  const index = new NameIndex(mesh);
  index.add('ct111', 'C1', ['ct111.mesh', 'localhost'], ['10.0.0.111', '127.0.0.1', '::1']);
  for (const ip of ['10.0.0.111', '::ffff:a00:6f'])
    assert.match(index.conflict('ct112', [], [ip])!.message, /already belongs to node ct111\.mesh \(serial C1\)/);
  assert.is(index.conflict('ct112', ['localhost'], ['127.0.0.1', '::1']), undefined);
  assert.equal(
    index.conflicts('ct112', ['ct111.mesh'], ['10.0.0.111']).map((c) => c.name),
    ['10.0.0.111', 'ct111.mesh'],
  );
  assert.is(ipKey('::ffff:10.0.0.111'), '10.0.0.111');
  assert.is(ipKey('::ffff:a00:6f'), '10.0.0.111');
  assert.ok(isHostLocal('127.8.9.1') && isHostLocal('db.localhost') && !isHostLocal('10.0.0.1'));
});

test.run();
