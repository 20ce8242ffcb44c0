// `rivet-ca crl` and the service's timer: re-sign whatever CRL is due, in its own transaction.
import type { Ca } from '../ca/handle.ts';
import { refreshCrlsLocked, type RefreshOptions, type RefreshResult } from '../sign/crl-sign.ts';
import { transaction } from '../sign/transaction.ts';

export async function refreshCrls(ca: Ca, opts: RefreshOptions = {}): Promise<RefreshResult> {
  return transaction(ca, 'crl', () => refreshCrlsLocked(ca, opts));
}
