// The CLI's refusals of bad input that only a parser or validator sees, in process: each case calls
// what the command's handler calls, and the error must come out of the CLI's exit door as exit 2,
// one line, the message below. (The CLI process itself, exit 2 and the CA directory untouched, is
// pinned by test/cli-refusals.test.ts; these never get as far as opening the CA.)
import { test } from 'uvu';
import { assertRefused } from './refusal.ts';
import { meshDomain, parseIdentityOf } from '../../../lib/core/identity.ts';
import { parseSan } from '../../../lib/core/san.ts';
import { keyType } from '../../../lib/core/keys.ts';
import { parseDuration } from '../../../lib/core/duration.ts';
import { leafProfile } from '../../../lib/sign/profile.ts';
import { serialArg } from '../../../lib/ops/revoke.ts';
import { parseRoster } from '../../../lib/ops/roster.ts';
import { openCa } from '../../../lib/ca/handle.ts';
import { validityFrom } from '../../../scripts/cli/issue.ts';

const mesh = meshDomain('mesh');
const node = (v: string) => () => parseIdentityOf('node', v, mesh);
const agent = (v: string) => () => parseIdentityOf('agent', v, mesh);
const san = (v: string) => () => parseSan(v);

const cases: Array<[string, () => unknown, RegExp]> = [
  ['path traversal', node('ct111/../x'), /node-id "ct111\/\.\.\/x" does not match/],
  ['comma', node('a,b'), /node-id "a,b" does not match/],
  ['newline then a config section', node('ct111\n[ v3_ca ]'), /node-id "ct111\\n\[ v3_ca \]" does not match/],
  ['two @ signs', agent('opus@ct111@x'), /identity "opus@ct111@x" has more than one "@"/],
  ['empty string', node(''), /identity is empty/],
  ['300-character id', node('a'.repeat(300)), /node-id "a{77}\.\.\." does not match/],
  ['two SANs in one flag', san('DNS:a,DNS:b'), /DNS name "a,DNS:b" has an invalid label "a,DNS:b"/],
  ['SAN with an impossible IP', san('IP:999.1.1.1'), /IP address "999\.1\.1\.1" is not a valid IPv4 or IPv6 address/],
  ['agent identity for issue-node', node('opus@ct111'), /is a agent identity — this command wants <node-id>/],
  ['node identity for issue-agent', agent('ct111'), /is a node identity — this command wants <agent-id>@<node-id>/],
  ['reserved node-id', node('external'), /reserved/],
  // issue-agent --san: the handler parses both, then the profile refuses (lib/sign/profile.ts).
  [
    'SAN on an agent',
    () => leafProfile(parseIdentityOf('agent', 'opus@ct111', mesh), mesh, [parseSan('DNS:x.mesh')]),
    /extra SANs .* are only for node certs/,
  ],
  ['unknown key type', () => keyType('dsa'), /key type "dsa" is not one of/],
  ['wildcard SAN', san('DNS:*.mesh'), /invalid label "\*"/],
  ['SAN of unknown type', san('email:a@b'), /must be DNS:<name> or IP:<address>/],
  ['zero days', () => validityFrom({ days: '0' }), /--days 0 must be a whole number from 1 to 825/],
  ['bad --not-before', () => validityFrom({ notBefore: 'yesterday' }), /--not-before "yesterday" must be ISO 8601/],
  ['bad serial', () => serialArg('xyz'), /serial "xyz" must be hexadecimal/],
  // issue --roster /dev/null: an empty roster (parseRoster reads only the handle's domain).
  ['roster with a bad line', () => parseRoster('', openCa('/nonexistent/rivet-ca', mesh)), /roster has no identities/],
  ['bad --within', () => parseDuration('30 days', '--within'), /--within "30 days" must look like 30d/],
];

for (const [name, fn, message] of cases) {
  test(`refuses ${name} with exit 2 and a clear one-line message`, () => assertRefused(name, fn, message));
}

test.run();
