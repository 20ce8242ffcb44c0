// serve's GET /metrics (lib/service/metrics.ts): the Prometheus text format, parsed here line by
// line, and its numbers moving across an enroll, a refusal and a revoke done by the CLI in another
// process. On the HTTPS listener it needs a mesh client certificate; `metricsListen` serves it
// over plain HTTP for a local Prometheus.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { cli } from './helpers/ca.ts';
import { call, enrollFixture, newCsr, SECRET, type Fixture } from './helpers/enroll.ts';
import { parseCertPem } from '../lib/x509/cert.ts';
import { parseCrlBundle } from '../lib/x509/crl.ts';

type Sample = { name: string; labels: Record<string, string>; value: number };

/** The text exposition format (version 0.0.4): HELP/TYPE comments and `name{labels} value` samples. */
function parseMetrics(text: string): { samples: Sample[]; types: Map<string, string> } {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const type = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line);
    if (type) {
      types.set(type[1]!, type[2]!);
      continue;
    }
    if (/^# HELP [a-zA-Z_:][a-zA-Z0-9_:]* .+$/.test(line)) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (-?[0-9.e+-]+|NaN|\+Inf|-Inf)$/.exec(line);
    assert.ok(m, `not a sample line: ${JSON.stringify(line)}`);
    const labels: Record<string, string> = {};
    for (const l of (m![2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?/g))
      labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    samples.push({ name: m![1]!, labels, value: Number(m![3]) });
  }
  for (const s of samples) {
    const family = s.name.replace(/_(bucket|sum|count)$/, '');
    assert.ok(types.has(s.name) || types.has(family), `sample ${s.name} has no # TYPE`);
  }
  return { samples, types };
}

const value = (samples: Sample[], name: string, labels: Record<string, string> = {}) =>
  samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;

let fx: Fixture;
let metricsPort: number;

function scrape(): Promise<{ status: number; type: string; text: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port: metricsPort, path: '/metrics' }, (res) => {
        let text = '';
        res.on('data', (c: Buffer) => {
          text += c.toString();
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), text }));
      })
      .on('error', reject);
  });
}

test.before(async () => {
  fx = await enrollFixture({}, { metricsListen: { host: '127.0.0.1', port: 0 } });
  metricsPort = fx.service.metricsPort!;
});
test.after(async () => {
  await fx.close();
});

test('/metrics parses as the Prometheus text format and reports CRLs, the root-CRL series and identities', async () => {
  const r = await scrape();
  assert.is(r.status, 200);
  assert.match(r.type, /^text\/plain; version=0\.0\.4/);
  const { samples, types } = parseMetrics(r.text);
  for (const [name, type] of [
    ['rivet_ca_issued_total', 'counter'],
    ['rivet_ca_refused_total', 'counter'],
    ['rivet_ca_request_duration_seconds', 'histogram'],
    ['rivet_ca_crl_next_update_timestamp_seconds', 'gauge'],
    ['rivet_ca_root_crl_series_end_timestamp_seconds', 'gauge'],
    ['rivet_ca_certificate_not_after_timestamp_seconds', 'gauge'],
  ]) {
    assert.is(types.get(name!), type, name);
  }
  const bundle = parseCrlBundle(fs.readFileSync(fx.ca.store.crlBundle, 'utf8'));
  for (const crl of bundle)
    assert.is(
      value(samples, 'rivet_ca_crl_next_update_timestamp_seconds', { issuer: crl.issuerCNs[0]! }),
      crl.nextUpdate!.getTime() / 1000,
    );
  const seriesEnd = parseCrlBundle(fs.readFileSync(path.join(fx.ca.store.rootDir, 'crl-series.pem'), 'utf8')).at(
    -1,
  )!.nextUpdate!;
  assert.is(value(samples, 'rivet_ca_root_crl_series_end_timestamp_seconds'), seriesEnd.getTime() / 1000);
  const ct110 = parseCertPem(fs.readFileSync(fx.ca.store.issued('ct110', 'crt'), 'utf8'));
  assert.is(
    value(samples, 'rivet_ca_certificate_not_after_timestamp_seconds', { cn: 'ct110.mesh', kind: 'node' }),
    ct110.notAfter.getTime() / 1000,
  );
});

test('the counters move across an enroll, a refusal and a revoke (the CLI, another process)', async () => {
  const before = parseMetrics((await scrape()).text).samples;
  const enrolled = await call(fx, 'POST', '/enroll', {
    bearer: SECRET,
    body: { csr: (await newCsr(fx.work, 'ct120.mesh')).csr },
  });
  assert.is(enrolled.status, 200, enrolled.text);
  const wrong = await call(fx, 'POST', '/enroll', {
    bearer: 'not the secret',
    body: { csr: (await newCsr(fx.work, 'ct121.mesh')).csr },
  });
  assert.is(wrong.status, 401);
  const mid = parseMetrics((await scrape()).text).samples;
  assert.is(
    value(mid, 'rivet_ca_issued_total', { route: 'enroll' }),
    (value(before, 'rivet_ca_issued_total', { route: 'enroll' }) ?? 0) + 1,
  );
  assert.is(value(mid, 'rivet_ca_refused_total', { route: 'enroll', code: 'bad_secret' }), 1);
  assert.ok(value(mid, 'rivet_ca_request_duration_seconds_count', { route: '/enroll' })! >= 2, 'both requests timed');
  assert.is(
    value(mid, 'rivet_ca_certificate_not_after_timestamp_seconds', { cn: 'ct120.mesh', kind: 'node' }),
    Date.parse(enrolled.json.notAfter) / 1000,
  );
  const validBefore = value(mid, 'rivet_ca_certificates', { status: 'valid' })!;
  const crlBefore = value(mid, 'rivet_ca_crl_number', { issuer: 'Rivet Intermediate CA 1' })!;

  // Revoked by the operator's CLI; its push (no node server is up) fails and is recorded.
  const rev = await cli(fx.ca, ['revoke', 'ct120'], { env: { RIVET_NODE_DIR: path.join(fx.work, 'no-node-dir') } });
  assert.is(rev.exitCode, 0, rev.stderr);
  const after = parseMetrics((await scrape()).text).samples;
  assert.is(
    value(after, 'rivet_ca_certificates', { status: 'revoked' }),
    (value(mid, 'rivet_ca_certificates', { status: 'revoked' }) ?? 0) + 1,
  );
  assert.is(value(after, 'rivet_ca_certificates', { status: 'valid' }), validBefore - 1);
  assert.ok(
    value(after, 'rivet_ca_crl_number', { issuer: 'Rivet Intermediate CA 1' })! > crlBefore,
    'the intermediate CRL was re-signed',
  );
  assert.is(
    value(after, 'rivet_ca_certificate_not_after_timestamp_seconds', { cn: 'ct120.mesh' }),
    undefined,
    'no longer a live identity',
  );
  assert.is(value(after, 'rivet_ca_crl_push_ok', { node: 'ct110' }), 0, 'the failed push to ct110 is reported');
  assert.ok(value(after, 'rivet_ca_crl_push_timestamp_seconds', { node: 'ct110' })! > Date.now() / 1000 - 60);
});

test('on the HTTPS listener /metrics needs a mesh client certificate', async () => {
  const anon = await call(fx, 'GET', '/metrics');
  assert.is(anon.status, 401, anon.text);
  assert.is(anon.json.error.code, 'client_cert_required');
  const withCert = await call(fx, 'GET', '/metrics', {
    cert: fs.readFileSync(fx.ca.store.issued('ct110', 'crt')),
    key: fs.readFileSync(fx.ca.store.issued('ct110', 'key')),
  });
  assert.is(withCert.status, 200);
  assert.ok(parseMetrics(withCert.text).samples.some((s) => s.name === 'rivet_ca_issued_total'));
});

test.run();
