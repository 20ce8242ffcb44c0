// A revoked identity's MCP sessions end when the CRL lands. The mesh cuts the TLS connections of a
// revoked peer; the session state it left lives on here, keyed by Mcp-Session-Id, so the same CRL
// ends it too: every certificate a session was used with is remembered, any of them revoked ends it.
import { parseCrlBundle, isRevoked, type CrlInfo } from '../x509/crl.ts';

/** Anything holding the CRL bundle as watchMeshTls and loadMeshTls give it (one PEM per CRL). */
export type CrlSource = { crl: ReadonlyArray<Buffer | string> };

export function crlsOf(src: CrlSource): CrlInfo[] {
  return src.crl.flatMap((pem) => parseCrlBundle(pem.toString()));
}

export function revokedSessions<T extends { serials: ReadonlySet<string> }>(
  sessions: readonly T[],
  src: CrlSource,
): T[] {
  const crls = crlsOf(src);
  return sessions.filter((s) => [...s.serials].some((serial) => isRevoked(crls, serial)));
}
