// Section 3: the enrollment service under 32 concurrent clients, every request on a fresh TLS
// connection: /enroll with the bootstrap secret, then /renew over mTLS with certs issued 70 days
// ago (renewal opens in the last third of a cert's life, so the fresh enrolled ones are not due) —
// beside `cfssl serve` /api/v1/cfssl/authsign (HMAC-authenticated signing, plain HTTP, in-process
// Go crypto) loaded by the same client with the same CSRs.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import http from 'node:http';
import https from 'node:https';
import tls from 'node:tls';
import { createHmac, randomBytes } from 'node:crypto';
import { execa, type ResultPromise } from 'execa';
import { CLI, OSSL_ENV, SNAP, baseEnv, fresh, log, median, must, percentile, pool } from './common.ts';

export type Load = {
  requests: number;
  errors: number;
  seconds: number;
  perSecond: number;
  p50: number;
  p99: number;
  firstError?: string;
};

type Call = () => Promise<void>;

async function load(concurrency: number, calls: Call[]): Promise<Load> {
  const lat: number[] = [];
  let errors = 0;
  let firstError: string | undefined;
  const t = performance.now();
  await pool(concurrency, calls, async (call) => {
    const s = performance.now();
    try {
      await call();
      lat.push(performance.now() - s);
    } catch (err) {
      errors++;
      firstError ??= (err as Error).message;
    }
  });
  const seconds = (performance.now() - t) / 1000;
  return {
    requests: calls.length,
    errors,
    seconds,
    perSecond: (calls.length - errors) / seconds,
    p50: median(lat),
    p99: percentile(lat, 99),
    firstError,
  };
}

function post(
  mod: typeof https | typeof http,
  opts: https.RequestOptions & { secureContext?: tls.SecureContext },
  body: string,
): Promise<any> {
  return new Promise((resolve, reject) => {
    const req = mod.request(
      {
        ...opts,
        method: 'POST',
        agent: false,
        headers: { ...opts.headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          if (res.statusCode !== 200) return reject(new Error(`HTTP ${res.statusCode}: ${text.slice(0, 200)}`));
          try {
            resolve(JSON.parse(text));
          } catch {
            reject(new Error(`not JSON: ${text.slice(0, 100)}`));
          }
        });
      },
    );
    req.on('error', reject);
    req.setTimeout(30_000, () => req.destroy(new Error('timeout')));
    req.end(body);
  });
}

async function waitForLine(child: ResultPromise, re: RegExp, what: string): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    let seen = '';
    const onData = (d: Buffer) => {
      seen += d.toString();
      const m = re.exec(seen);
      if (m) resolve(m);
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.catch((err) => reject(new Error(`${what} exited: ${err.message}\n${seen}`)));
    setTimeout(() => reject(new Error(`${what} did not start: ${seen}`)), 30_000).unref();
  });
}

/**
 * Keys and CSRs made the way provision-ct makes them (lib/sign/csr.ts newKeyAndCsr from the snapshot
 * under test: `openssl req`, the CSR carrying the node profile's CN and SANs, so the CA may sign
 * concurrent requests in one run). cfssl gets the same CSRs.
 */
async function makeCsrs(dir: string, names: string[]): Promise<Array<{ name: string; key: string; csr: string }>> {
  const { newKeyAndCsr } = await import(path.join(SNAP, 'lib', 'sign', 'csr.ts'));
  const { leafProfile } = await import(path.join(SNAP, 'lib', 'sign', 'profile.ts'));
  const out: Array<{ name: string; key: string; csr: string }> = [];
  await pool(os.availableParallelism(), names, async (name) => {
    const key = path.join(dir, `${name}.key`);
    fs.writeFileSync(key, '', { mode: 0o600 });
    const { csrPem } = await newKeyAndCsr(key, 'ec-p256', leafProfile({ kind: 'node', nodeId: name }, 'mesh'));
    out.push({ name, key: fs.readFileSync(key, 'utf8'), csr: csrPem });
  });
  return out;
}

/** Certificates (CA-side keys) issued 70 days ago by one roster run, each with a CSR for its key. */
async function agedCerts(
  caDir: string,
  env: NodeJS.ProcessEnv,
  names: string[],
): Promise<Array<{ name: string; key: string; cert: string; csr: string }>> {
  const roster = path.join(caDir, '..', 'renewers.txt');
  fs.writeFileSync(roster, `${names.join('\n')}\n`);
  must(
    CLI,
    [
      'issue',
      '--roster',
      roster,
      '--not-before',
      new Date(Date.now() - 70 * 86_400_000).toISOString().replace(/\.\d+Z$/, 'Z'),
    ],
    { env },
  );
  const { csrForKey } = await import(path.join(SNAP, 'lib', 'sign', 'csr.ts'));
  const { leafProfile } = await import(path.join(SNAP, 'lib', 'sign', 'profile.ts'));
  const out: Array<{ name: string; key: string; cert: string; csr: string }> = [];
  await pool(os.availableParallelism(), names, async (name) => {
    const keyFile = path.join(caDir, 'issued', `${name}.key`);
    const csr = await csrForKey(keyFile, leafProfile({ kind: 'node', nodeId: name }, 'mesh'));
    out.push({
      name,
      key: fs.readFileSync(keyFile, 'utf8'),
      cert: fs.readFileSync(path.join(caDir, 'issued', `${name}.crt`), 'utf8'),
      csr,
    });
  });
  return out;
}

export type EnrollResult = { enroll: Load; renew: Load; cfssl: Load; clients: number };

export async function enrollBench(work: string, n: number, clients: number): Promise<EnrollResult> {
  const dir = fresh(path.join(work, 'enroll'));
  const caDir = path.join(dir, 'ca');
  const env = baseEnv(caDir);
  must(CLI, ['init'], { env });
  must(CLI, ['issue-intermediate'], { env });
  must(CLI, ['issue-node', 'ct110', '--san', 'IP:127.0.0.1'], { env });
  const secret = randomBytes(24).toString('hex');
  const chain = fs.readFileSync(path.join(caDir, 'intermediate', 'chain.pem'));
  log(`enroll: making ${n} client keys and CSRs`);
  const nodes = await makeCsrs(
    fresh(path.join(dir, 'keys')),
    Array.from({ length: n }, (_, i) => `e${i}`),
  );
  log(`renew: issuing ${n} certs dated 70 days ago for the renewal phase`);
  const renewers = await agedCerts(
    caDir,
    env,
    Array.from({ length: n }, (_, i) => `r${i}`),
  );

  // BENCH_SERVE_PROF=DIR: the service runs its bundle under `node --cpu-prof`, a profile per run in DIR.
  const prof = process.env.BENCH_SERVE_PROF;
  const [cmd, pre] = prof
    ? ['node', ['--cpu-prof', '--cpu-prof-dir', prof, path.join(SNAP, 'dist', 'rivet-ca.cjs')]]
    : [CLI, []];
  const serve = execa(
    cmd,
    [
      ...pre,
      'serve',
      '--listen',
      '127.0.0.1:0',
      '--tls-cert',
      path.join(caDir, 'issued', 'ct110.crt'),
      '--tls-key',
      path.join(caDir, 'issued', 'ct110.key'),
    ],
    { env: { ...env, RIVET_BOOTSTRAP_SECRET: secret }, reject: false },
  );
  let enroll: Load, renew: Load;
  try {
    const port = Number((await waitForLine(serve, /listening on https:\/\/[^\s]+:(\d+)/, 'rivet-ca serve'))[1]);
    // TLS contexts made before the clock starts, as a long-running client keeps them: the client
    // shares these 2 cores with the server, and re-parsing the CA and key per request is its cost,
    // not the service's. Every request is still a fresh connection with a full handshake.
    const base = {
      host: '127.0.0.1',
      port,
      servername: 'ct110.mesh',
      secureContext: tls.createSecureContext({ ca: chain }),
    };
    const certs = new Map<string, string>();
    enroll = await load(
      clients,
      nodes.map((nd) => async () => {
        const r = await post(
          https,
          { ...base, path: '/enroll', headers: { authorization: `Bearer ${secret}` } },
          JSON.stringify({ csr: nd.csr }),
        );
        certs.set(nd.name, r.cert);
      }),
    );
    log(
      `enroll: ${enroll.perSecond.toFixed(1)}/s, p99 ${Math.round(enroll.p99)} ms, ${enroll.errors} errors${enroll.firstError ? ` (first: ${enroll.firstError})` : ''}`,
    );
    const aged = renewers.map((nd) => ({
      nd,
      ctx: tls.createSecureContext({ ca: chain, key: nd.key, cert: nd.cert }),
    }));
    renew = await load(
      clients,
      aged.map(({ nd, ctx }) => async () => {
        await post(https, { ...base, path: '/renew', secureContext: ctx }, JSON.stringify({ csr: nd.csr }));
      }),
    );
    log(`renew: ${renew.perSecond.toFixed(1)}/s, p99 ${Math.round(renew.p99)} ms, ${renew.errors} errors`);
  } finally {
    serve.kill('SIGTERM');
    await serve;
  }

  // cfssl: its own throw-away CA (SEC1 EC key, which this cfssl reads), an HMAC auth key, a port.
  const cdir = fresh(path.join(dir, 'cfssl'));
  must('openssl', ['ecparam', '-genkey', '-name', 'prime256v1', '-noout', '-out', path.join(cdir, 'ca.key')], {
    env: { ...process.env, ...OSSL_ENV },
  });
  must(
    'openssl',
    [
      'req',
      '-x509',
      '-new',
      '-key',
      path.join(cdir, 'ca.key'),
      '-subj',
      '/CN=cfssl bench CA',
      '-days',
      '30',
      '-out',
      path.join(cdir, 'ca.crt'),
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ],
    { env: { ...process.env, ...OSSL_ENV } },
  );
  const hmacKey = randomBytes(16).toString('hex');
  fs.writeFileSync(
    path.join(cdir, 'config.json'),
    JSON.stringify({
      signing: { default: { auth_key: 'bench', expiry: '2160h', usages: ['digital signature', 'client auth'] } },
      auth_keys: { bench: { type: 'standard', key: hmacKey } },
    }),
  );
  const cport = 20000 + Math.floor(Math.random() * 20000);
  const cfssl = execa(
    'cfssl',
    [
      'serve',
      '-address',
      '127.0.0.1',
      '-port',
      String(cport),
      '-ca',
      path.join(cdir, 'ca.crt'),
      '-ca-key',
      path.join(cdir, 'ca.key'),
      '-config',
      path.join(cdir, 'config.json'),
    ],
    { reject: false, cwd: cdir },
  );
  let cfs: Load;
  try {
    await waitForLine(cfssl, /Now listening on|Handler set up complete/, 'cfssl serve');
    await new Promise((r) => setTimeout(r, 300));
    const key = Buffer.from(hmacKey, 'hex');
    // Twice the requests of one rivet phase, so its run is long enough to measure.
    const calls = [...nodes, ...nodes].map((nd) => async () => {
      const request = Buffer.from(JSON.stringify({ certificate_request: nd.csr }));
      const body = JSON.stringify({
        token: createHmac('sha256', key).update(request).digest('base64'),
        request: request.toString('base64'),
      });
      const r = await post(http, { host: '127.0.0.1', port: cport, path: '/api/v1/cfssl/authsign' }, body);
      if (!r.success || !r.result?.certificate) throw new Error(`cfssl: ${JSON.stringify(r.errors)}`);
    });
    cfs = await load(clients, calls);
    log(`cfssl authsign: ${cfs.perSecond.toFixed(1)}/s, p99 ${Math.round(cfs.p99)} ms, ${cfs.errors} errors`);
  } finally {
    cfssl.kill('SIGTERM');
    await cfssl;
  }
  return { enroll, renew, cfssl: cfs, clients };
}
