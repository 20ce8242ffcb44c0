// Refusals as JSON-RPC errors. The SDK turns anything thrown in a handler whose `code` is not a
// number into -32603 "internal error", which loses the 403 and its reason; here a refusal keeps
// them: `error.code` is the HTTP status of our error code (an application code, outside JSON-RPC's
// reserved -32768…-32000), `error.data` names the code, so a client branches on
// `data.code === 'forbidden'`, never on the message. Failures of ours stay generic.
import type { ServerResponse } from 'node:http';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { RivetError } from '../core/errors.ts';
import { toHttpError } from '../mesh/http.ts';

export type MeshRpcError = { code: number; message: string; data: { code: string; status: number; reason?: string } };

/**
 * `err` as a JSON-RPC error object. A server hides its own failures (5xx) behind a generic
 * message; a client reporting its own failure (the bridge: unreachable, revoked) passes `reveal`.
 */
export function rpcErrorOf(err: unknown, opts: { reveal?: boolean } = {}): MeshRpcError {
  const e =
    opts.reveal && err instanceof RivetError
      ? { status: err.status, code: err.code, message: err.message, reason: err.reason }
      : toHttpError(err);
  return {
    code: e.status,
    message: e.message,
    data: { code: e.code, status: e.status, ...(e.reason ? { reason: e.reason } : {}) },
  };
}

/** The JSON-RPC error response to request `id`. */
export function rpcErrorResponse(id: string | number, err: unknown): JSONRPCMessage {
  return { jsonrpc: '2.0', id, error: rpcErrorOf(err) };
}

/** An HTTP refusal with a JSON-RPC body, as the SDK's transport answers its own (id: null). */
export function sendRpcRefusal(res: ServerResponse, err: unknown): void {
  const error = rpcErrorOf(err);
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = JSON.stringify({ jsonrpc: '2.0', error, id: null });
  res.writeHead(error.data.status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
  });
  res.end(body);
}
