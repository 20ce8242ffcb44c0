import { RivetError, type ErrorCode } from '../core/errors.ts';

/**
 * A refused CRL delivery; its code's HTTP status (lib/core/errors.ts: 400 invalid, 409 in conflict
 * with what the node holds) is what the push receiver answers. `retryAt`: when the same delivery
 * could succeed (a CRL dated ahead of this node's clock).
 */
export class CrlRefused extends RivetError {
  constructor(
    message: string,
    code: ErrorCode,
    readonly retryAt?: Date,
  ) {
    super(message, code);
    this.name = 'CrlRefused';
  }
}
