// lib/mesh/tls.ts: what a mesh server is told when its node directory is not what it expects.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import path from 'node:path';
import { loadMeshTls } from '../../../lib/index.ts';
import { tempDir } from '../../helpers/temp.ts';

test('loadMeshTls names the missing file and the fix', async () => {
  const home = await tempDir();
  assert.throws(
    () => loadMeshTls({ dir: path.join(home, 'nowhere') }),
    /cannot read private key ".*nowhere\/node.key" \(ENOENT\) — enroll this node/,
  );
  assert.throws(() => loadMeshTls({ dir: home, agent: '../etc' }), /agent-id "..\/etc" does not match/);
});

test.run();
