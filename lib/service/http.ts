// The HTTP edge of the enrollment service (DESIGN §4.7): bounded body reading, JSON replies, and
// the one mapping from errors to `{ error: { code, message } }` with a status.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { RivetError, UsageError } from '../core/errors.ts';

/** A refusal with its HTTP status; the message is shown to the client, so it never holds a secret. */
export class HttpError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
    this.name = 'HttpError';
  }
}

export type BodyLimits = { maxBytes: number; timeoutMs: number };

/**
 * Reads the whole body, refusing more than `maxBytes` (413, before reading when Content-Length
 * says so) and a body that takes longer than `timeoutMs` in total (408). The per-body deadline is
 * what stops a client that trickles one byte a second: socket idle timeouts never fire for it.
 */
export function readBody(req: IncomingMessage, limits: BodyLimits): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limits.maxBytes) {
    return Promise.reject(new HttpError(413, 'too_large', `request body of ${declared} bytes exceeds the limit of ${limits.maxBytes}`));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const finish = (err?: Error) => {
      clearTimeout(timer);
      req.off('data', onData).off('end', onEnd).off('error', onError);
      if (err) { req.pause(); reject(err); } else resolve(Buffer.concat(chunks));
    };
    const timer = setTimeout(() => finish(new HttpError(408, 'timeout', `request body not received within ${limits.timeoutMs} ms`)), limits.timeoutMs);
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limits.maxBytes) return finish(new HttpError(413, 'too_large', `request body exceeds the limit of ${limits.maxBytes} bytes`));
      chunks.push(chunk);
    };
    const onEnd = () => finish();
    const onError = (err: Error) => finish(new HttpError(400, 'bad_request', `request body could not be read: ${err.message}`));
    req.on('data', onData).on('end', onEnd).on('error', onError);
  });
}

/** Parses a JSON object body; anything else is a 400 naming what was wrong. */
export function parseJsonObject(body: Buffer): Record<string, unknown> {
  let value: unknown;
  try { value = JSON.parse(body.toString('utf8')); } catch {
    throw new HttpError(400, 'bad_json', 'request body is not valid JSON — send {"csr": "<PEM>"}');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new HttpError(400, 'bad_json', 'request body must be a JSON object like {"csr": "<PEM>"}');
  return value as Record<string, unknown>;
}

export function sendJson(res: ServerResponse, status: number, value: unknown, close = false): void {
  const body = JSON.stringify(value);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    ...(close ? { connection: 'close' } : {}),
  });
  res.end(body);
}

export function sendText(res: ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/**
 * The status and public error for anything a handler threw. Bad input (UsageError) is a 400 with
 * its one-line message; failures of ours are a 500 whose details stay in the service log.
 */
export function toHttpError(err: unknown): HttpError {
  if (err instanceof HttpError) return err;
  if (err instanceof UsageError) return new HttpError(err.code === 'san_policy' ? 403 : err.code === 'name_taken' ? 409 : 400, err.code, err.message);
  if (err instanceof RivetError && err.code === 'locked') return new HttpError(503, 'busy', 'the CA is busy — retry shortly');
  return new HttpError(500, 'internal', 'internal error — the service log has details');
}

export function sendError(res: ServerResponse, e: HttpError): void {
  if (res.headersSent) { res.destroy(); return; }
  // After a body we did not finish reading, the connection cannot carry another request.
  const close = e.status === 408 || e.status === 413 || e.status === 429;
  sendJson(res, e.status, { error: { code: e.code, message: e.message } }, close);
}
