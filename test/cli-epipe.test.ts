// `rivet-ca list | head`: a reader that goes away ends the command quietly (issue 15), with no
// EPIPE stack trace. `| true` closes the pipe before the CLI has even started: the first write fails.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execa } from 'execa';
import { CLI, freshCa } from './helpers/ca.ts';

test('a closed stdout pipe ends list quietly with exit 0', async () => {
  const ca = await freshCa();
  const r = await execa('bash', ['-c', `"${CLI}" list | true; echo "status \${PIPESTATUS[0]}" >&2`], {
    reject: false,
    env: { RIVET_CA_DIR: ca.store.dir, RIVET_ENV_FILE: '/dev/null' },
  });
  assert.match(String(r.stderr), /status 0\n?$/, String(r.stderr));
  assert.not.match(String(r.stderr), /EPIPE|Unhandled|at .*\.js:\d+/);
});

test.run();
