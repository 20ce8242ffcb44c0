// A DNS name belongs to one node at a time: node-ids may contain "-", so ct1's listener alias
// ct1-x.mesh is also the main name of a node called ct1-x. Neither side may take the other's name.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import path from 'node:path';
import { freshCa, cli, snapshot } from './helpers/ca.ts';
import type { Ca } from '../lib/ca/handle.ts';
import { enrollFixture, newCsr, call, caState, SECRET } from './helpers/enroll.ts';

let ca: Ca;
test.before(async () => {
  ca = await freshCa();
  assert.is((await cli(ca, ['issue-node', 'ct1', '--san', 'DNS:ct1-grafana.mesh'])).exitCode, 0);
  assert.is((await cli(ca, ['issue-node', 'ct2'])).exitCode, 0);
});

test('a node cannot take a name another node carries as an alias or listener name', async () => {
  const before = snapshot(ca.store.dir);
  for (const taken of ['ct1-mcp', 'ct1-grafana']) {
    const r = await cli(ca, ['issue-node', taken]);
    assert.is(r.exitCode, 2, r.stderr);
    assert.match(
      r.stderr,
      new RegExp(`DNS name ${taken}\\.mesh already belongs to node ct1\\.mesh .* pick another node-id or revoke`),
    );
  }
  assert.equal(snapshot(ca.store.dir), before);
});

test("an alias may not be another live node's name", async () => {
  assert.is((await cli(ca, ['issue-node', 'ct2-db'])).exitCode, 0, "ct2-db is nobody's alias yet");
  const r = await cli(ca, ['issue-node', 'ct2', '--force', '--san', 'DNS:ct2-db.mesh']);
  assert.is(r.exitCode, 2);
  assert.match(r.stderr, /DNS name ct2-db\.mesh is the name of node ct2-db, which holds a valid certificate/);
});

test('after a revocation the name is free again', async () => {
  assert.is((await cli(ca, ['revoke', 'ct1', '--no-push'])).exitCode, 0);
  const r = await cli(ca, ['issue-node', 'ct1-grafana']);
  assert.is(r.exitCode, 0, r.stderr);
});

test('a roster whose nodes would share a name is refused before anything is issued', async () => {
  const roster = path.join(path.dirname(ca.store.dir), 'overlap.txt');
  fs.writeFileSync(roster, 'ct7\nct7-mcp\n');
  const before = snapshot(ca.store.dir);
  const r = await cli(ca, ['issue', '--roster', roster]);
  assert.is(r.exitCode, 2);
  assert.match(r.stderr, /roster lines 1 and 2: both nodes would carry DNS name ct7-mcp\.mesh/);
  assert.equal(snapshot(ca.store.dir), before);
});

test("the enrollment service refuses, with 409, a node-id that is another node's listener name or an alias onto another node", async () => {
  const fx = await enrollFixture();
  try {
    const first = await call(fx, 'POST', '/enroll', {
      bearer: SECRET,
      body: { csr: (await newCsr(fx.work, 'ct5.mesh')).csr, sans: ['DNS:ct5-api.mesh'] },
    });
    assert.is(first.status, 200, first.text);
    const before = caState(fx.ca);
    const squat = await call(fx, 'POST', '/enroll', {
      bearer: SECRET,
      body: { csr: (await newCsr(fx.work, 'ct5-api.mesh')).csr },
    });
    assert.is(squat.status, 409, squat.text);
    assert.is(squat.json.error.code, 'name_taken');
    assert.match(squat.json.error.message, /ct5-api\.mesh already belongs to node ct5\.mesh/);
    assert.equal(caState(fx.ca), before, 'nothing issued');
    assert.is(
      (await call(fx, 'POST', '/enroll', { bearer: SECRET, body: { csr: (await newCsr(fx.work, 'ct8-db.mesh')).csr } }))
        .status,
      200,
    );
    const mid = caState(fx.ca);
    const alias = await call(fx, 'POST', '/enroll', {
      bearer: SECRET,
      body: { csr: (await newCsr(fx.work, 'ct8.mesh')).csr, sans: ['DNS:ct8-db.mesh'] },
    });
    assert.is(alias.status, 409, alias.text);
    assert.match(alias.json.error.message, /DNS name ct8-db\.mesh is the name of node ct8-db/);
    assert.equal(caState(fx.ca), mid, 'nothing issued');
  } finally {
    await fx.close();
  }
});

test.run();
