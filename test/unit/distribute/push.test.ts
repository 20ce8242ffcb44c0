// lib/distribute/push.ts and mesh-request.ts: where a CRL push goes, before any connection is made.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { pushUrl, parseConnectTo, nodeId } from '../../../lib/index.ts';

test('the push URL template fills {node} and {domain} and refuses anything else', () => {
  assert.is(
    pushUrl('https://{node}.{domain}:3000/api/mesh/crl', nodeId('ct111'), 'mesh'),
    'https://ct111.mesh:3000/api/mesh/crl',
  );
  assert.throws(
    () => pushUrl('https://{host}:3000/', nodeId('ct111'), 'mesh'),
    /unknown placeholder \{host\} — use \{node\} and \{domain\}/,
  );
  assert.throws(() => pushUrl('http://{node}.{domain}/', nodeId('ct111'), 'mesh'), /must start with https:\/\//);
  assert.equal(
    [...parseConnectTo('ct111.mesh:3000:127.0.0.1:4000,ct112.mesh:3000:[::1]:4001')],
    [
      ['ct111.mesh:3000', { host: '127.0.0.1', port: 4000 }],
      ['ct112.mesh:3000', { host: '::1', port: 4001 }],
    ],
  );
  assert.throws(() => parseConnectTo('ct111.mesh:3000'), /must be host:port:connect-host:connect-port/);
});

test.run();
