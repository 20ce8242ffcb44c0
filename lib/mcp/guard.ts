// What a session's MCP server may be asked, decided between the SDK's transport and the server:
// tools/list answers only with the tools the caller's allow-list names, tools/call of any other
// tool is refused with a JSON-RPC error carrying 403 and `forbidden` before the server sees it, and
// `rivetos/session.attach` (method and tool) is answered here. Sitting on the transport, it works
// for any server the application builds (McpServer or the low-level Server) without its internals.
import type { Transport, TransportSendOptions } from '@modelcontextprotocol/sdk/shared/transport.js';
import type { JSONRPCMessage, MessageExtraInfo } from '@modelcontextprotocol/sdk/types.js';
import { RivetError, show } from '../core/errors.ts';
import { authorize, type AllowList } from '../mesh/authz.ts';
import type { PeerIdentity } from '../mesh/peer.ts';
import { ATTACH_METHOD, ATTACH_TOOL, ATTACH_TOOL_DEFINITION, type SessionAttachment } from './attach.ts';
import { rpcErrorResponse } from './errors.ts';

export type GuardPolicy = {
  /** The identity that opened the session; the gate lets no other drive it. */
  owner: PeerIdentity;
  allowList: AllowList;
  /** The allow-list action of calling `tool`. */
  toolAction: (tool: string) => string;
  attachment: SessionAttachment;
};

type Request = { jsonrpc: '2.0'; id: string | number; method: string; params?: Record<string, unknown> };
type Reply = { jsonrpc: '2.0'; id: string | number; result?: Record<string, unknown>; error?: { code: number } };

const isRequest = (m: JSONRPCMessage): m is Request & JSONRPCMessage =>
  'method' in m && 'id' in m && m.id !== undefined;
const isReply = (m: JSONRPCMessage): m is Reply & JSONRPCMessage =>
  !('method' in m) && 'id' in m && ('result' in m || 'error' in m);
const METHOD_NOT_FOUND = -32601;

export class GuardedTransport implements Transport {
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: (message: JSONRPCMessage, extra?: MessageExtraInfo) => void;
  /** Requests whose reply must be filtered: tools/list ids of this session. */
  readonly #listing = new Set<string | number>();
  /**
   * Ids of requests the server is answering. A second request with an id still in flight is
   * refused: its reply could otherwise take the place of a tools/list reply in the filter, and the
   * unfiltered list would name every tool.
   */
  readonly #inFlight = new Set<string | number>();

  constructor(
    readonly inner: Transport,
    readonly policy: GuardPolicy,
  ) {
    inner.onclose = () => this.onclose?.();
    inner.onerror = (e) => this.onerror?.(e);
    inner.onmessage = (m, extra) => this.#incoming(m, extra);
  }

  get sessionId(): string | undefined {
    return this.inner.sessionId;
  }
  setProtocolVersion(version: string): void {
    this.inner.setProtocolVersion?.(version);
  }
  start(): Promise<void> {
    return this.inner.start();
  }
  close(): Promise<void> {
    return this.inner.close();
  }

  send(message: JSONRPCMessage, options?: TransportSendOptions): Promise<void> {
    if (isReply(message)) {
      this.#inFlight.delete(message.id);
      if (this.#listing.delete(message.id)) return this.inner.send(this.#filteredList(message), options);
    }
    return this.inner.send(message, options);
  }

  #allowed(tool: string): boolean {
    try {
      authorize(this.policy.owner, this.policy.toolAction(tool), this.policy.allowList);
      return true;
    } catch {
      return false;
    }
  }

  /** Only allowed tools, plus attach; a server without tools still lists attach. */
  #filteredList(reply: Reply): JSONRPCMessage {
    if (reply.error && reply.error.code !== METHOD_NOT_FOUND) return reply as JSONRPCMessage;
    const tools = ((reply.result?.tools ?? []) as Array<{ name: string }>).filter(
      (t) => t.name !== ATTACH_TOOL && this.#allowed(t.name),
    );
    return {
      jsonrpc: '2.0',
      id: reply.id,
      result: { ...reply.result, tools: [...tools, ATTACH_TOOL_DEFINITION] },
    } as JSONRPCMessage;
  }

  #reply(id: string | number, result: Record<string, unknown> | undefined, err?: unknown): void {
    const message = (err === undefined ? { jsonrpc: '2.0', id, result } : rpcErrorResponse(id, err)) as JSONRPCMessage;
    this.inner.send(message, { relatedRequestId: id }).catch((e: Error) => this.onerror?.(e));
  }

  #incoming(message: JSONRPCMessage, extra?: MessageExtraInfo): void {
    if (!isRequest(message)) return this.onmessage?.(message, extra);
    const params = message.params ?? {};
    if (message.method === ATTACH_METHOD) {
      try {
        this.#reply(message.id, this.policy.attachment.attach(this.policy.owner, params.agent_id));
      } catch (err) {
        this.#reply(message.id, undefined, err);
      }
      return;
    }
    if (message.method === 'tools/call' && params.name === ATTACH_TOOL) {
      try {
        const result = this.policy.attachment.attach(
          this.policy.owner,
          (params.arguments as Record<string, unknown> | undefined)?.agent_id,
        );
        this.#reply(message.id, {
          content: [{ type: 'text', text: JSON.stringify(result) }],
          structuredContent: result,
        });
      } catch (err) {
        this.#reply(message.id, undefined, err);
      }
      return;
    }
    if (message.method === 'tools/call') {
      try {
        authorize(this.policy.owner, this.policy.toolAction(String(params.name)), this.policy.allowList);
      } catch (err) {
        this.#reply(message.id, undefined, err);
        return;
      }
    }
    if (this.#inFlight.has(message.id)) {
      this.#reply(
        message.id,
        undefined,
        new RivetError(
          `request id ${show(message.id)} is already in use by a request in progress — use a new id`,
          'bad_request',
        ),
      );
      return;
    }
    this.#inFlight.add(message.id);
    if (message.method === 'tools/list') this.#listing.add(message.id);
    this.onmessage?.(message, extra);
  }
}
