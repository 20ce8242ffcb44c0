// lib/ops/revoke.ts: whatever reason the operator gives, a revoked certificate stops verifying.
// (Reasons that are refused: test/unit/ops/revoke.test.ts.)
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { freshCa } from './helpers/ca.ts';
import { issueWithNewKey } from '../lib/ops/operator-issue.ts';
import { parseIdentity } from '../lib/core/identity.ts';
import { revoke } from '../lib/ops/revoke.ts';
import { REVOCATION_REASONS } from '../lib/sign/signer.ts';
import { verifyCert } from '../lib/ops/verify.ts';

test('every accepted revocation reason makes openssl verify refuse the certificate as revoked', async () => {
  const ca = await freshCa();
  for (const [i, reason] of REVOCATION_REASONS.entries()) {
    const name = `ct${300 + i}`;
    const issued = await issueWithNewKey(ca, parseIdentity(name, ca.domain));
    assert.ok(!('skipped' in issued));
    await revoke(ca, name, { reason });
    const v = await verifyCert(ca, issued.certPath, { client: true });
    assert.ok(
      v.problems.some((p) => /certificate revoked/.test(p)),
      `reason ${reason}: still verifies (${JSON.stringify(v.problems)})`,
    );
  }
});

test.run();
