import { RivetError } from '../core/errors.ts';

/**
 * A refused CRL delivery; `status` is what the push receiver answers (400 invalid, 409 in conflict
 * with what the node holds). `retryAt`: when the same delivery could succeed (a CRL dated ahead).
 */
export class CrlRefused extends RivetError {
  constructor(message: string, code: string, readonly status: 400 | 409, readonly retryAt?: Date) {
    super(message, code);
    this.name = 'CrlRefused';
  }
}
