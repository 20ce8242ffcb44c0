// The largest CRL bundle the CA can produce under its caps: what receivers (push) and pull must
// accept, and nothing more (issue 14: a 1.03 MiB bundle was refused by receivers at 1 MiB while
// pull took 4 MiB). Derived, not guessed:
//   - live nodes: at most MAX_LIVE_NODES (/enroll answers 409 `ca_full` past it) — DESIGN §10's
//     "thousands of nodes" per issuing CA; beyond that the hierarchy splits into one
//     intermediate per site, each with its own CRL;
//   - agents: at most MAX_AGENTS_PER_NODE live agent identities per node (/agents, 409
//     `agent_limit`);
//   - certificates: at most MAX_LIVE_PER_IDENTITY live per identity (renewal supersedes the
//     older; a replayed renewal gets the same certificate back, lib/policy/renewal.ts), and a
//     superseded predecessor has expired before its successor's window opens (90-day life, last
//     third), so an identity never has more than that many unexpired certificates to revoke.
//   So the CRLs can list at most every unexpired certificate: nodes × (1 + agents) × 2 entries.
//   An entry is a SEQUENCE of a 20-byte serial (openssl -rand_serial: 159 bits), a UTCTime and
//   the reasonCode extension: 53 bytes of DER, 72 of PEM (base64 + a newline per 64 characters);
//   test/limits.test.ts measures it on real CRLs. Each CRL adds its header and signature.
// Operator-issued user certificates and rotation do not add: each certificate sits on exactly one
// issuer's CRL. The bound assumes the operator does not revoke and re-issue the whole fleet
// within one 90-day lifetime; a CA that does splits by site (above).
export const MAX_LIVE_NODES = 4096;
export const MAX_AGENTS_PER_NODE = 16;
export const MAX_LIVE_PER_IDENTITY = 2;
/** PEM bytes one revoked entry adds to a CRL, with 4 bytes of margin over the measured 72. */
export const CRL_ENTRY_PEM_BYTES = 76;
/** Header, extensions and signature of one CRL in PEM (an RSA-4096 signature is the largest). */
export const CRL_OVERHEAD_PEM_BYTES = 2048;
/** Two intermediates during a rotation, and the root. */
const CRLS_PER_BUNDLE = 3;

export const MAX_CRL_ENTRIES = MAX_LIVE_NODES * (1 + MAX_AGENTS_PER_NODE) * MAX_LIVE_PER_IDENTITY;

const MiB = 1024 * 1024;
/** 139,264 entries × 76 bytes + 3 × 2 KiB, rounded up to whole MiB: 11 MiB. */
export const MAX_CRL_BUNDLE_BYTES =
  Math.ceil((MAX_CRL_ENTRIES * CRL_ENTRY_PEM_BYTES + CRLS_PER_BUNDLE * CRL_OVERHEAD_PEM_BYTES) / MiB) * MiB;
