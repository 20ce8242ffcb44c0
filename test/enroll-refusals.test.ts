// Everything the enrollment service must refuse, each with its status and code, and each leaving
// the CA exactly as it was (only audit.log may grow). Hostile input is first-class test data.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import tls from 'node:tls';
import https from 'node:https';
import {
  enrollFixture,
  enrollNode,
  newCsr,
  call,
  caState,
  auditLines,
  SECRET,
  type Fixture,
  type CallOptions,
} from './helpers/enroll.ts';
import { freshCa } from './helpers/ca.ts';
import { issueWithNewKey } from '../lib/ops/operator-issue.ts';
import { leafValidity } from '../lib/sign/validity.ts';
import { nodeId } from '../lib/core/identity.ts';
import { revoke } from '../lib/ops/revoke.ts';
import { mintToken } from '../lib/ops/tokens.ts';

let fx: Fixture;
let node: { cert: string; key: Buffer };
let nodeKeyFile: string;

test.before(async () => {
  fx = await enrollFixture({ bodyTimeoutMs: 1_500, headersTimeoutMs: 1_500, maxFailures: 10_000 });
  const enrolled = await enrollNode(fx, 'ct111.mesh');
  node = { cert: enrolled.cert, key: enrolled.key };
  nodeKeyFile = enrolled.keyFile;
});
test.after(async () => {
  await fx.close();
});

/** Calls, expects the status and code, and checks that nothing but audit.log changed. */
async function refused(
  method: string,
  path: string,
  opts: CallOptions,
  status: number,
  code: string,
  message?: RegExp,
) {
  const before = caState(fx.ca);
  const auditBefore = (await auditLines(fx.ca)).length;
  const r = await call(fx, method, path, opts);
  assert.is(r.status, status, r.text);
  assert.is(r.json?.error?.code, code, r.text);
  if (message) assert.match(r.json.error.message, message);
  assert.not.match(r.json.error.message, /\n/, 'one-line message');
  assert.not.ok(r.text.includes(SECRET), 'reply never echoes the secret');
  assert.equal(caState(fx.ca), before, `${code}: CA state unchanged`);
  const audit = await auditLines(fx.ca);
  assert.ok(
    audit.slice(auditBefore).some((e) => e.result === 'refused' && e.reason === code),
    `${code}: refusal audited`,
  );
  return r;
}

const csrFor = async (cn: string) => (await newCsr(fx.work, cn)).csr;

test('wrong secret, no Authorization, and a malformed one are 401', async () => {
  const csr = await csrFor('ct112.mesh');
  await refused('POST', '/enroll', { bearer: 'wrong', body: { csr } }, 401, 'bad_secret');
  await refused('POST', '/enroll', { bearer: SECRET.slice(0, -1), body: { csr } }, 401, 'bad_secret');
  await refused('POST', '/enroll', { body: { csr } }, 401, 'auth_required');
  await refused(
    'POST',
    '/enroll',
    { bearer: undefined, body: { csr }, authorization: `Basic ${Buffer.from(`x:${SECRET}`).toString('base64')}` },
    401,
    'bad_auth',
  );
});

test('the bootstrap secret is refused at /renew and /agents, even with a valid client cert', async () => {
  const renewCsr = await newCsr(fx.work, 'ct111.mesh', nodeKeyFile);
  await refused(
    'POST',
    '/renew',
    { bearer: SECRET, body: { csr: renewCsr.csr }, ...node },
    401,
    'bearer_not_accepted',
    /only at \/enroll/,
  );
  await refused(
    'POST',
    '/agents',
    { bearer: SECRET, body: { csr: await csrFor('opus@ct111') }, ...node },
    401,
    'bearer_not_accepted',
  );
  await refused('POST', '/renew', { bearer: SECRET, body: { csr: renewCsr.csr } }, 401, 'bearer_not_accepted');
});

test("a used, an expired, an unknown and another node's token are refused", async () => {
  const used = await mintToken(fx.ca, nodeId('ct130'));
  const ok = await call(fx, 'POST', '/enroll', { bearer: used.token, body: { csr: await csrFor('ct130.mesh') } });
  assert.is(ok.status, 200, ok.text);
  await refused(
    'POST',
    '/enroll',
    { bearer: used.token, body: { csr: await csrFor('ct130.mesh') } },
    401,
    'bad_token',
    /is used/,
  );
  const expired = await mintToken(fx.ca, nodeId('ct131'), 60_000, new Date(Date.now() - 120_000));
  await refused(
    'POST',
    '/enroll',
    { bearer: expired.token, body: { csr: await csrFor('ct131.mesh') } },
    401,
    'bad_token',
  );
  await refused(
    'POST',
    '/enroll',
    { bearer: `rvt_${'A'.repeat(43)}`, body: { csr: await csrFor('ct131.mesh') } },
    401,
    'bad_token',
    /unknown/,
  );
  const ct111Token = await mintToken(fx.ca, nodeId('ct132'));
  await refused(
    'POST',
    '/enroll',
    { bearer: ct111Token.token, body: { csr: await csrFor('ct112.mesh') } },
    403,
    'token_node',
    /for node ct132, not ct112/,
  );
  // The refused attempt did not spend the token: its own node still enrolls with it.
  const still = await call(fx, 'POST', '/enroll', {
    bearer: ct111Token.token,
    body: { csr: await csrFor('ct132.mesh') },
  });
  assert.is(still.status, 200, still.text);
});

test('a CSR CN of another form is 400; a node that holds a valid cert is 409', async () => {
  for (const cn of ['opus@ct113', 'ct113', 'ct113.other', 'CT113.mesh', 'alice@external', 'ct1,13.mesh']) {
    await refused('POST', '/enroll', { bearer: SECRET, body: { csr: await csrFor(cn) } }, 400, 'bad_identity');
  }
  await refused(
    'POST',
    '/enroll',
    { bearer: SECRET, body: { csr: await csrFor('ct111.mesh') } },
    409,
    'already_enrolled',
    /ct111\.mesh already holds a valid certificate/,
  );
});

test("SANs outside the node's namespace or private ranges are 403; malformed ones 400", async () => {
  const csr = await csrFor('ct113.mesh');
  await refused(
    'POST',
    '/enroll',
    { bearer: SECRET, body: { csr, sans: ['DNS:ct112.mesh'] } },
    403,
    'san_policy',
    /not under ct113\.mesh/,
  );
  await refused('POST', '/enroll', { bearer: SECRET, body: { csr, sans: ['DNS:db.ct112.mesh'] } }, 403, 'san_policy');
  await refused(
    'POST',
    '/enroll',
    { bearer: SECRET, body: { csr, sans: ['IP:8.8.8.8'] } },
    403,
    'san_policy',
    /outside the allowed ranges/,
  );
  await refused(
    'POST',
    '/enroll',
    { bearer: SECRET, body: { csr, sans: ['DNS:ct113.mesh\nIP.9=1.1.1.1'] } },
    400,
    'bad_input',
  );
  await refused('POST', '/enroll', { bearer: SECRET, body: { csr, sans: 'DNS:ct113.mesh' } }, 400, 'bad_san');
});

test('garbage PEM, a forged CSR signature and non-JSON bodies are 400', async () => {
  await refused(
    'POST',
    '/enroll',
    {
      bearer: SECRET,
      body: { csr: '-----BEGIN CERTIFICATE REQUEST-----\nZm9vYmFy\n-----END CERTIFICATE REQUEST-----\n' },
    },
    400,
    'bad_csr',
  );
  await refused('POST', '/enroll', { bearer: SECRET, body: { csr: 'hello' } }, 400, 'bad_csr');
  await refused('POST', '/enroll', { bearer: SECRET, body: {} }, 400, 'bad_csr');
  await refused('POST', '/enroll', { bearer: SECRET, raw: '{"csr": ' }, 400, 'bad_json');
  await refused('POST', '/enroll', { bearer: SECRET, raw: '[1,2]' }, 400, 'bad_json');
  await refused(
    'POST',
    '/enroll',
    { bearer: SECRET, body: { csr: await csrFor('ct113.mesh'), cn: 'ct999.mesh' } },
    400,
    'bad_request',
  );
  const good = await csrFor('ct113.mesh');
  const der = Buffer.from(good.replace(/-----[^-]+-----|\s/g, ''), 'base64');
  der[der.length - 5]! ^= 0x55; // inside the signature
  const forged = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`;
  await refused(
    'POST',
    '/enroll',
    { bearer: SECRET, body: { csr: forged } },
    400,
    'bad_csr',
    /signature does not verify|malformed/,
  );
});

test('/renew refuses a different key and a different identity', async () => {
  await refused('POST', '/renew', { body: { csr: await csrFor('ct111.mesh') }, ...node }, 403, 'key_mismatch');
  const sameKeyOtherName = await newCsr(fx.work, 'ct112.mesh', nodeKeyFile);
  await refused('POST', '/renew', { body: { csr: sameKeyOtherName.csr }, ...node }, 403, 'identity_mismatch');
  await refused(
    'POST',
    '/renew',
    { body: { csr: (await newCsr(fx.work, 'ct111.mesh', nodeKeyFile)).csr } },
    401,
    'client_cert_required',
  );
});

test('/renew refuses a revoked cert (at the handshake, once the CRL reloads) and an expired one', async () => {
  const { key, csr } = await newCsr(fx.work, 'ct140.mesh');
  const r = await call(fx, 'POST', '/enroll', { bearer: SECRET, body: { csr } });
  assert.is(r.status, 200, r.text);
  await revoke(fx.ca, 'ct140', { reason: 'keyCompromise' });
  assert.ok(await fx.service.reload(), 'new CRL picked up');
  const renewCsr = await newCsr(fx.work, 'ct140.mesh', key);
  await refused(
    'POST',
    '/renew',
    { body: { csr: renewCsr.csr }, cert: r.json.cert, key: fs.readFileSync(key) },
    401,
    'client_cert_rejected',
    /revoked/i,
  );

  const old = await issueWithNewKey(
    fx.ca,
    { kind: 'node', nodeId: nodeId('ct141') },
    { validity: leafValidity({ days: 1, notBefore: new Date(Date.now() - 3 * 86_400_000) }) },
  );
  assert.not.ok('skipped' in old);
  const expiredCsr = await newCsr(fx.work, 'ct141.mesh', fx.ca.store.issued('ct141', 'key'));
  await refused(
    'POST',
    '/renew',
    {
      body: { csr: expiredCsr.csr },
      cert: fs.readFileSync(fx.ca.store.issued('ct141', 'crt')),
      key: fs.readFileSync(fx.ca.store.issued('ct141', 'key')),
    },
    401,
    'client_cert_rejected',
    /expired/i,
  );
});

test("/agents refuses another node's agent, an agent cert as caller, and a node CN", async () => {
  await refused(
    'POST',
    '/agents',
    { body: { csr: await csrFor('opus@ct112') }, ...node },
    403,
    'not_your_agent',
    /only as <agent-id>@ct111/,
  );
  await refused('POST', '/agents', { body: { csr: await csrFor('ct111.mesh') }, ...node }, 400, 'bad_identity');
  const agent = await newCsr(fx.work, 'sonnet@ct111');
  const minted = await call(fx, 'POST', '/agents', { body: { csr: agent.csr }, ...node });
  assert.is(minted.status, 200, minted.text);
  await refused(
    'POST',
    '/agents',
    { body: { csr: await csrFor('haiku@ct111') }, cert: minted.json.cert, key: fs.readFileSync(agent.key) },
    403,
    'node_cert_required',
  );
});

test('a certificate from a different CA with the same CN is refused at /renew and /agents', async () => {
  const other = await freshCa();
  await issueWithNewKey(other, { kind: 'node', nodeId: nodeId('ct111') });
  const impostor = {
    cert: fs.readFileSync(other.store.issued('ct111', 'crt')),
    key: fs.readFileSync(other.store.issued('ct111', 'key')),
  };
  const csr = (await newCsr(fx.work, 'ct111.mesh', other.store.issued('ct111', 'key'))).csr;
  await refused('POST', '/renew', { body: { csr }, ...impostor }, 401, 'client_cert_rejected');
  await refused(
    'POST',
    '/agents',
    { body: { csr: await csrFor('opus@ct111') }, ...impostor },
    401,
    'client_cert_rejected',
  );
});

test('a 10 MB body is refused with 413, declared or chunked', async () => {
  const big = Buffer.alloc(10 * 1024 * 1024, 0x61);
  await refused('POST', '/enroll', { bearer: SECRET, raw: big }, 413, 'too_large');
  const before = caState(fx.ca);
  const status = await new Promise<number>((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port: fx.service.port,
        servername: 'ct110.mesh',
        ca: fx.chain,
        method: 'POST',
        path: '/enroll',
        agent: false,
        headers: { authorization: `Bearer ${SECRET}`, 'transfer-encoding': 'chunked' },
      },
      (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      },
    );
    req.on('error', reject);
    let sent = 0;
    const pump = () => {
      while (sent < big.length) {
        sent += 256 * 1024;
        if (!req.write(big.subarray(0, 256 * 1024))) return void req.once('drain', pump);
      }
      req.end();
    };
    pump();
  });
  assert.is(status, 413);
  assert.equal(caState(fx.ca), before);
});

/** Speaks raw TLS: `head` at once, then `trickle` one byte a second. Resolves with what came back. */
function slowClient(head: string, trickle: string): Promise<{ reply: string; closedAfterMs: number }> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    let reply = '';
    const socket = tls.connect(
      { host: '127.0.0.1', port: fx.service.port, servername: 'ct110.mesh', ca: fx.chain },
      () => {
        socket.write(head);
        let i = 0;
        const timer = setInterval(() => {
          if (i < trickle.length && !socket.destroyed) socket.write(trickle[i++]!);
        }, 1_000);
        socket.on('close', () => {
          clearInterval(timer);
          clearTimeout(guard);
          resolve({ reply, closedAfterMs: Date.now() - started });
        });
      },
    );
    const guard = setTimeout(() => {
      socket.destroy();
      reject(new Error('server never cut the slow client off (20 s)'));
    }, 20_000);
    socket.on('data', (d: Buffer) => {
      reply += d.toString('utf8');
    });
    socket.on('error', () => {
      /* a reset after the reply is fine */
    });
  });
}

test('a client sending its body one byte a second is cut off with 408', async () => {
  const before = caState(fx.ca);
  const r = await slowClient(
    `POST /enroll HTTP/1.1\r\nHost: ct110.mesh\r\nAuthorization: Bearer ${SECRET}\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n`,
    '{"csr":"'.padEnd(200, 'A'),
  );
  assert.match(r.reply, /^HTTP\/1\.1 408/);
  assert.match(r.reply, /"code":"timeout"/);
  assert.equal(caState(fx.ca), before);
});

test('a client sending its headers one byte a second is cut off', async () => {
  const r = await slowClient('POST /enroll HTTP/1.1\r\n', 'Host: ct110.mesh\r\nX-Slow: '.padEnd(200, 'a'));
  assert.ok(r.reply === '' || /^HTTP\/1\.1 408/.test(r.reply), `got ${JSON.stringify(r.reply.slice(0, 40))}`);
});

test.run();
