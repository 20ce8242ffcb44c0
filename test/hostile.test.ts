// The hostile-input corpus (test/hostile/*.jsonl, one case a line) against every surface that takes
// input: the CLI's arguments and files, the CSR path (`rivet-ca sign` and POST /enroll, each CSR case
// on both) and the HTTP API. Every case must get a clear error (exit 2 with one line / a 4xx with the
// right code), never a crash (no 5xx, no stack trace, the service still healthy), and leave the CA
// byte-identical (for the HTTP API: everything except audit.log, which records refusals).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { cli, snapshot } from './helpers/ca.ts';
import { enrollFixture, caState, SECRET, type Fixture } from './helpers/enroll.ts';
import { forgeCsrDer, toPem, type CsrSpec } from './hostile/forge.ts';
import { corpus, expandDeep } from './hostile/corpus.ts';

type CliCase = { name: string; args: string[]; files?: Record<string, string>; err: string };
type CsrCase = {
  name: string;
  spec: CsrSpec;
  wrap?: string;
  sign: { err?: string; issued?: boolean };
  enroll: { status?: number; code?: string; issued?: boolean };
};
type HttpCase = {
  name: string;
  method: string;
  path: string;
  auth?: 'secret';
  headers?: Record<string, string>;
  body?: string;
  bodyHex?: string;
  json?: unknown;
  csr?: string;
  sans?: string[];
  sansRepeat?: [string, number];
  raw?: string;
  status: number;
  code?: string;
};

const cliCases = corpus<CliCase>('cli.jsonl');
const csrCases = corpus<CsrCase>('csr.jsonl');
const httpCases = corpus<HttpCase>('http.jsonl');
const counts = { cli: 0, sign: 0, enroll: 0, http: 0 };

let fx: Fixture;
let work: string;
test.before(async () => {
  fx = await enrollFixture({ bodyTimeoutMs: 1_500, headersTimeoutMs: 1_500, maxFailures: 100_000 });
  work = fx.work;
  const r = await cli(fx.ca, ['issue-node', 'ct111']);
  assert.is(r.exitCode, 0, r.stderr);
});
test.after(async () => {
  await fx.close();
  const total = counts.cli + counts.sign + counts.enroll + counts.http;
  process.stdout.write(
    `\nhostile corpus: ${total} cases passed — CLI ${counts.cli}, CSR via sign ${counts.sign}, CSR via /enroll ${counts.enroll}, HTTP API ${counts.http}\n`,
  );
});

if (process.env.HOSTILE_LOG)
  test.before.each((ctx) => {
    process.stderr.write(`hostile: ${ctx.__test__}\n`);
  });

const STACK = /\n\s+at .+[:(]\d+|at .*\.(ts|js|mjs):\d+/;

function assertOneLineRefusal(r: { exitCode: number; stderr: string }, err: string, what: string) {
  assert.is(r.exitCode, 2, `${what}: exit code, stderr: ${r.stderr}`);
  assert.match(r.stderr, /^rivet-ca: /, `${what}: message leaves by the one door`);
  assert.not.match(r.stderr.trimEnd(), /\n/, `${what}: one line: ${r.stderr}`);
  assert.not.match(r.stderr, STACK, `${what}: no stack trace`);
  assert.match(r.stderr, new RegExp(err, 'u'), `${what}: message`);
}

// ---- CLI ----
const validCsr = async () => toPem(await forgeCsrDer({ cns: ['x.mesh'] }));
cliCases.forEach((raw, i) => {
  test(`CLI refuses ${raw.name}`, async () => {
    const c = expandDeep(raw, `hc${i}`);
    const dir = fs.mkdtempSync(path.join(work, 'cli-'));
    const files: Record<string, string> = {};
    for (const [name, content] of Object.entries(c.files ?? {}))
      fs.writeFileSync((files[name] = path.join(dir, name)), content);
    if (!files.csr) fs.writeFileSync((files.csr = path.join(dir, 'csr')), await validCsr());
    const args = c.args.map((a) => (a === '{dir:}' ? dir : a.replace(/^\{file:(\w+)\}$/, (_, n: string) => files[n]!)));
    const before = snapshot(fx.ca.store.dir);
    const r = await cli(fx.ca, args);
    assertOneLineRefusal(r, c.err, c.name);
    assert.equal(snapshot(fx.ca.store.dir), before, 'CA directory byte-identical');
    counts.cli++;
  });
});

// ---- CSR path: sign and /enroll ----
/** How a forged DER reaches the CA: the corpus names the damage. */
function wrap(der: Buffer, how = 'pem'): Buffer {
  const pem = toPem(der);
  const body = der.subarray(der[1]! & 0x80 ? 2 + (der[1]! & 0x7f) : 2);
  switch (how) {
    case 'pem':
      return Buffer.from(pem);
    case 'truncate-half':
      return Buffer.from(toPem(der.subarray(0, der.length >> 1)));
    case 'cut-pem':
      return Buffer.from(pem.slice(0, pem.length >> 1));
    case 'der':
      return der;
    case 'label-certificate':
      return Buffer.from(toPem(der, 'CERTIFICATE'));
    case 'two':
      return Buffer.from(pem + pem);
    case 'empty':
      return Buffer.from('-----BEGIN CERTIFICATE REQUEST-----\n-----END CERTIFICATE REQUEST-----\n');
    case 'nul-inside':
      return Buffer.from(`${pem.slice(0, 70)}\0\0${pem.slice(70)}`);
    case 'der-trailing':
      return Buffer.from(toPem(Buffer.concat([der, Buffer.from('garbage')])));
    case 'indefinite':
      return Buffer.from(toPem(Buffer.concat([Buffer.from([0x30, 0x80]), body, Buffer.from([0, 0])])));
    case 'huge-length':
      return Buffer.from(toPem(Buffer.concat([Buffer.from([0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), body])));
    case 'oversized':
      return Buffer.from(`${'x'.repeat(70_000)}\n${pem}`);
    default:
      throw new Error(`unknown wrap ${how}`);
  }
}

/** An issued leaf that ignored everything in the CSR but its key: CA:FALSE, only the profile's names. */
function assertProfileOnly(pem: string, node: string) {
  const leaf = new X509Certificate(pem);
  assert.is(leaf.ca, false, 'leaf is CA:FALSE');
  assert.is(leaf.subject, `CN=${node}.mesh`);
  assert.is(
    leaf.subjectAltName,
    `DNS:${node}.mesh, DNS:${node}-mcp.mesh, DNS:${node}-runtime-rpc.mesh, URI:spiffe://mesh/node/${node}`,
  );
}

csrCases.forEach((raw, i) => {
  test(`sign: ${raw.name} → ${raw.sign.issued ? 'issued as --as, CSR content ignored' : 'refused'}`, async () => {
    const node = `hs${i}`;
    const c = expandDeep(raw, node);
    const file = path.join(work, `sign-${i}.csr`);
    fs.writeFileSync(file, wrap(await forgeCsrDer(c.spec), c.wrap));
    const before = snapshot(fx.ca.store.dir);
    const r = await cli(fx.ca, ['sign', file, '--as', node]);
    if (c.sign.issued) {
      assert.is(r.exitCode, 0, r.stderr);
      assertProfileOnly(fs.readFileSync(fx.ca.store.issued(node, 'crt'), 'utf8'), node);
    } else {
      assertOneLineRefusal(r, c.sign.err!, c.name);
      assert.equal(snapshot(fx.ca.store.dir), before, 'CA directory byte-identical');
    }
    counts.sign++;
  });

  test(`/enroll: ${raw.name} → ${raw.enroll.issued ? 'issued, CSR content ignored' : `${raw.enroll.status} ${raw.enroll.code}`}`, async () => {
    const node = `he${i}`;
    const c = expandDeep(raw, node);
    const csr = wrap(await forgeCsrDer(c.spec), c.wrap).toString('latin1');
    const before = caState(fx.ca);
    const r = await request({
      method: 'POST',
      path: '/enroll',
      headers: { authorization: `Bearer ${SECRET}`, 'content-type': 'application/json' },
      body: Buffer.from(JSON.stringify({ csr })),
    });
    assert.not.match(r.text, STACK, 'no stack trace');
    if (c.enroll.issued) {
      assert.is(r.status, 200, r.text);
      assertProfileOnly(JSON.parse(r.text).cert, node);
    } else {
      assert.is(r.status, c.enroll.status!, r.text);
      assert.is(JSON.parse(r.text).error.code, c.enroll.code, r.text);
      assert.equal(caState(fx.ca), before, 'CA state byte-identical but for audit.log');
    }
    await assertHealthy();
    counts.enroll++;
  });
});

// ---- HTTP API ----
type Reply = { status: number; text: string; head: string };

/**
 * One request over a raw TLS socket, so the corpus can send what a well-behaved client library
 * would refuse to (control characters, conflicting framing, lies about the length).
 */
function request(opts: {
  method: string;
  path: string;
  headers?: Record<string, string>;
  body?: Buffer;
  raw?: string;
}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const socket = tls.connect(
      { host: '127.0.0.1', port: fx.service.port, servername: 'ct110.mesh', ca: fx.chain },
      () => {
        if (opts.raw !== undefined) return void socket.write(opts.raw);
        const head = [
          `${opts.method} ${opts.path} HTTP/1.1`,
          'Host: ct110.mesh',
          'Connection: close',
          ...Object.entries(opts.headers ?? {}).map(([k, v]) => `${k}: ${v}`),
          ...(opts.body ? [`Content-Length: ${opts.body.length}`] : []),
        ].join('\r\n');
        socket.write(`${head}\r\n\r\n`);
        if (opts.body) socket.write(opts.body);
      },
    );
    const guard = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no complete reply within 20 s to ${opts.method} ${opts.path}`));
    }, 20_000);
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.on('error', () => {
      /* a reset after the reply is fine */
    });
    socket.on('close', () => {
      clearTimeout(guard);
      const all = Buffer.concat(chunks).toString('utf8');
      const split = all.indexOf('\r\n\r\n');
      const head = split < 0 ? all : all.slice(0, split);
      let text = split < 0 ? '' : all.slice(split + 4);
      if (/transfer-encoding: chunked/i.test(head)) {
        let out = '';
        for (let rest = text; ;) {
          const nl = rest.indexOf('\r\n');
          const n = parseInt(rest.slice(0, nl), 16);
          if (!(n > 0)) break;
          out += rest.slice(nl + 2, nl + 2 + n);
          rest = rest.slice(nl + 4 + n);
        }
        text = out;
      }
      resolve({ status: Number(/^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1] ?? 0), text, head });
    });
  });
}

async function assertHealthy() {
  const r = await request({ method: 'GET', path: '/healthz' });
  assert.is(r.status, 200, `service healthy afterwards: ${r.text}`);
}

httpCases.forEach((raw, i) => {
  test(`HTTP API: ${raw.name} → ${raw.status}${raw.code ? ` ${raw.code}` : ''}`, async () => {
    const node = `hh${i}`;
    const c = expandDeep(raw, node);
    const headers: Record<string, string> = {
      ...(c.auth === 'secret' ? { authorization: `Bearer ${SECRET}` } : {}),
      ...c.headers,
    };
    let body: Buffer | undefined;
    if (c.body !== undefined) body = Buffer.from(c.body);
    if (c.bodyHex !== undefined) body = Buffer.from(c.bodyHex, 'hex');
    if (c.json !== undefined) body = Buffer.from(JSON.stringify(c.json));
    if (c.csr !== undefined) {
      const sans = c.sansRepeat ? Array.from({ length: c.sansRepeat[1] }, () => c.sansRepeat![0]) : c.sans;
      body = Buffer.from(JSON.stringify({ csr: toPem(await forgeCsrDer({ cns: [c.csr] })), sans }));
    }
    if (body) headers['content-type'] ??= 'application/json';
    const before = caState(fx.ca);
    const r = await request({ method: c.method, path: c.path, headers, body, raw: c.raw });
    assert.is(r.status, c.status, `${r.head}\n${r.text}`);
    assert.ok(r.status < 500, 'no 5xx');
    assert.not.match(r.text, STACK, 'no stack trace');
    assert.not.ok(r.text.includes(SECRET), 'the secret is never echoed');
    if (c.code) assert.is(JSON.parse(r.text).error.code, c.code, r.text);
    assert.equal(caState(fx.ca), before, 'CA state byte-identical but for audit.log');
    await assertHealthy();
    counts.http++;
  });
});

test('the corpus holds at least 60 cases, and every one ran', () => {
  const total = cliCases.length + 2 * csrCases.length + httpCases.length;
  assert.ok(total >= 60, `corpus has ${total} cases`);
  assert.equal(counts, {
    cli: cliCases.length,
    sign: csrCases.length,
    enroll: csrCases.length,
    http: httpCases.length,
  });
});

test.run();
