// serve's traffic log (issue 15): one timestamped line per request (source, method, path, status,
// ms, peer CN or "no certificate") and per refused handshake (peer or "no certificate", reason), on
// stderr — and never the bootstrap secret, whether it was right, wrong, or sent to a wrong path.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import path from 'node:path';
import https from 'node:https';
import { startServed, mustOk, SECRET, type Served } from './helpers/provision.ts';

let s: Served;
test.before(async () => {
  s = await startServed();
});
test.after(async () => {
  await s.close();
});

const TS = '\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z';
const lines = () => s.serveLog().split('\n').filter(Boolean);
const waitFor = async (re: RegExp) => {
  const end = Date.now() + 5_000;
  while (!lines().some((l) => re.test(l)) && Date.now() < end) await new Promise((r) => setTimeout(r, 25));
  return lines().filter((l) => re.test(l));
};

function get(pathName: string, opts: https.RequestOptions = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port: s.port,
        path: pathName,
        servername: 'ct110.mesh',
        ca: fs.readFileSync(s.ca.store.chainFile),
        agent: false,
        ...opts,
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

test('every line carries a timestamp; a request line names method, path, status, ms and "no certificate"', async () => {
  assert.is(await get('/healthz?token=abc'), 200);
  const [line] = await waitFor(/ GET \/healthz /);
  assert.match(line!, new RegExp(`^${TS} rivet-ca serve: 127\\.0\\.0\\.1 GET /healthz 200 \\d+ms no certificate$`));
  assert.not.match(line!, /token=abc/, 'no query string');
  for (const l of lines()) assert.match(l, new RegExp(`^${TS} rivet-ca serve: `), l);
});

test('a path with hostile characters is quoted on one line; a 404 is logged with its status', async () => {
  assert.is(await get('/no%0Awhere"x'), 404);
  const [line] = await waitFor(/ GET "\/no%0Awhere\\"x" 404 /);
  assert.ok(line, lines().join('\n'));
});

test('enroll with the secret, then renew with the node cert: the peer CN is logged, the secret never is', async () => {
  const dir = path.join(s.home, 'ct111');
  mustOk(
    await s.provision(dir, ['enroll', '--node-id', 'ct111', ...s.datahubArgs, '--ca-fingerprint', s.fingerprint], {
      RIVET_BOOTSTRAP_SECRET: SECRET,
    }),
    'enroll',
  );
  const [enroll] = await waitFor(/ POST \/enroll 200 /);
  assert.match(enroll!, /POST \/enroll 200 \d+ms no certificate$/);
  // A wrong secret is somebody's guess at it: not logged either.
  const wrong = `${SECRET} but wrong`;
  const bad = await s.provision(
    path.join(s.home, 'ct112'),
    ['enroll', '--node-id', 'ct112', ...s.datahubArgs, '--ca-fingerprint', s.fingerprint],
    { RIVET_BOOTSTRAP_SECRET: wrong },
  );
  assert.is.not(bad.exitCode, 0);
  await waitFor(/ POST \/enroll 401 /);
  assert.is(
    await get('/renew', {
      cert: fs.readFileSync(path.join(dir, 'node.crt')),
      key: fs.readFileSync(path.join(dir, 'node.key')),
    }),
    405,
  );
  const [renew] = await waitFor(/ GET \/renew 405 /);
  assert.match(renew!, /GET \/renew 405 \d+ms ct111\.mesh$/);
  const log = s.serveLog();
  assert.not.ok(log.includes(SECRET), "the bootstrap secret is not in serve's output");
  assert.not.ok(log.toLowerCase().includes('authorization'), 'nor the Authorization header');
  assert.not.ok(log.includes('but wrong'));
});

test('a refused handshake is one line: "no certificate" and the reason', async () => {
  // A client that does not trust the server's certificate aborts the handshake.
  await new Promise<void>((resolve) => {
    const c = tls.connect({
      host: '127.0.0.1',
      port: s.port,
      servername: 'ct110.mesh',
      ca: [] as string[],
      rejectUnauthorized: true,
    });
    c.on('error', () => resolve());
    c.on('secureConnect', () => {
      c.destroy();
      resolve();
    });
  });
  // And one that speaks plain HTTP to the TLS port.
  await new Promise<void>((resolve) => {
    const c = net.connect(s.port, '127.0.0.1', () =>
      c.write('GET / HTTP/1.1\r\nAuthorization: Bearer plain-secret-guess\r\n\r\n'),
    );
    c.on('close', () => resolve());
    c.on('error', () => resolve());
  });
  const refused = await waitFor(/ handshake refused: /);
  assert.ok(refused.length >= 2, lines().join('\n'));
  for (const l of refused)
    assert.match(
      l,
      new RegExp(`^${TS} rivet-ca serve: 127\\.0\\.0\\.1 handshake refused: no certificate — [A-Z_]+ .+$`),
    );
  assert.ok(
    refused.some((l) => / ERR_SSL_HTTP_REQUEST http request$/.test(l)),
    refused.join('\n'),
  );
  assert.not.ok(s.serveLog().includes('plain-secret-guess'));
});

test.run();
