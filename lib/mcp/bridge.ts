// `rivet-ca mcp-bridge`: a stdio MCP server that forwards every message to a mesh MCP server over
// mTLS and back — what Claude Desktop and Cursor (which launch local stdio servers) run to reach the
// mesh with a user certificate. Messages pass through unchanged (the remote server's capabilities,
// tools and errors are the client's); a request that cannot be delivered gets a JSON-RPC error
// saying why, with the code to branch on in `error.data.code` (`revoked`, `unreachable`, …).
import type { Readable, Writable } from 'node:stream';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { RivetError, show } from '../core/errors.ts';
import { meshMcpTransport, type MeshMcpClientOptions } from './client.ts';
import { rpcErrorOf } from './errors.ts';

export type McpBridgeOptions = MeshMcpClientOptions & {
  url: string;
  stdin?: Readable;
  stdout?: Writable;
  /** Diagnostics (stderr in the CLI: stdout carries the protocol). */
  log?: (line: string) => void;
};

export type McpBridge = {
  /** Resolves when the bridge has stopped: 0 after the client left, 1 after a fatal refusal. */
  done: Promise<number>;
  close(): Promise<void>;
};

/** Refusals that no retry can fix: the bridge reports them and stops. */
const FATAL = new Set(['revoked', 'cert_not_live', 'cert_revoked', 'cert_expired', 'unknown_ca']);

type Msg = { id?: string | number; method?: string; result?: { protocolVersion?: unknown } };

export async function startMcpBridge(opts: McpBridgeOptions): Promise<McpBridge> {
  const log = opts.log ?? (() => {});
  const remote = meshMcpTransport(opts.url, opts); // refuses a revoked or expired certificate now
  const local = new StdioServerTransport(opts.stdin, opts.stdout);
  const host = new URL(opts.url).host;
  let initializeId: string | number | undefined;
  let finish!: (code: number) => void;
  const done = new Promise<number>((resolve) => {
    finish = resolve;
  });
  let stopping = false;

  const stop = async (code: number) => {
    if (stopping) return;
    stopping = true;
    // Best effort: tell the server the session is over (DELETE), without waiting long for it.
    if (code === 0 && remote.sessionId)
      await Promise.race([remote.terminateSession().catch(() => {}), new Promise((r) => setTimeout(r, 2000).unref())]);
    await remote.close().catch(() => {});
    await local.close().catch(() => {});
    finish(code);
  };

  const errorOf = (err: unknown) =>
    err instanceof RivetError
      ? rpcErrorOf(err, { reveal: true })
      : { code: -32603, message: `${host}: ${(err as Error).message}` };

  local.onmessage = (message) => {
    const m = message as Msg;
    if (m.method === 'initialize') initializeId = m.id;
    // A failed send was reported through remote.onerror already.
    remote.send(message).catch(async (err: unknown) => {
      if (m.id !== undefined && m.method !== undefined)
        await local.send({ jsonrpc: '2.0', id: m.id, error: errorOf(err) } as JSONRPCMessage).catch(() => {});
      if (err instanceof RivetError && FATAL.has(err.code)) await stop(1);
    });
  };
  remote.onmessage = (message) => {
    const m = message as Msg;
    // Later requests carry the negotiated version (Mcp-Protocol-Version), as the SDK's Client does.
    if (initializeId !== undefined && m.id === initializeId && typeof m.result?.protocolVersion === 'string')
      remote.setProtocolVersion(m.result.protocolVersion);
    void local.send(message).catch((err: Error) => log(`cannot write to the client: ${err.message}`));
  };
  remote.onerror = (err) => {
    if (!stopping) log(err instanceof RivetError ? err.message : `${show(host)}: ${err.message}`);
  };
  local.onerror = (err) => log(`bad message from the client: ${err.message}`);

  const stdin = opts.stdin ?? process.stdin;
  stdin.once('end', () => void stop(0));
  stdin.once('close', () => void stop(0));
  await remote.start();
  await local.start();
  return { done, close: () => stop(0) };
}
