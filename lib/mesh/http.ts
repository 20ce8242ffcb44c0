// The HTTP edge shared by the enrollment service, the CRL receiver and mesh servers: bounded body
// reading, JSON replies, and the one mapping from a RivetError to `{ error: { code, message } }`
// with the status lib/core/errors.ts gives its code.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { RivetError } from '../core/errors.ts';

/** What a client is told: the code's status and message, or a generic one for our own failures. */
export type HttpRefusal = { status: number; code: string; message: string; reason?: string; retryAfterS?: number };

export type BodyLimits = { maxBytes: number; timeoutMs: number };

/**
 * Reads the whole body, refusing more than `maxBytes` (413, before reading when Content-Length
 * says so) and a body that takes longer than `timeoutMs` in total (408). The per-body deadline is
 * what stops a client that trickles one byte a second: socket idle timeouts never fire for it.
 */
export function readBody(req: IncomingMessage, limits: BodyLimits): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limits.maxBytes) {
    return Promise.reject(
      new RivetError(`request body of ${declared} bytes exceeds the limit of ${limits.maxBytes}`, 'too_large'),
    );
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const finish = (err?: Error) => {
      clearTimeout(timer);
      req.off('data', onData).off('end', onEnd).off('error', onError);
      if (err) {
        req.pause();
        reject(err);
      } else resolve(Buffer.concat(chunks));
    };
    const timer = setTimeout(
      () => finish(new RivetError(`request body not received within ${limits.timeoutMs} ms`, 'timeout')),
      limits.timeoutMs,
    );
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limits.maxBytes)
        return finish(new RivetError(`request body exceeds the limit of ${limits.maxBytes} bytes`, 'too_large'));
      chunks.push(chunk);
    };
    const onEnd = () => finish();
    const onError = (err: Error) =>
      finish(new RivetError(`request body could not be read: ${err.message}`, 'bad_request'));
    req.on('data', onData).on('end', onEnd).on('error', onError);
  });
}

/** Parses a JSON object body; anything else is a 400 naming what was wrong. */
export function parseJsonObject(body: Buffer): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch {
    throw new RivetError('request body is not valid JSON — send {"csr": "<PEM>"}', 'bad_json');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new RivetError('request body must be a JSON object like {"csr": "<PEM>"}', 'bad_json');
  return value as Record<string, unknown>;
}

export function sendJson(
  res: ServerResponse,
  status: number,
  value: unknown,
  close = false,
  extra: Record<string, string> = {},
): void {
  const body = JSON.stringify(value);
  res.writeHead(status, {
    ...extra,
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
 * The status and public error for anything a handler threw: a refusal (4xx by its code) with its
 * one-line message; failures of ours (5xx) with a generic message, details in the log.
 */
export function toHttpError(err: unknown): HttpRefusal {
  if (err instanceof RivetError && err.status < 500) {
    return {
      status: err.status,
      code: err.code,
      message: err.message,
      ...(err.reason ? { reason: err.reason } : {}),
      ...(err.retryAfterS !== undefined ? { retryAfterS: err.retryAfterS } : {}),
    };
  }
  // Our own failures keep their details in the log; a client learns only whether to retry.
  if (err instanceof RivetError && err.status === 503)
    return { status: 503, code: 'busy', message: 'the CA is busy — retry shortly' };
  return { status: 500, code: 'internal', message: 'internal error — the service log has details' };
}

export function sendError(res: ServerResponse, e: HttpRefusal): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  // After a body we did not finish reading, the connection cannot carry another request.
  const close = e.status === 408 || e.status === 413 || e.status === 429;
  sendJson(
    res,
    e.status,
    { error: { code: e.code, message: e.message, ...(e.reason ? { reason: e.reason } : {}) } },
    close,
    e.retryAfterS === undefined ? {} : { 'retry-after': String(e.retryAfterS) },
  );
}
