// One error model for the whole project (DESIGN §4): every failure is a RivetError carrying a code,
// and this one table says what each code means at each edge — the CLI's exit status (2: bad input
// or usage, nothing changed; 1: anything else) and the HTTP status the service, the CRL receiver
// and mesh servers answer with. Control flow branches on `code`, never on message text. Messages
// are one line: the thing, the value, the fix.

type Meaning = readonly [exit: 1 | 2, http: number];

const CODES = {
  // Generic
  bad_input: [2, 400],
  failed: [1, 500],
  internal: [1, 500],
  not_found: [2, 404],
  exists: [2, 409],
  method: [2, 405],
  bad_options: [2, 400],
  // Identities, names and requests
  bad_identity: [2, 400],
  cert_identity: [1, 403],
  bad_csr: [2, 400],
  bad_san: [2, 400],
  bad_key: [2, 400],
  san_policy: [2, 403],
  /** A SAN outside the issuing intermediate's name constraints (lib/policy/name-constraints.ts). */
  name_constraint: [2, 403],
  name_taken: [2, 409],
  key_mismatch: [1, 403],
  identity_mismatch: [2, 403],
  bad_json: [2, 400],
  bad_request: [2, 400],
  too_large: [2, 413],
  timeout: [2, 408],
  throttled: [2, 429],
  rate_limited: [2, 429],
  not_due: [2, 409],
  agent_limit: [2, 409],
  ca_full: [1, 409],
  node_not_live: [2, 403],
  datahub_unnamed: [2, 400],
  // Authentication at the service and on mesh servers
  auth_required: [2, 401],
  bad_auth: [2, 401],
  bad_secret: [2, 401],
  bad_token: [2, 401],
  token_node: [2, 403],
  token_store: [1, 500],
  bearer_not_accepted: [2, 401],
  client_cert_required: [2, 401],
  client_cert_rejected: [2, 401],
  unknown_cert: [2, 401],
  cert_not_live: [2, 401],
  revoked_key: [2, 403],
  already_enrolled: [1, 409],
  node_cert_required: [2, 403],
  not_your_agent: [2, 403],
  not_tls: [1, 401],
  no_cert: [2, 401],
  untrusted_cert: [2, 401],
  bad_cert: [1, 401],
  bad_auth_header: [2, 401],
  bad_bearer: [2, 401],
  bearer_retired: [2, 401],
  bad_action: [2, 403],
  bad_claim: [2, 403],
  not_agent: [2, 403],
  wrong_agent: [2, 403],
  forbidden: [2, 403],
  not_your_session: [2, 403],
  unknown_session: [2, 404],
  bad_allow_list: [1, 500],
  no_allow_list: [1, 500],
  // Mesh connections: a watched server's refusal of a client whose certificate does not verify,
  // and a connection cut on reload because its peer no longer verifies (lib/mesh/gate.ts, live.ts).
  cert_revoked: [1, 403],
  cert_expired: [1, 403],
  cert_not_yet_valid: [1, 403],
  unknown_ca: [1, 403],
  cert_untrusted: [1, 403],
  crl_unavailable: [1, 503],
  connection_cut: [1, 401],
  server_untrusted: [1, 502],
  // CA state and the root key
  no_ca: [1, 500],
  no_root: [2, 409],
  locked: [1, 503],
  root_offline: [1, 500],
  already_offline: [2, 409],
  root_in_token: [2, 409],
  pkcs11: [1, 500],
  root_locked: [2, 400],
  pin_missing: [2, 400],
  fingerprint_mismatch: [2, 400],
  no_key: [1, 500],
  intermediate_expiring: [1, 500],
  rotation: [1, 500],
  rotated: [1, 500],
  // A CA dir or node dir another local user could change (lib/sys/ownership.ts): refused before
  // anything in it is read. Never an HTTP answer: serve refuses to start; 500 for a library server.
  unsafe_ownership: [2, 500],
  // Files, openssl and our own checks of what it wrote
  openssl: [1, 500],
  template: [1, 500],
  check: [1, 500],
  der: [1, 500],
  db: [1, 500],
  serial: [1, 500],
  copy: [1, 500],
  p12: [1, 500],
  missing_dependency: [1, 500],
  bad_p12: [2, 400],
  // Chains, CRLs and their receivers
  bad_chain: [1, 400],
  no_chain: [1, 500],
  bad_crl: [1, 400],
  foreign_crl: [1, 400],
  incomplete_crl: [1, 400],
  expired_crl: [1, 400],
  crl_rollback: [1, 409],
  crl_not_yet_valid: [1, 409],
  ca_still_live: [1, 409],
  push_sender_unknown: [1, 403],
  // A node has not acknowledged the current CRLs yet (it stays queued): `revoke --strict`, `push`.
  push_outstanding: [1, 503],
  pull_failed: [1, 502],
  // TLS material and the node side
  bad_tls: [1, 500],
  no_tls: [1, 500],
  tls_files: [1, 500],
  bad_settings: [1, 500],
  bad_reply: [1, 502],
  unreachable: [1, 502],
  untrusted_server: [1, 502],
  refused_by_datahub: [1, 502],
  not_enrolled: [1, 500],
  revoked: [1, 403],
  clock_skew: [2, 400],
} as const satisfies Record<string, Meaning>;

export type ErrorCode = keyof typeof CODES;
/** Codes whose exit status is 2: a user's mistake, with nothing changed. */
export type UsageCode = { [C in ErrorCode]: (typeof CODES)[C][0] extends 2 ? C : never }[ErrorCode];

export function exitStatusOf(code: ErrorCode): 1 | 2 {
  return CODES[code][0];
}
export function httpStatusOf(code: ErrorCode): number {
  return CODES[code][1];
}
export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(CODES, value);
}

/** Every failure the project reports. `reason` is an optional machine-readable detail (e.g. CERT_REVOKED). */
export class RivetError extends Error {
  readonly code: ErrorCode;
  readonly reason?: string;
  /** Seconds until a retry may succeed (429 rate limits): sent as Retry-After. */
  readonly retryAfterS?: number;
  constructor(
    message: string,
    code: ErrorCode = 'failed',
    options?: { cause?: unknown; reason?: string; retryAfterS?: number },
  ) {
    super(message, options);
    this.name = 'RivetError';
    this.code = code;
    if (options?.reason) this.reason = options.reason;
    if (options?.retryAfterS !== undefined) this.retryAfterS = options.retryAfterS;
  }
  get exitCode(): 1 | 2 {
    return exitStatusOf(this.code);
  }
  get status(): number {
    return httpStatusOf(this.code);
  }
}

/** Bad input or usage (exit 2). Nothing was changed. The type only admits exit-2 codes. */
export class UsageError extends RivetError {
  constructor(message: string, code: UsageCode = 'bad_input', options?: { reason?: string; retryAfterS?: number }) {
    super(message, code, options);
    this.name = 'UsageError';
  }
}

/** openssl exited non-zero: carries the argv (never a secret, by construction) and its stderr. */
export class OpensslError extends RivetError {
  constructor(
    readonly argv: readonly string[],
    readonly stderr: string,
    readonly exit: number | undefined,
  ) {
    super(`openssl ${argv[0] ?? ''} failed (exit ${exit ?? '?'}): ${firstLine(stderr)}`, 'openssl');
    this.name = 'OpensslError';
  }
  detail(): string {
    return `command: openssl ${this.argv.join(' ')}\n${this.stderr.trim()}`;
  }
}

function firstLine(text: string): string {
  const lines = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.length > 0 && !l.startsWith('Using configuration from'));
  // openssl's own error lines look like `80ABCD:error:0700006C:…:reason:file:line:detail`.
  const reason = lines
    .find((l) => /:error:/.test(l))
    ?.split(':')
    .slice(5)
    .join(':');
  return lines.find((l) => !/:error:/.test(l)) ?? reason ?? 'no output';
}

/** Shows a user-supplied value safely on one line (newlines, NULs and quotes escaped). */
export function show(value: unknown): string {
  const text = typeof value === 'string' ? value : String(value);
  const clipped = text.length > 80 ? `${text.slice(0, 77)}...` : text;
  return JSON.stringify(clipped);
}
