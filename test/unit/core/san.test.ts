import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseSan, parseCidrs, checkNodeSanPolicy, DEFAULT_SAN_CIDRS } from '../../../lib/core/san.ts';
import { meshDomain, nodeId } from '../../../lib/core/identity.ts';
import { UsageError } from '../../../lib/core/errors.ts';

const cidrs = parseCidrs(DEFAULT_SAN_CIDRS);
const policy = (s: string) => checkNodeSanPolicy(parseSan(s), nodeId('ct111'), meshDomain('mesh'), cidrs);

test('parses DNS and IP SANs into canonical form', () => {
  assert.equal({ ...parseSan('DNS:ct111.lan') }, { type: 'DNS', value: 'ct111.lan' });
  assert.equal({ ...parseSan('IP:0:0:0:0:0:0:0:1') }, { type: 'IP', value: '::1' });
  assert.equal({ ...parseSan('ip:10.0.0.1') }, { type: 'IP', value: '10.0.0.1' });
});
test('refuses upper-case DNS names with a hint', () =>
  assert.throws(() => parseSan('DNS:CT111.mesh'), /must be lower case — did you mean "ct111\.mesh"/));
test('refuses overlong labels and names', () => {
  assert.throws(() => parseSan(`DNS:${'a'.repeat(64)}.mesh`), /invalid label/);
  assert.throws(() => parseSan(`DNS:${'a.'.repeat(130)}mesh`), /1 to 253 characters/);
});
test('refuses an IPv4 address with leading zeros', () => assert.throws(() => parseSan('IP:010.0.0.1'), /not a valid/));
test('refuses an IPv6 address with a zone id as bad input (it was a TypeError, a 500 at /enroll)', () => {
  assert.throws(
    () => parseSan('IP:fe80::1%eth0'),
    (err: Error) => err instanceof UsageError && /IP address "fe80::1%eth0" .*zone/.test(err.message),
  );
});
test('policy accepts aliases in the node namespace and private IPs', () => {
  for (const ok of [
    'DNS:ct111',
    'DNS:localhost',
    'DNS:ct111.mesh',
    'DNS:api.ct111.mesh',
    'DNS:ct111-grafana.mesh',
    'IP:10.1.2.3',
    'IP:127.0.0.1',
    'IP:::1',
    'IP:fd00::5',
    'IP:100.64.1.1',
  ])
    policy(ok);
});
test('policy refuses names outside the namespace, naming the rule', () => {
  assert.throws(
    () => policy('DNS:db.ct112.mesh'),
    /SAN "DNS:db\.ct112\.mesh" is not under ct111\.mesh or ct111-\*\.mesh/,
  );
  assert.throws(() => policy('DNS:ct111-a.b.mesh'), /is not under/);
  assert.throws(() => policy('DNS:ct1111.mesh'), /is not under/);
  assert.throws(() => policy('DNS:example.com'), /is not under/);
});
test('policy refuses public IPs, naming the allowed ranges', () =>
  assert.throws(() => policy('IP:8.8.8.8'), /outside the allowed ranges 127\.0\.0\.0\/8/));
test('refuses a bad RIVET_SAN_CIDRS entry', () => assert.throws(() => parseCidrs('10.0.0.0/33'), /is not a CIDR/));
test.run();
