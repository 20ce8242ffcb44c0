// lib/ops/revoke.ts: the revocation reasons and serials an operator may give.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { revocationReason } from '../../../lib/ops/revoke.ts';
import { UsageError } from '../../../lib/core/errors.ts';

test('refuses removeFromCRL, which verifiers read as "not revoked" on a full CRL', () => {
  assert.throws(
    () => revocationReason('removeFromCRL'),
    (err: Error) => err instanceof UsageError && /"removeFromCRL" is not one of/.test(err.message),
  );
});

test.run();
