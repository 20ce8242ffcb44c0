// audit.log: append-only JSON lines, one per decision (issue, renew, revoke, crl, enroll, refusal).
// Callers pass only identities, serials and reasons; there is no field a secret could ride in.
import fsp from 'node:fs/promises';
import os from 'node:os';

export type AuditEvent = {
  event: string;
  result: 'ok' | 'refused' | 'failed';
  cn?: string;
  serial?: string;
  serials?: string[];
  reason?: string;
  source?: string;
  detail?: string;
};

export async function audit(file: string, e: AuditEvent): Promise<void> {
  const line = JSON.stringify({ ts: new Date().toISOString(), host: os.hostname(), pid: process.pid, ...e });
  // O_APPEND: concurrent writers of lines this short never interleave.
  const fh = await fsp.open(file, 'a', 0o600);
  try {
    await fh.appendFile(`${line}\n`);
    await fh.datasync();
  } finally {
    await fh.close();
  }
}

/** Several events in one append and one datasync (batch issuance). */
export async function auditAll(file: string, events: readonly AuditEvent[]): Promise<void> {
  if (events.length === 0) return;
  const head = { ts: new Date().toISOString(), host: os.hostname(), pid: process.pid };
  const text = events.map((e) => `${JSON.stringify({ ...head, ...e })}\n`).join('');
  const fh = await fsp.open(file, 'a', 0o600);
  try {
    await fh.appendFile(text);
    await fh.datasync();
  } finally {
    await fh.close();
  }
}
