// Runs inside a private network namespace (`unshare -n`, set up by test/limiter.test.ts) where
// fd00:1:2:3::1 … ::10 (one /64) and fd00:1:2:4::1 (another /64) are on lo: starts the real
// `rivet-ca serve` on [::]:0, sends wrong secrets from each address, and prints the statuses as
// one JSON line. argv: CLI path, chain file. Environment: RIVET_CA_DIR etc. for serve, CSR for
// a last request with the right secret.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import { setTimeout, clearTimeout } from 'node:timers';

const [cli, chainFile] = process.argv.slice(2);
const ca = fs.readFileSync(chainFile, 'utf8');
const serve = spawn(
  cli,
  ['serve', '--listen', '[::]:0', '--tls-cert', process.env.TLS_CERT, '--tls-key', process.env.TLS_KEY],
  { stdio: ['ignore', 'pipe', 'pipe'] },
);
let err = '';
serve.stderr.on('data', (d) => {
  err += d;
});
const port = await new Promise((resolve, reject) => {
  const t = setTimeout(() => reject(new Error(`serve did not start: ${err}`)), 30_000);
  serve.stdout.on('data', (d) => {
    const m = /listening on https:\/\/\[::\]:(\d+)/.exec(String(d));
    if (m) {
      clearTimeout(t);
      resolve(Number(m[1]));
    }
  });
});

function post(localAddress, bearer, body) {
  return new Promise((resolve, reject) => {
    const payload = JSON.stringify(body);
    const req = https.request(
      {
        host: 'fd00:1:2:3::1',
        port,
        localAddress,
        family: 6,
        servername: 'ct110.mesh',
        ca,
        method: 'POST',
        path: '/enroll',
        agent: false,
        headers: {
          authorization: `Bearer ${bearer}`,
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(payload),
        },
      },
      (res) => {
        let text = '';
        res.on('data', (c) => {
          text += c;
        });
        res.on('end', () =>
          resolve({
            from: localAddress,
            status: res.statusCode,
            retryAfter: res.headers['retry-after'] ?? null,
            message: JSON.parse(text).error?.message ?? null,
          }),
        );
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

const out = [];
try {
  const csr = process.env.CSR;
  for (let i = 1; i <= 10; i++) out.push(await post(`fd00:1:2:3::${i.toString(16)}`, `wrong-${i}`, { csr }));
  out.push(await post('fd00:1:2:3::ab', 'wrong-11', { csr })); // the 11th address of that /64
  out.push(await post('fd00:1:2:4::1', 'wrong-other-64', { csr }));
  out.push(await post('fd00:1:2:4::1', process.env.SECRET, { csr }));
} finally {
  serve.kill('SIGTERM');
}
process.stdout.write(`${JSON.stringify(out)}\n`);
