import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { render, renderFile } from '../../../lib/sys/template.ts';

test('renders known placeholders', () => {
  assert.is(render('CN = {{cn}}\n', { cn: 'ct111.mesh' }), 'CN = ct111.mesh\n');
});
test('throws on an unfilled placeholder', () =>
  assert.throws(() => render('a {{x}}', {}), /placeholder \{\{x\}\} has no value/));
test('throws on an unknown placeholder', () =>
  assert.throws(() => render('a', { x: 1 }), /unknown placeholder\(s\) x/));
for (const bad of ['a\nb', 'a$b', 'a#b', 'a,b', 'a"b', 'a\\b', 'a\0b', 'a\rb']) {
  test(`refuses a value holding ${JSON.stringify(bad)}`, () =>
    assert.throws(() => render('v = {{v}}', { v: bad }), /forbidden character/));
}
test('list placeholders render key = value lines and must stand alone', () => {
  assert.is(
    render('[s]\n{{l}}\n', {
      l: {
        lines: [
          ['DNS.1', 'a.mesh'],
          ['URI.1', 'spiffe://mesh/node/a'],
        ],
      },
    }),
    '[s]\nDNS.1 = a.mesh\nURI.1 = spiffe://mesh/node/a\n',
  );
  assert.throws(() => render('x = {{l}}', { l: { lines: [['DNS.1', 'a']] } }), /must stand alone/);
  assert.throws(
    () => render('{{l}}', { l: { lines: [['DNS.1', 'a\nbasicConstraints=CA:TRUE']] } }),
    /forbidden character/,
  );
  assert.throws(() => render('{{l}}', { l: { lines: [['a b', 'x']] } }), /is not a config key/);
  assert.throws(() => render('{{l}}', { l: { lines: [] } }), /has no lines/);
  assert.is(render('[s]\n{{l}}\n', { l: { lines: [], allowEmpty: true } }), '[s]\n\n');
});
test('every shipped template renders with its values and nothing else', () => {
  const lines = { lines: [['DNS.1', 'ct1.mesh']] as Array<[string, string]> };
  renderFile('ca.cnf', { digest: 'sha256', copy_extensions: 'none' });
  renderFile('root.cnf', {});
  renderFile('intermediate.cnf', {
    generation: 1,
    domain: 'mesh',
    permitted: { lines: [['permitted;DNS.1', 'mesh']] },
  });
  renderFile('intermediate.cnf', { generation: 1, domain: 'mesh', permitted: { lines: [], allowEmpty: true } }); // --no-name-constraints
  for (const t of ['node.cnf', 'agent.cnf', 'user.cnf']) {
    assert.match(
      renderFile(t, { san: { lines: [['subjectAltName', '@alt_names']] }, alt_names: lines }),
      /subjectAltName = @alt_names\n[\s\S]*DNS\.1 = ct1\.mesh/,
    );
    // The batch form: no SAN line at all, so openssl copies the CSR's (lib/sign/signer.ts signCsrBatch).
    const none = { lines: [], allowEmpty: true };
    assert.not.match(renderFile(t, { san: none, alt_names: none }), /^subjectAltName|^DNS\./m);
  }
});
test.run();
