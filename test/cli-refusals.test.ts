// Bad input gets exit 2, one line naming the problem, and the CA directory byte-identical — the real
// CLI process, for one case of each kind: a parser's refusal, yargs' own (unknown option, bad
// choice, no command), and refusals that read the CA (existing root, unknown CN, an issued pair).
// The other parser refusals run in process: test/unit/cli/refusals.test.ts.
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
  [
    'SAN with a newline and basicConstraints',
    ['issue-node', 'ct113', '--san', 'DNS:x\nbasicConstraints=CA:TRUE'],
    /DNS name "x\\nbasicConstraints=CA:TRUE" has an invalid label/,
  ],
  ['unknown option', ['issue-node', 'ct113', '--sans', 'DNS:x'], /Unknown argument/],
  ['revoke of an unknown CN', ['revoke', 'nobody@ct111'], /no unexpired, unrevoked certificate with CN "nobody@ct111"/],
  ['bad revocation reason', ['revoke', 'ct111', '--reason', 'because'], /Invalid values|not one of/],
  ['second init', ['init'], /a root already exists/],
  ['second issue-intermediate', ['issue-intermediate'], /an intermediate already exists .* rotate-intermediate/],
  ['missing CSR file', ['sign', '/nonexistent.csr', '--as', 'ct114'], /cannot read CSR file "\/nonexistent\.csr"/],
  ['no command', [], /give a command/],
  [
    'sign over an operator-issued pair',
    ['sign', '/etc/hostname', '--as', 'ct111'],
    /issued\/ct111\.key belongs to a certificate this CA host made — give --out FILE/,
  ],
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
