// Bounded renewal (issue 14: one agent made 2,000 live certificates at ~20/s with one replayed
// CSR). Over real HTTPS: a fresh certificate gets 409 `not_due` with the date its window opens;
// 30 back-to-back renewals of an old one leave at most 2 live certificates (the replays get the
// same certificate back); /agents keeps an agent at 2 and a node at MAX_AGENTS_PER_NODE agents;
// per-identity and per-source limits answer 429 with Retry-After. Refusals change nothing.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { enrollFixture, enrollNode, newCsr, call, caState, backdated, type Fixture } from './helpers/enroll.ts';
import { nodeId } from '../lib/core/identity.ts';
import { parseCertPem } from '../lib/x509/cert.ts';
import { readDb, isLive } from '../lib/ca/database.ts';
import { DAY_MS } from '../lib/core/duration.ts';
import { MAX_AGENTS_PER_NODE } from '../lib/core/limits.ts';

let fx: Fixture;
test.before(async () => {
  fx = await enrollFixture();
});
test.after(async () => {
  await fx.close();
});

const liveOf = async (f: Fixture, cn: string) =>
  (await readDb(f.ca.store.intermediateDir)).filter((e) => e.cn === cn && isLive(e));

test('a fresh certificate is not due: 409 not_due naming the date renewal opens, nothing changed', async () => {
  const n = await enrollNode(fx, 'ct150.mesh');
  const leaf = parseCertPem(n.cert);
  const before = caState(fx.ca);
  const r = await call(fx, 'POST', '/renew', {
    body: { csr: (await newCsr(fx.work, 'ct150.mesh', n.keyFile)).csr },
    cert: n.cert,
    key: n.key,
  });
  assert.is(r.status, 409, r.text);
  assert.is(r.json.error.code, 'not_due');
  const opens = new Date(leaf.notAfter.getTime() - 30 * DAY_MS).toISOString();
  assert.ok(r.json.error.message.includes(`renewal opens ${opens}`), r.json.error.message);
  assert.equal(caState(fx.ca), before);
});

test('30 back-to-back /renew of an old certificate leave at most 2 live certificates; replays get the same one', async () => {
  const n = await enrollNode(fx, 'ct151.mesh');
  const old = await backdated(fx.ca, { kind: 'node', nodeId: nodeId('ct151') }, n.keyFile, 70, { retire: true });
  const { csr } = await newCsr(fx.work, 'ct151.mesh', n.keyFile); // one CSR, replayed
  const results = await Promise.all(
    Array.from({ length: 30 }, () => call(fx, 'POST', '/renew', { body: { csr }, cert: old, key: n.key })),
  );
  const ok = results.filter((r) => r.status === 200);
  assert.ok(
    results.every((r) => r.status === 200 || r.status === 429),
    results.map((r) => r.status).join(','),
  );
  const serials = new Set(ok.map((r) => parseCertPem(r.json.cert).serial));
  assert.is(serials.size, 1, 'every answer is the one new certificate');
  const live = await liveOf(fx, 'ct151.mesh');
  process.stderr.write(
    `  [renew] 30 replays: ${ok.length} × 200, ${results.length - ok.length} × 429, ${live.length} live certs\n`,
  );
  assert.ok(live.length <= 2, `${live.length} live`);
  // And from the new one: not due.
  const again = await call(fx, 'POST', '/renew', { body: { csr }, cert: ok[0]!.json.cert, key: n.key });
  assert.is(again.status, 409);
  // Other names are a new request, not a replay: a new certificate that supersedes the last one.
  const renamed = await call(fx, 'POST', '/renew', {
    body: { csr, sans: ['DNS:api.ct151.mesh'] },
    cert: old,
    key: n.key,
  });
  assert.is(renamed.status, 200, renamed.text);
  assert.ok(parseCertPem(renamed.json.cert).dns.includes('api.ct151.mesh'));
  assert.is.not(parseCertPem(renamed.json.cert).serial, [...serials][0]);
  assert.is((await liveOf(fx, 'ct151.mesh')).length, 2);
});

test('/agents: re-minting an agent gives the same certificate; new keys never leave more than 2 live', async () => {
  const n = await enrollNode(fx, 'ct152.mesh');
  const first = await newCsr(fx.work, 'opus@ct152');
  const a = await call(fx, 'POST', '/agents', { body: { csr: first.csr }, cert: n.cert, key: n.key });
  const b = await call(fx, 'POST', '/agents', { body: { csr: first.csr }, cert: n.cert, key: n.key });
  assert.is(parseCertPem(b.json.cert).serial, parseCertPem(a.json.cert).serial, 'same key, not due: given again');
  for (let i = 0; i < 4; i++) {
    const r = await call(fx, 'POST', '/agents', {
      body: { csr: (await newCsr(fx.work, 'opus@ct152')).csr },
      cert: n.cert,
      key: n.key,
    });
    assert.is(r.status, 200, r.text);
  }
  assert.is((await liveOf(fx, 'opus@ct152')).length, 2, 'older ones superseded');
  const superseded = (await readDb(fx.ca.store.intermediateDir)).filter(
    (e) => e.cn === 'opus@ct152' && e.status === 'R',
  );
  assert.ok(superseded.length >= 3 && superseded.every((e) => e.reason === 'superseded'));
});

test(`a node mints at most ${MAX_AGENTS_PER_NODE} agents: the next is 409 agent_limit, nothing changed`, async () => {
  const f = await enrollFixture({
    issuance: { perIdentity: { max: 1000, windowMs: 60_000 }, perSource: { max: 1000, windowMs: 60_000 } },
  });
  try {
    const n = await enrollNode(f, 'ct153.mesh');
    for (let i = 0; i < MAX_AGENTS_PER_NODE; i++) {
      const r = await call(f, 'POST', '/agents', {
        body: { csr: (await newCsr(f.work, `a${i}@ct153`)).csr },
        cert: n.cert,
        key: n.key,
      });
      assert.is(r.status, 200, r.text);
    }
    const before = caState(f.ca);
    const r = await call(f, 'POST', '/agents', {
      body: { csr: (await newCsr(f.work, 'extra@ct153')).csr },
      cert: n.cert,
      key: n.key,
    });
    assert.is(r.status, 409, r.text);
    assert.is(r.json.error.code, 'agent_limit');
    assert.equal(caState(f.ca), before);
  } finally {
    await f.close();
  }
});

test('per-identity and per-source limits: 429 with Retry-After, counted before any work', async () => {
  const f = await enrollFixture({
    issuance: { perIdentity: { max: 3, windowMs: 60_000 }, perSource: { max: 5, windowMs: 60_000 } },
  });
  try {
    const n = await enrollNode(f, 'ct154.mesh');
    const m = await enrollNode(f, 'ct155.mesh');
    const { csr } = await newCsr(f.work, 'opus@ct154');
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++)
      statuses.push((await call(f, 'POST', '/agents', { body: { csr }, cert: n.cert, key: n.key })).status);
    assert.equal(statuses, [200, 200, 200, 429]);
    const before = caState(f.ca);
    const limited = await call(f, 'POST', '/renew', {
      body: { csr: (await newCsr(f.work, 'ct154.mesh', n.keyFile)).csr },
      cert: n.cert,
      key: n.key,
    });
    assert.is(limited.status, 429);
    assert.is(limited.json.error.code, 'rate_limited');
    assert.match(limited.json.error.message, /for ct154\.mesh \(3 per 1 min\)/);
    assert.ok(
      Number(limited.headers['retry-after']) > 0 && Number(limited.headers['retry-after']) <= 60,
      `Retry-After ${limited.headers['retry-after']}`,
    );
    // Another identity from the same address: the per-source limit (3 counted so far; refused requests do not count).
    const other: number[] = [];
    for (let i = 0; i < 3; i++)
      other.push(
        (
          await call(f, 'POST', '/agents', {
            body: { csr: (await newCsr(f.work, 'grok@ct155')).csr },
            cert: m.cert,
            key: m.key,
          })
        ).status,
      );
    assert.equal(other, [200, 200, 429]);
    const bySource = await call(f, 'POST', '/agents', { body: { csr }, cert: m.cert, key: m.key });
    assert.match(bySource.json.error.message, /from 127\.0\.0\.1 \(5 per 1 min\)/);
    assert.ok(Number(bySource.headers['retry-after']) > 0);
    assert.equal(
      Object.keys(caState(f.ca)).length,
      Object.keys(before).length + 2,
      'only the 2 allowed grok certificates were added',
    );
  } finally {
    await f.close();
  }
});

test.run();
