// Bad input gets exit 2, one line naming the problem, and the CA directory byte-identical.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { freshCa, cli, snapshot } from './helpers/ca.ts';
import type { Ca } from '../lib/ca/handle.ts';

let ca: Ca;
test.before(async () => {
  ca = await freshCa();
  const r = await cli(ca, ['issue-node', 'ct111']);
  assert.is(r.exitCode, 0, r.stderr);
});

const cases: Array<[string, string[], RegExp]> = [
  ['upper case node-id', ['issue-node', 'CT111'], /node-id "CT111" must be lower case — did you mean "ct111"\?/],
  ['path traversal', ['issue-node', 'ct111/../x'], /node-id "ct111\/\.\.\/x" does not match/],
  ['comma', ['issue-node', 'a,b'], /node-id "a,b" does not match/],
  ['newline then a config section', ['issue-node', 'ct111\n[ v3_ca ]'], /node-id "ct111\\n\[ v3_ca \]" does not match/],
  ['two @ signs', ['issue-agent', 'opus@ct111@x'], /identity "opus@ct111@x" has more than one "@"/],
  ['empty string', ['issue-node', ''], /identity is empty/],
  ['300-character id', ['issue-node', 'a'.repeat(300)], /node-id "a{77}\.\.\." does not match/],
  ['two SANs in one flag', ['issue-node', 'ct113', '--san', 'DNS:a,DNS:b'], /DNS name "a,DNS:b" has an invalid label "a,DNS:b"/],
  ['SAN with a newline and basicConstraints', ['issue-node', 'ct113', '--san', 'DNS:x\nbasicConstraints=CA:TRUE'], /DNS name "x\\nbasicConstraints=CA:TRUE" has an invalid label/],
  ['SAN with an impossible IP', ['issue-node', 'ct113', '--san', 'IP:999.1.1.1'], /IP address "999\.1\.1\.1" is not a valid IPv4 or IPv6 address/],
  ['agent identity for issue-node', ['issue-node', 'opus@ct111'], /is a agent identity — this command wants <node-id>/],
  ['node identity for issue-agent', ['issue-agent', 'ct111'], /is a node identity — this command wants <agent-id>@<node-id>/],
  ['reserved node-id', ['issue-node', 'external'], /reserved/],
  ['SAN on an agent', ['issue-agent', 'opus@ct111', '--san', 'DNS:x.mesh'], /extra SANs .* are only for node certs/],
  ['unknown key type', ['issue-node', 'ct113', '--key-type', 'dsa'], /key type "dsa" is not one of/],
  ['wildcard SAN', ['issue-node', 'ct113', '--san', 'DNS:*.mesh'], /invalid label "\*"/],
  ['SAN of unknown type', ['issue-node', 'ct113', '--san', 'email:a@b'], /must be DNS:<name> or IP:<address>/],
  ['zero days', ['issue-node', 'ct113', '--days', '0'], /--days 0 must be a whole number from 1 to 825/],
  ['bad --not-before', ['issue-node', 'ct113', '--not-before', 'yesterday'], /--not-before "yesterday" must be ISO 8601/],
  ['unknown option', ['issue-node', 'ct113', '--sans', 'DNS:x'], /Unknown argument/],
  ['revoke of an unknown CN', ['revoke', 'nobody@ct111'], /no unexpired, unrevoked certificate with CN "nobody@ct111"/],
  ['bad revocation reason', ['revoke', 'ct111', '--reason', 'because'], /Invalid values|not one of/],
  ['bad serial', ['revoke', 'ct111', '--serial', 'xyz'], /serial "xyz" must be hexadecimal/],
  ['second init', ['init'], /a root already exists/],
  ['second issue-intermediate', ['issue-intermediate'], /an intermediate already exists .* rotate-intermediate/],
  ['roster with a bad line', ['issue', '--roster', '/dev/null'], /roster has no identities/],
  ['bad --within', ['renew', '--within', '30 days'], /--within "30 days" must look like 30d/],
  ['missing CSR file', ['sign', '/nonexistent.csr', '--as', 'ct114'], /cannot read CSR file "\/nonexistent\.csr"/],
  ['no command', [], /give a command/],
  ['sign over an operator-issued pair', ['sign', '/etc/hostname', '--as', 'ct111'], /issued\/ct111\.key belongs to a certificate this CA host made — give --out FILE/],
  ['removeFromCRL as a reason', ['revoke', 'ct111', '--reason', 'removeFromCRL'], /removeFromCRL/],
];

for (const [name, args, message] of cases) {
  test(`refuses ${name} with exit 2, a clear message, and no change`, async () => {
    const before = snapshot(ca.store.dir);
    const r = await cli(ca, args);
    assert.is(r.exitCode, 2, `exit code for ${JSON.stringify(args)}: ${r.stderr}`);
    assert.match(r.stderr, message);
    assert.match(r.stderr, /^rivet-ca: /);
    assert.not.match(r.stderr, /\n(?!$)/, 'one line');
    assert.not.match(r.stderr, /at .*\.ts:\d+/, 'no stack trace');
    assert.equal(snapshot(ca.store.dir), before, 'CA directory byte-identical');
  });
}

test('a roster with one bad line issues nothing', async () => {
  const fs = await import('node:fs');
  const path = await import('node:path');
  const roster = path.join(ca.store.dir, '..', 'roster.txt');
  fs.writeFileSync(roster, 'ct120\nct121 DNS:ct121.lan\nCT122\n');
  const before = snapshot(ca.store.dir);
  const r = await cli(ca, ['issue', '--roster', roster]);
  assert.is(r.exitCode, 2);
  assert.match(r.stderr, /roster line 3: node-id "CT122" must be lower case/);
  assert.equal(snapshot(ca.store.dir), before);
});

test.run();
