// lib/core/errors.ts: one table gives every code its exit status and HTTP status, and every edge
// (CLI, service, receiver, mesh servers) answers from it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  RivetError,
  UsageError,
  OpensslError,
  exitStatusOf,
  httpStatusOf,
  isErrorCode,
} from '../../../lib/core/errors.ts';
import { toHttpError } from '../../../lib/mesh/http.ts';
import { MeshAuthError } from '../../../lib/mesh/peer.ts';
import { CrlRefused } from '../../../lib/distribute/install.ts';

test('a code decides both statuses, whatever class carries it', () => {
  assert.is(new UsageError('x', 'san_policy').status, 403);
  assert.is(new UsageError('x', 'name_taken').status, 409);
  assert.is(new UsageError('x', 'name_taken').exitCode, 2);
  assert.is(new RivetError('x', 'bad_csr').exitCode, 2, 'a bad CSR is bad input wherever it is found');
  assert.is(new RivetError('x').exitCode, 1);
  assert.is(new UsageError('x').exitCode, 2);
  assert.is(new MeshAuthError('x', 'forbidden').status, 403);
  assert.is(new MeshAuthError('x', 'no_cert').status, 401);
  assert.is(new CrlRefused('x', 'crl_rollback').status, 409);
  assert.is(new OpensslError(['ca'], 'boom', 1).exitCode, 1);
  assert.is(exitStatusOf('exists'), 2);
  assert.is(httpStatusOf('throttled'), 429);
  assert.is(exitStatusOf('unsafe_ownership'), 2, 'a directory another user can change: refused, nothing read');
  assert.ok(isErrorCode('too_large'));
  assert.not.ok(isErrorCode('toString'), 'prototype keys are not codes');
});

test('the HTTP edge shows refusals as they are and hides our own failures', () => {
  assert.equal(toHttpError(new UsageError('SAN "x" is not yours', 'san_policy')), {
    status: 403,
    code: 'san_policy',
    message: 'SAN "x" is not yours',
  });
  assert.equal(toHttpError(new RivetError('revoked', 'client_cert_rejected', { reason: 'CERT_REVOKED' })), {
    status: 401,
    code: 'client_cert_rejected',
    message: 'revoked',
    reason: 'CERT_REVOKED',
  });
  assert.equal(toHttpError(new RivetError('lock held by pid 7 (revoke)', 'locked')), {
    status: 503,
    code: 'busy',
    message: 'the CA is busy — retry shortly',
  });
  const internal = toHttpError(new OpensslError(['ca', '-passin', 'env:X'], 'secret detail', 1));
  assert.equal(internal, { status: 500, code: 'internal', message: 'internal error — the service log has details' });
  assert.is(toHttpError(new Error('anything')).status, 500);
});

test.run();
