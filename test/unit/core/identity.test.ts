import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  parseIdentity,
  meshDomain,
  commonName,
  spiffeId,
  identityFromCommonName,
  nodeId,
} from '../../../lib/core/identity.ts';
import { UsageError } from '../../../lib/core/errors.ts';

const mesh = meshDomain('mesh');

function refused(input: string, pattern: RegExp) {
  try {
    parseIdentity(input, mesh);
  } catch (err) {
    assert.instance(err, UsageError);
    assert.match((err as Error).message, pattern);
    assert.not.match((err as Error).message, /\n/, 'error stays on one line');
    return;
  }
  assert.unreachable(`${JSON.stringify(input)} was accepted`);
}

test('parses node, agent and user identities', () => {
  assert.equal(parseIdentity('ct111', mesh), { kind: 'node', nodeId: 'ct111' });
  assert.equal(parseIdentity('ct111.mesh', mesh), { kind: 'node', nodeId: 'ct111' });
  assert.equal(parseIdentity('opus@ct111', mesh), { kind: 'agent', agentId: 'opus', nodeId: 'ct111' });
  assert.equal(parseIdentity('alice.b@external', mesh), { kind: 'user', user: 'alice.b' });
});

test('CN and SPIFFE ID say the same identity', () => {
  const agent = parseIdentity('opus@ct111', mesh);
  assert.is(commonName(agent, mesh), 'opus@ct111');
  assert.is(spiffeId(agent, mesh), 'spiffe://mesh/agent/ct111/opus');
  assert.is(commonName(parseIdentity('ct5', mesh), mesh), 'ct5.mesh');
  assert.equal(identityFromCommonName('ct5.mesh', mesh), { kind: 'node', nodeId: 'ct5' });
});

test('refuses upper case with the lower-case spelling as the hint', () =>
  refused('CT111', /must be lower case — did you mean "ct111"\?/));
test('refuses path traversal', () => refused('ct111/../x', /does not match/));
test('refuses a comma', () => refused('a,b', /node-id "a,b" does not match/));
test('refuses a newline followed by a config section', () => refused('ct1\n[ v3_ca ]', /does not match/));
test('refuses two @', () => refused('opus@ct111@x', /more than one "@"/));
test('refuses the empty string', () => refused('', /empty/));
test('refuses a 300-character id', () => refused('a'.repeat(300), /does not match/));
test('refuses a NUL byte', () => refused('ct1\0x', /does not match/));
test('refuses a unicode look-alike', () => refused('ct111\u0430', /does not match/));
test('refuses a trailing hyphen and a leading digit', () => {
  refused('ct111-', /does not match/);
  refused('1ct', /does not match/);
});
test('refuses external as a node-id', () => {
  assert.throws(() => nodeId('external'), /reserved/);
  refused('external.mesh', /reserved/);
});
test('refuses an agent-id with a dot and a user with a space', () => {
  refused('op.us@ct1', /agent-id/);
  refused('a b@external', /user/);
});
test('refuses a CN outside the grammar when reading a certificate', () => {
  assert.throws(() => identityFromCommonName('ct111.other', mesh), /neither/);
});

test.run();
