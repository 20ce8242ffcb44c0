// The MCP endpoint of a mesh server: the SDK's Streamable HTTP transport behind one gate that (1)
// reads the caller from the certificate the TLS stack verified and hands it to the SDK as
// `authInfo`, (2) binds each Mcp-Session-Id to the identity that opened it — a request from any
// other certificate gets 403 and touches nothing of the session — and (3) puts the allow-list
// guard (guard.ts) in front of every session's server. Sessions are bounded per identity and end
// when idle, when closed by the client, or when their certificate is revoked (dropRevoked).
import { randomUUID, type X509Certificate } from 'node:crypto';
import type { IncomingMessage, ServerResponse, Server as HttpServer } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import { RivetError, show } from '../core/errors.ts';
import { peerIdentity, type PeerIdentity } from '../mesh/peer.ts';
import type { AllowList } from '../mesh/authz.ts';
import { SessionAttachment, type AttachedSession } from './attach.ts';
import { GuardedTransport } from './guard.ts';
import { authInfoOf } from './identity.ts';
import { sendRpcRefusal } from './errors.ts';
import { revokedSessions, type CrlSource } from './revocation.ts';

/** What `createServer` returns: an McpServer or the SDK's low-level Server. */
export type McpServerLike = { connect(transport: Transport): Promise<void>; close(): Promise<void> };

export type MountMcpOptions = {
  /** Builds the MCP server of one new session, for the identity that opens it. */
  createServer: (who: PeerIdentity) => McpServerLike | Promise<McpServerLike>;
  /** Who may list and call which tool (lib/mesh/authz.ts): default deny. */
  allowList: AllowList;
  /** The allow-list action of calling a tool; default the tool's own name (`memory.search`). */
  toolAction?: (tool: string) => string;
  /** URL path of the endpoint, default `/mcp` (mountMcp only). */
  path?: string;
  domain?: string;
  /** Sessions one identity may hold; opening one more ends its least recently used. Default 8. */
  maxSessionsPerIdentity?: number;
  /** A session unused this long (and with no open request) ends. Default 30 minutes. */
  idleMs?: number;
  /** Requests to other paths (mountMcp only); default 404. */
  fallback?: (req: IncomingMessage, res: ServerResponse) => void;
  onError?: (err: Error) => void;
};

export type McpSessionInfo = { id: string; owner: PeerIdentity; attached?: AttachedSession; serials: string[] };

export type McpMesh = {
  /** Answers one request to the MCP endpoint (for routers that mount it themselves). */
  handle(req: IncomingMessage, res: ServerResponse): Promise<void>;
  /** The agent attached to MCP session `sessionId`, if `token` is its session token. */
  sessionOf(sessionId: string, token: string): AttachedSession | undefined;
  sessions(): McpSessionInfo[];
  /** Ends every session opened by `cn`; returns how many. */
  endSessionsOf(cn: string): Promise<number>;
  /** Ends every session that used a certificate the given CRLs revoke (pass watchMeshTls's onReload material). */
  dropRevoked(tls: CrlSource): Promise<number>;
  close(): Promise<void>;
};

type Entry = {
  id: string;
  owner: PeerIdentity;
  transport: StreamableHTTPServerTransport;
  server: McpServerLike;
  attachment: SessionAttachment;
  serials: Set<string>;
  lastUsed: number;
  open: number;
};

export function meshMcp(opts: MountMcpOptions): McpMesh {
  const sessions = new Map<string, Entry>();
  const maxPerIdentity = opts.maxSessionsPerIdentity ?? 8;
  const idleMs = opts.idleMs ?? 30 * 60_000;
  const toolAction = opts.toolAction ?? ((tool: string) => tool);
  const report = (err: unknown) => opts.onError?.(err as Error);

  const end = async (e: Entry) => {
    if (!sessions.delete(e.id)) return;
    await e.transport.close().catch(report);
    await e.server.close().catch(report);
  };
  const sweep = setInterval(
    () => {
      const now = Date.now();
      for (const e of sessions.values()) if (e.open === 0 && now - e.lastUsed > idleMs) void end(e);
    },
    Math.max(1000, Math.min(60_000, idleMs / 4)),
  );
  sweep.unref();

  const caller = (req: IncomingMessage): { who: PeerIdentity; cert: X509Certificate } => {
    const socket = req.socket as TLSSocket;
    const who = peerIdentity(socket, { domain: opts.domain });
    return { who, cert: socket.getPeerX509Certificate()! };
  };

  const serve = async (e: Entry, req: IncomingMessage, res: ServerResponse, cert: X509Certificate) => {
    e.serials.add(cert.serialNumber.toUpperCase());
    e.lastUsed = Date.now();
    e.open++;
    res.once('close', () => {
      e.open--;
      e.lastUsed = Date.now();
    });
    (req as IncomingMessage & { auth?: unknown }).auth = authInfoOf(
      e.owner,
      cert,
      opts.allowList.rules()[e.owner.cn] ?? [],
    );
    await e.transport.handleRequest(req, res);
  };

  const open = async (who: PeerIdentity, req: IncomingMessage, res: ServerResponse, cert: X509Certificate) => {
    const attachment = new SessionAttachment();
    const entry: Entry = {
      id: '',
      owner: who,
      transport: undefined!,
      server: undefined!,
      attachment,
      serials: new Set(),
      lastUsed: Date.now(),
      open: 0,
    };
    entry.transport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      onsessioninitialized: (id) => {
        entry.id = id;
        const mine = [...sessions.values()]
          .filter((s) => s.owner.cn === who.cn)
          .sort((a, b) => a.lastUsed - b.lastUsed);
        for (const old of mine.slice(0, Math.max(0, mine.length - maxPerIdentity + 1))) void end(old);
        sessions.set(id, entry);
      },
      onsessionclosed: (id) => {
        sessions.delete(id);
        void entry.server.close().catch(report);
      },
    });
    entry.server = await opts.createServer(who);
    await entry.server.connect(
      new GuardedTransport(entry.transport, { owner: who, allowList: opts.allowList, toolAction, attachment }),
    );
    await serve(entry, req, res, cert);
    // Anything but an initialize request leaves no session behind.
    if (!sessions.has(entry.id)) await entry.server.close().catch(report);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    try {
      const { who, cert } = caller(req);
      const sid = req.headers['mcp-session-id'];
      if (sid === undefined) {
        if (req.method !== 'POST')
          throw new RivetError('Mcp-Session-Id header is required — initialize a session first (POST)', 'bad_request');
        return await open(who, req, res, cert);
      }
      const e = typeof sid === 'string' ? sessions.get(sid) : undefined;
      if (!e)
        throw new RivetError(
          `MCP session ${show(String(sid))} not found — it ended or never existed; initialize a new one`,
          'unknown_session',
        );
      if (e.owner.cn !== who.cn)
        throw new RivetError(
          `MCP session ${show(sid)} belongs to another identity, not ${show(who.cn)} — sessions cannot be shared`,
          'not_your_session',
        );
      await serve(e, req, res, cert);
    } catch (err) {
      if (!(err instanceof RivetError)) report(err);
      sendRpcRefusal(res, err);
    }
  };

  return {
    handle,
    sessionOf: (sid, token) => sessions.get(sid)?.attachment.matches(token),
    sessions: () =>
      [...sessions.values()].map((e) => ({
        id: e.id,
        owner: e.owner,
        attached: e.attachment.current,
        serials: [...e.serials],
      })),
    endSessionsOf: async (cn) => {
      const mine = [...sessions.values()].filter((e) => e.owner.cn === cn);
      await Promise.all(mine.map(end));
      return mine.length;
    },
    dropRevoked: async (tls) => {
      const gone = revokedSessions([...sessions.values()], tls);
      await Promise.all(gone.map(end));
      return gone.length;
    },
    close: async () => {
      clearInterval(sweep);
      await Promise.all([...sessions.values()].map(end));
    },
  };
}

/**
 * One call: the MCP endpoint at `path` (default /mcp) of a mesh https server made with
 * meshServerOptions; other paths go to `fallback` (default 404). Sessions end with the server.
 */
export function mountMcp(server: HttpServer, opts: MountMcpOptions): McpMesh {
  const mcp = meshMcp(opts);
  const at = opts.path ?? '/mcp';
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const pathname = (req.url ?? '/').split('?')[0];
    if (pathname === at) return void mcp.handle(req, res);
    if (opts.fallback) return opts.fallback(req, res);
    sendRpcRefusal(res, new RivetError(`no MCP endpoint at ${show(pathname)} — it is at ${at}`, 'not_found'));
  });
  server.once('close', () => void mcp.close());
  return mcp;
}
