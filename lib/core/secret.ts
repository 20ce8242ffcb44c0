// Shared secrets on the wire (the bootstrap secret, enrollment tokens, the legacy mesh bearer):
// how one is read from an Authorization header and compared. One implementation for the service
// and for mesh servers, so both refuse the same headers and leak the same nothing.
import { createHash, timingSafeEqual } from 'node:crypto';

/**
 * Compares in constant time. Hashing first makes both sides the same length, so neither the
 * secret's length nor the position of the first wrong byte shows in the timing. An unset or
 * empty secret matches nothing.
 */
export function secretMatches(given: string, secret: string | undefined): boolean {
  const a = createHash('sha256').update(given, 'utf8').digest();
  const b = createHash('sha256')
    .update(secret ?? '', 'utf8')
    .digest();
  return timingSafeEqual(a, b) && secret !== undefined && secret.length > 0;
}

/**
 * The credential of `Authorization: Bearer <credential>`: undefined when there is no header,
 * 'malformed' for any other form. Printable ASCII up to 1 KiB (secrets may hold spaces).
 */
export function bearerCredential(header: string | undefined): string | undefined | 'malformed' {
  if (header === undefined) return undefined;
  const m = /^Bearer ([\x20-\x7e]{1,1024})$/.exec(header);
  return m ? m[1]! : 'malformed';
}
