// lib/mesh/gate.ts: what a refused client reads, by OpenSSL's verify error, and the HTTP status the
// one error table gives it (the live refusals are in test/mesh-cut.test.ts).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { refusalCode } from '../../../lib/mesh/gate.ts';
import { httpStatusOf } from '../../../lib/core/errors.ts';

test('each OpenSSL verify error maps to one client-facing code with its status', () => {
  const cases: Array<[string, string, number]> = [
    ['CERT_REVOKED', 'cert_revoked', 403],
    ['CERT_HAS_EXPIRED', 'cert_expired', 403],
    ['CERT_NOT_YET_VALID', 'cert_not_yet_valid', 403],
    ['UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'unknown_ca', 403],
    ['UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'unknown_ca', 403],
    ['SELF_SIGNED_CERT_IN_CHAIN', 'unknown_ca', 403],
    ['UNABLE_TO_GET_CRL', 'crl_unavailable', 503],
    ['CRL_HAS_EXPIRED', 'crl_unavailable', 503],
    ['no_cert', 'no_cert', 401],
    ['INVALID_PURPOSE', 'cert_untrusted', 403],
    ['something new', 'cert_untrusted', 403],
  ];
  for (const [openssl, code, status] of cases) {
    assert.is(refusalCode(openssl), code, openssl);
    assert.is(httpStatusOf(refusalCode(openssl)), status, openssl);
  }
});

test.run();
