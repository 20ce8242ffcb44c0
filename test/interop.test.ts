// Interop: what we issue is judged by implementations we did not write. One CA made with the real
// CLI; ten certificate/purpose cases (good node and agent certs for their purposes; revoked, expired,
// wrong-EKU and foreign-CA certs); five verifiers. Every verifier must agree with the expected
// verdict on every case, and with our own `rivet-ca verify`. The matrix is printed at the end.
//
//   openssl verify -x509_strict -crl_check_all     (OpenSSL's verifier, CRLs for the whole chain)
//   GnuTLS certtool --verify (+ --verify-chain)      (GnuTLS's verifier with CRLs and key purpose)
//   GnuTLS gnutls-cli                                (a TLS client: checks a server's cert; presents
//                                                     a client cert to a server built from lib/)
//   Python cryptography x509.verification            (RFC 5280 path building; revocation checked
//                                                     with cryptography's CRL API on the built chain,
//                                                     since its verifier has no CRL support)
//   nginx ssl_verify_client on + ssl_crl, and curl   (nginx judges client certs; curl judges servers)
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { execa, type ResultPromise } from 'execa';
import { cli, tempDir, type CliResult } from './helpers/ca.ts';
import { loadMeshTls, meshServerOptions, peerIdentity } from '../lib/index.ts';

type Purpose = 'server' | 'client';
type Case = {
  name: string;
  cn: string;
  ca: 'ours' | 'foreign';
  purpose: Purpose;
  host: string;
  accept: boolean;
  why: string;
};

const CASES: Case[] = [
  { name: 'node as server', cn: 'ct111', ca: 'ours', purpose: 'server', host: 'ct111.mesh', accept: true, why: 'good' },
  { name: 'node as client', cn: 'ct111', ca: 'ours', purpose: 'client', host: 'ct111.mesh', accept: true, why: 'good' },
  {
    name: 'agent as client',
    cn: 'opus@ct111',
    ca: 'ours',
    purpose: 'client',
    host: 'ct111.mesh',
    accept: true,
    why: 'good',
  },
  {
    name: 'agent as server',
    cn: 'opus@ct111',
    ca: 'ours',
    purpose: 'server',
    host: 'ct111.mesh',
    accept: false,
    why: 'wrong EKU',
  },
  {
    name: 'revoked node as server',
    cn: 'ct112',
    ca: 'ours',
    purpose: 'server',
    host: 'ct112.mesh',
    accept: false,
    why: 'revoked',
  },
  {
    name: 'revoked agent as client',
    cn: 'haiku@ct112',
    ca: 'ours',
    purpose: 'client',
    host: 'ct112.mesh',
    accept: false,
    why: 'revoked',
  },
  {
    name: 'expired node as server',
    cn: 'ct113',
    ca: 'ours',
    purpose: 'server',
    host: 'ct113.mesh',
    accept: false,
    why: 'expired',
  },
  {
    name: 'expired agent as client',
    cn: 'old@ct113',
    ca: 'ours',
    purpose: 'client',
    host: 'ct113.mesh',
    accept: false,
    why: 'expired',
  },
  {
    name: 'foreign-CA node as server',
    cn: 'ct111',
    ca: 'foreign',
    purpose: 'server',
    host: 'ct111.mesh',
    accept: false,
    why: 'foreign CA',
  },
  {
    name: 'foreign-CA agent as client',
    cn: 'opus@ct111',
    ca: 'foreign',
    purpose: 'client',
    host: 'ct111.mesh',
    accept: false,
    why: 'foreign CA',
  },
];

let home: string;
let ours: string;
let foreign: string;
const stops: Array<() => Promise<void>> = [];
const matrix = new Map<string, Map<string, boolean>>(); // verifier → case → agreed

const certOf = (c: Case) => path.join(c.ca === 'ours' ? ours : foreign, 'issued', `${c.cn}.crt`);
const keyOf = (c: Case) => path.join(c.ca === 'ours' ? ours : foreign, 'issued', `${c.cn}.key`);
const rootPem = () => path.join(ours, 'root', 'ca.crt');
const intPem = () => path.join(ours, 'intermediate', 'int.crt');
const crlBundle = () => path.join(ours, 'crl.pem');

function must(r: CliResult, what: string): void {
  if (r.exitCode !== 0) throw new Error(`${what} failed (${r.exitCode}): ${r.stderr}${r.stdout}`);
}

test.before(async () => {
  home = await tempDir('rivet-interop-');
  ours = path.join(home, 'ca');
  foreign = path.join(home, 'foreign');
  const back = new Date(Date.now() - 3 * 86_400_000).toISOString().replace(/\.\d+Z$/, 'Z');
  for (const [dir, steps] of [
    // --no-uri-constraint: Python cryptography refuses every chain whose CA constrains URIs (by
    // design, pyca/cryptography#10570), so this matrix judges DNS and IP constraints only. The
    // default, URI-constrained CA is judged in test/name-constraints.test.ts, Python's refusal pinned.
    [
      ours,
      [
        ['init'],
        ['issue-intermediate', '--no-uri-constraint'],
        ['issue-node', 'ct110'],
        ['issue-node', 'ct111'],
        ['issue-agent', 'opus@ct111'],
        ['issue-node', 'ct112'],
        ['issue-agent', 'haiku@ct112'],
        ['revoke', 'ct112', '--reason', 'keyCompromise', '--node-only', '--no-push'],
        ['revoke', 'haiku@ct112', '--no-push'],
        ['issue-node', 'ct113', '--days', '1', '--not-before', back],
        ['issue-agent', 'old@ct113', '--days', '1', '--not-before', back],
      ],
    ],
    [foreign, [['init'], ['issue-intermediate'], ['issue-node', 'ct111'], ['issue-agent', 'opus@ct111']]],
  ] as Array<[string, string[][]]>) {
    for (const args of steps) must(await cli(dir, args), `${path.basename(dir)}: ${args.join(' ')}`);
  }
});

test.after(async () => {
  // Every server this file started stops here, each within 5 s, even after a failure.
  for (const stop of stops.reverse())
    await Promise.race([stop().catch(() => {}), new Promise((r) => setTimeout(r, 5_000).unref())]);
  const names = CASES.map((c) => c.name);
  const rows = [...matrix.entries()].map(
    ([v, m]) =>
      `  ${v.padEnd(34)} ${names.map((n) => (m.has(n) ? (m.get(n) ? 'agree' : 'DISAGREE') : '-').padEnd(9)).join('')}`,
  );
  process.stdout.write(
    `\ninterop matrix (verifier × case):\n  ${''.padEnd(34)} ${names.map((_, i) => `#${i + 1}`.padEnd(9)).join('')}\n${rows.join('\n')}\n` +
      names
        .map((n, i) => `  #${i + 1} ${n} → ${CASES[i]!.accept ? 'accept' : `refuse (${CASES[i]!.why})`}`)
        .join('\n') +
      '\n',
  );
});

/** Records the verdict and returns a line for the failure message when it disagrees. */
function judge(verifier: string, c: Case, accepted: boolean, detail: string, expected = c.accept): string | undefined {
  const m = matrix.get(verifier) ?? new Map<string, boolean>();
  matrix.set(verifier, m);
  m.set(c.name, accepted === expected);
  return accepted === expected
    ? undefined
    : `${verifier} ${accepted ? 'ACCEPTED' : 'REFUSED'} "${c.name}" (want ${expected ? 'accept' : 'refuse'}): ${detail.trim().slice(0, 400)}`;
}

function report(problems: Array<string | undefined>): void {
  const bad = problems.filter(Boolean);
  assert.equal(bad, [], bad.join('\n'));
}

test('rivet-ca verify (our own verdict) matches the expected one on every case', async () => {
  const problems = [];
  for (const c of CASES) {
    const r = await cli(ours, [
      'verify',
      certOf(c),
      ...(c.purpose === 'server' ? ['--server-name', c.host] : ['--client']),
    ]);
    problems.push(judge('rivet-ca verify', c, r.exitCode === 0, r.stdout + r.stderr));
  }
  report(problems);
});

test('openssl verify -x509_strict -crl_check_all agrees on every case', async () => {
  const problems = [];
  for (const c of CASES) {
    const r = await execa(
      'openssl',
      [
        'verify',
        '-x509_strict',
        '-crl_check_all',
        '-CAfile',
        rootPem(),
        '-untrusted',
        intPem(),
        '-CRLfile',
        crlBundle(),
        '-purpose',
        c.purpose === 'server' ? 'sslserver' : 'sslclient',
        ...(c.purpose === 'server' ? ['-verify_hostname', c.host] : []),
        certOf(c),
      ],
      { reject: false, env: { OPENSSL_CONF: '/dev/null' } },
    );
    const out = `${r.stdout}\n${r.stderr}`;
    problems.push(judge('openssl verify', c, r.exitCode === 0, out));
    const reason = {
      'wrong EKU': /unsuitable certificate purpose|unsupported certificate purpose/,
      revoked: /certificate revoked/,
      expired: /certificate has expired/,
      'foreign CA': /unable to get local issuer certificate|certificate signature failure/,
    }[c.why];
    if (!c.accept && r.exitCode !== 0 && reason && !reason.test(out))
      problems.push(`openssl verify refused "${c.name}" for another reason: ${out}`);
  }
  report(problems);
});

test('GnuTLS certtool --verify (CA + CRL bundle + key purpose) and --verify-chain agree', async () => {
  const problems = [];
  const chain = path.join(home, 'certtool-chain.pem');
  for (const c of CASES) {
    const purpose = c.purpose === 'server' ? '1.3.6.1.5.5.7.3.1' : '1.3.6.1.5.5.7.3.2';
    const r = await execa(
      'certtool',
      [
        '--verify',
        '--load-ca-certificate',
        rootPem(),
        '--load-crl',
        crlBundle(),
        '--verify-purpose',
        purpose,
        // No name for the wrong-EKU case, so that the purpose alone must refuse it.
        ...(c.purpose === 'server' && c.why !== 'wrong EKU' ? ['--verify-hostname', c.host] : []),
        '--infile',
        certOf(c),
      ],
      { reject: false },
    );
    const out = `${r.stdout}\n${r.stderr}`;
    if (c.why === 'wrong EKU' && !/does not match the intended purpose/.test(out))
      problems.push(`certtool refused "${c.name}" for another reason than its purpose: ${out}`);
    problems.push(
      judge(
        'gnutls certtool --verify',
        c,
        r.exitCode === 0 && /Verified\. The certificate is trusted/.test(out),
        out
          .split('\n')
          .filter((l) => /verif/i.test(l))
          .join(' '),
      ),
    );
    // --verify-chain takes no trust anchor, CRL or purpose: it checks the signatures and validity
    // periods along leaf → our intermediate → our root. So it must refuse only expired and foreign.
    await fsp.writeFile(
      chain,
      fs.readFileSync(certOf(c), 'utf8').split(/(?<=-----END CERTIFICATE-----\n)/)[0]! +
        fs.readFileSync(intPem(), 'utf8') +
        fs.readFileSync(rootPem(), 'utf8'),
    );
    const ch = await execa('certtool', ['--verify-chain', '--infile', chain], { reject: false });
    problems.push(
      judge(
        'gnutls certtool --verify-chain',
        c,
        ch.exitCode === 0,
        `${ch.stdout}\n${ch.stderr}`,
        c.why === 'good' || c.why === 'revoked' || c.why === 'wrong EKU',
      ),
    );
  }
  report(problems);
});

/** A TLS server presenting `cert` (no client auth): the thing a TLS client verifies. */
async function presenter(cert: string, key: string): Promise<number> {
  const sockets = new Set<net.Socket>();
  const server = tls.createServer({ cert: fs.readFileSync(cert), key: fs.readFileSync(key) }, (s) => {
    s.on('error', () => {});
    s.end('HTTP/1.0 200 OK\r\ncontent-type: text/plain\r\n\r\nserved\n');
  });
  server.on('tlsClientError', () => {});
  server.on('connection', (s: net.Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  stops.push(
    () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  );
  return (server.address() as AddressInfo).port;
}

/** A mesh server built only from lib/ (loadMeshTls + meshServerOptions), as ct110. */
async function libServer(): Promise<number> {
  const dir = path.join(home, 'node-ct110');
  await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
  await fsp.copyFile(path.join(ours, 'issued', 'ct110.key'), path.join(dir, 'node.key'));
  await fsp.copyFile(path.join(ours, 'issued', 'ct110.crt'), path.join(dir, 'node.crt'));
  await fsp.copyFile(path.join(ours, 'intermediate', 'chain.pem'), path.join(dir, 'rivet-ca.crt'));
  await fsp.copyFile(crlBundle(), path.join(dir, 'crl.pem'));
  const server = https.createServer(meshServerOptions(loadMeshTls({ dir, domain: 'mesh' } as never)), (req, res) => {
    try {
      res.writeHead(200).end(`whoami ${peerIdentity(req.socket as tls.TLSSocket).cn}\n`);
    } catch (err) {
      res.writeHead(403).end(String(err));
    }
  });
  server.on('tlsClientError', () => {});
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  stops.push(
    () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return (server.address() as AddressInfo).port;
}

test('gnutls-cli: verifies our server certs (CRL, purpose, name) and its client certs pass our lib server', async () => {
  const problems = [];
  const mesh = await libServer();
  for (const c of CASES) {
    // GnuTLS checks each CRL against the trust list as it loads them, so it gets what a node
    // installs as rivet-ca.crt (intermediate + root, DESIGN §2), not the root alone.
    const common = ['--x509cafile', path.join(ours, 'intermediate', 'chain.pem'), '--x509crlfile', crlBundle()];
    const args =
      c.purpose === 'server'
        ? [
            '--port',
            String(await presenter(certOf(c), keyOf(c))),
            '--sni-hostname',
            c.host,
            '--verify-hostname',
            c.host,
            ...common,
            '127.0.0.1',
          ]
        : [
            '--port',
            String(mesh),
            '--sni-hostname',
            'ct110.mesh',
            '--verify-hostname',
            'ct110.mesh',
            ...common,
            '--x509certfile',
            certOf(c),
            '--x509keyfile',
            keyOf(c),
            '127.0.0.1',
          ];
    const r = await execa('gnutls-cli', args, {
      reject: false,
      input: 'GET / HTTP/1.0\r\nHost: x\r\n\r\n',
      timeout: 20_000,
    });
    const out = `${r.stdout}\n${r.stderr}`;
    const ok =
      r.exitCode === 0 &&
      (c.purpose === 'server'
        ? /served/.test(out)
        : new RegExp(`whoami ${c.cn === 'ct111' ? 'ct111\\.mesh' : c.cn}`).test(out));
    problems.push(
      judge(
        c.purpose === 'server' ? 'gnutls-cli (judges server)' : 'gnutls-cli → lib server (client)',
        c,
        ok,
        out
          .split('\n')
          .filter((l) => /\*\*\*|verif|error|alert/i.test(l))
          .join(' | '),
      ),
    );
  }
  report(problems);
});

const PY = String.raw`
import json, re, sys, datetime
from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store, DNSName, VerificationError
req = json.load(sys.stdin)
now = datetime.datetime.now(datetime.timezone.utc)
store = Store(x509.load_pem_x509_certificates(open(req['root'], 'rb').read()))
pem = open(req['crl'], 'rb').read()
crls = [x509.load_pem_x509_crl(m) for m in re.findall(rb'-----BEGIN X509 CRL-----.+?-----END X509 CRL-----\n?', pem, re.S)]
out = {}
for c in req['cases']:
    certs = x509.load_pem_x509_certificates(open(c['cert'], 'rb').read())
    try:
        builder = PolicyBuilder().store(store).time(now)
        if c['purpose'] == 'server':
            chain = builder.build_server_verifier(DNSName(c['host'])).verify(certs[0], certs[1:])
        else:
            chain = builder.build_client_verifier().verify(certs[0], certs[1:]).chain
        # What crl_check_all does: every non-root cert of the verified chain needs a CRL from its
        # issuer, signed by it, current, and not listing its serial.
        for cert, issuer in zip(chain, chain[1:]):
            good = [l for l in crls if l.issuer == issuer.subject and l.is_signature_valid(issuer.public_key())]
            if not good: raise VerificationError('no CRL signed by ' + issuer.subject.rfc4514_string())
            if good[0].next_update_utc is None or good[0].next_update_utc < now: raise VerificationError('CRL lapsed')
            if good[0].get_revoked_certificate_by_serial_number(cert.serial_number) is not None: raise VerificationError('revoked: ' + cert.subject.rfc4514_string())
        out[c['name']] = {'ok': True, 'why': ' <- '.join(x.subject.rfc4514_string() for x in chain)}
    except VerificationError as e:
        out[c['name']] = {'ok': False, 'why': str(e)}
print(json.dumps(out))
`;

test("Python cryptography's RFC 5280 verifier (server and client policies) agrees on every case", async () => {
  const probe = await execa(
    'python3',
    [
      '-c',
      'import cryptography, cryptography.x509.verification as v; v.PolicyBuilder.build_client_verifier; print(cryptography.__version__)',
    ],
    { reject: false },
  );
  assert.is(
    probe.exitCode,
    0,
    `python3 with cryptography >= 43 (x509.verification with client verifier) is required — run test/setup/install-deps.sh: ${probe.stderr}`,
  );
  const input = JSON.stringify({
    root: rootPem(),
    crl: crlBundle(),
    cases: CASES.map((c) => ({ name: c.name, cert: certOf(c), purpose: c.purpose, host: c.host })),
  });
  const r = await execa('python3', ['-c', PY], { input, reject: false });
  assert.is(r.exitCode, 0, r.stderr);
  const verdicts = JSON.parse(String(r.stdout)) as Record<string, { ok: boolean; why: string }>;
  report(
    CASES.map((c) =>
      judge(`python cryptography ${String(probe.stdout).trim()}`, c, verdicts[c.name]!.ok, verdicts[c.name]!.why),
    ),
  );
});

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const { port } = s.address() as AddressInfo;
  await new Promise((resolve) => s.close(resolve));
  return port;
}

async function waitForPort(port: number, child: ResultPromise, log: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null && child.exitCode !== undefined) break;
    const up = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (up) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nginx did not listen on ${port}: ${fs.existsSync(log) ? fs.readFileSync(log, 'utf8') : ''}`);
}

test('nginx (ssl_verify_client on + ssl_crl bundle, depth 2) judges client certs; curl judges nginx serving ours', async () => {
  const prefix = path.join(home, 'nginx');
  await fsp.mkdir(path.join(prefix, 'tmp'), { recursive: true });
  const mtlsPort = await freePort();
  const serverCases = CASES.filter((c) => c.purpose === 'server');
  const ports = new Map<Case, number>();
  for (const c of serverCases) ports.set(c, await freePort());
  const p = (f: string) => JSON.stringify(f);
  const conf = `daemon off;
master_process off;
worker_processes 1;
pid ${p(path.join(prefix, 'nginx.pid'))};
error_log ${p(path.join(prefix, 'error.log'))} info;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path ${p(path.join(prefix, 'tmp'))}; proxy_temp_path ${p(path.join(prefix, 'tmp'))}; fastcgi_temp_path ${p(path.join(prefix, 'tmp'))};
  uwsgi_temp_path ${p(path.join(prefix, 'tmp'))}; scgi_temp_path ${p(path.join(prefix, 'tmp'))};
  server {
    listen 127.0.0.1:${mtlsPort} ssl;
    server_name ct110.mesh;
    ssl_certificate ${p(path.join(ours, 'issued', 'ct110.crt'))};
    ssl_certificate_key ${p(path.join(ours, 'issued', 'ct110.key'))};
    ssl_client_certificate ${p(path.join(ours, 'intermediate', 'chain.pem'))};
    ssl_verify_client on;
    ssl_verify_depth 2;
    ssl_crl ${p(crlBundle())};
    location / { return 200 "client $ssl_client_s_dn\\n"; }
  }
${serverCases
  .map(
    (c) => `  server {
    listen 127.0.0.1:${ports.get(c)} ssl;
    ssl_certificate ${p(certOf(c))};
    ssl_certificate_key ${p(keyOf(c))};
    location / { return 200 "served\\n"; }
  }`,
  )
  .join('\n')}
}
`;
  const confFile = path.join(prefix, 'nginx.conf');
  await fsp.writeFile(confFile, conf);
  const errorLog = path.join(prefix, 'error.log');
  const nginx = execa('nginx', ['-p', prefix, '-c', confFile, '-e', errorLog], { reject: false, stdio: 'ignore' });
  stops.push(async () => {
    nginx.kill('SIGTERM');
    const t = setTimeout(() => nginx.kill('SIGKILL'), 3_000);
    await nginx;
    clearTimeout(t);
  });
  await waitForPort(mtlsPort, nginx, errorLog);
  for (const port of ports.values()) await waitForPort(port, nginx, errorLog);

  const problems = [];
  for (const c of CASES) {
    const args =
      c.purpose === 'client'
        ? [
            '--cacert',
            rootPem(),
            '--resolve',
            `ct110.mesh:${mtlsPort}:127.0.0.1`,
            '--cert',
            certOf(c),
            '--key',
            keyOf(c),
            `https://ct110.mesh:${mtlsPort}/`,
          ]
        : [
            '--cacert',
            rootPem(),
            '--crlfile',
            crlBundle(),
            '--resolve',
            `${c.host}:${ports.get(c)}:127.0.0.1`,
            `https://${c.host}:${ports.get(c)}/`,
          ];
    const r = await execa('curl', ['-sS', '--max-time', '10', '-w', '\nHTTP %{http_code}\n', ...args], {
      reject: false,
    });
    const out = `${r.stdout}\n${r.stderr}`;
    const ok =
      r.exitCode === 0 &&
      /HTTP 200/.test(out) &&
      (c.purpose === 'server' ? /served/.test(out) : /client .*CN=/.test(out));
    problems.push(
      judge(
        c.purpose === 'client' ? 'nginx ssl_verify_client (judges client)' : 'curl → nginx (judges server)',
        c,
        ok,
        out,
      ),
    );
  }
  report(problems);
});

test('every verifier agreed with the expected verdict on every case it judged', () => {
  const disagreements = [...matrix.entries()].flatMap(([v, m]) =>
    [...m.entries()].filter(([, ok]) => !ok).map(([n]) => `${v}: ${n}`),
  );
  assert.equal(disagreements, []);
  assert.ok(matrix.size >= 7, `verifiers that ran: ${[...matrix.keys()].join(', ')}`);
});

test.run();
