// `serve`, `token` and `install-units`: the enrollment service, its one-time tokens, and the
// systemd units that run it and the daily renewal on the CA host (DESIGN §4.7).
import path from 'node:path';
import type { CommandModule } from 'yargs';
import { context, print, printJson, run, type GlobalArgs } from './common.ts';
import { bootstrapSecret, DEFAULT_SERVE_PORT } from '../../lib/sys/config.ts';
import { parseIdentityOf } from '../../lib/core/identity.ts';
import { parseDuration } from '../../lib/core/duration.ts';
import { UsageError, show } from '../../lib/core/errors.ts';
import { mintToken } from '../../lib/ops/tokens.ts';
import { installCaUnits } from '../../lib/ops/units.ts';

export const DEFAULT_PORT = DEFAULT_SERVE_PORT;

/** `host:port`, `[v6]:port` or a bare port; port 0 picks a free one. */
export function parseListen(text: string | undefined, flag = '--listen'): { host: string; port: number } {
  if (text === undefined) return { host: '0.0.0.0', port: DEFAULT_PORT };
  const m = /^(?:\[([0-9a-fA-F:.]+)\]:|([A-Za-z0-9.-]*):)?(\d{1,5})$/.exec(text);
  if (!m || Number(m[3]) > 65535)
    throw new UsageError(`${flag} ${show(text)} must be host:port, like 0.0.0.0:8443 or 127.0.0.1:0`);
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port: Number(m[3]) };
}

type ServeArgs = GlobalArgs & { listen?: string; tlsCert?: string; tlsKey?: string; metricsListen?: string };

export const commands: CommandModule<GlobalArgs, any>[] = [
  {
    command: 'serve',
    describe: 'run the HTTPS enrollment service (/enroll, /renew, /agents, /crl.pem, /ca.crt, /healthz)',
    builder: (y) =>
      y
        .option('listen', { type: 'string', describe: `host:port to listen on (default 0.0.0.0:${DEFAULT_PORT})` })
        .option('tls-cert', { type: 'string', describe: 'server certificate (default RIVET_NODE_DIR/node.crt)' })
        .option('tls-key', { type: 'string', describe: 'server key (default RIVET_NODE_DIR/node.key)' })
        .option('metrics-listen', {
          type: 'string',
          describe:
            'also serve GET /metrics over plain HTTP here, e.g. 127.0.0.1:9464 (a bare port binds loopback); on the HTTPS listener it needs a mesh client cert',
        }),
    handler: run(async (args: ServeArgs) => {
      const { config, ca } = context(args);
      const listen = parseListen(args.listen);
      const metricsListen =
        args.metricsListen === undefined
          ? undefined
          : parseListen(
              /^\d+$/.test(args.metricsListen) ? `127.0.0.1:${args.metricsListen}` : args.metricsListen,
              '--metrics-listen',
            );
      // Every line timestamped (journald adds its own, a plain redirect to a file does not).
      const log = (line: string) => process.stderr.write(`${new Date().toISOString()} rivet-ca serve: ${line}\n`);
      const secret = bootstrapSecret(config.env, (msg) => log(`warning: ${msg}`));
      if (!secret)
        log('no bootstrap secret configured — /enroll accepts one-time tokens only (`rivet-ca token <node-id>`)');
      // Loaded here, not at the top: the service brings http, https and tls, which every other
      // command would otherwise load at start-up (scripts/launch.mjs).
      const { startEnrollService } = await import('../../lib/service/server.ts');
      const { refreshHostTrust } = await import('../../lib/node/host.ts');
      const { pushOptionsFrom } = await import('../../lib/distribute/push.ts');
      const service = await startEnrollService({
        ca: { ...ca, log: undefined },
        sanCidrs: config.sanCidrs,
        secret,
        ...listen,
        log,
        metricsListen,
        push: pushOptionsFrom(config, ca.domain),
        onCrlsRefreshed: async () => {
          await refreshHostTrust(ca, config.nodeDir).catch((err: Error) =>
            log(`CA host node dir not refreshed: ${err.message}`),
          );
        },
        tlsCert: path.resolve(args.tlsCert ?? path.join(config.nodeDir, 'node.crt')),
        tlsKey: path.resolve(args.tlsKey ?? path.join(config.nodeDir, 'node.key')),
      });
      // One line on stdout with the real port, so scripts (and tests) listening on :0 can find it.
      print(`listening on https://${service.host.includes(':') ? `[${service.host}]` : service.host}:${service.port}`);
      if (metricsListen)
        print(
          `metrics on http://${metricsListen.host.includes(':') ? `[${metricsListen.host}]` : metricsListen.host}:${service.metricsPort}/metrics`,
        );
      await new Promise<void>((resolve) => {
        const stop = () => {
          log('shutting down');
          void service.close().then(resolve);
        };
        process.once('SIGTERM', stop);
        process.once('SIGINT', stop);
      });
    }),
  },
  {
    command: 'token <node>',
    describe: 'mint a single-use enrollment token bound to one node-id (printed once)',
    builder: (y) =>
      y
        .positional('node', { type: 'string', describe: 'node-id, e.g. ct115' })
        .option('ttl', { type: 'string', default: '1h', describe: 'how long the token stays valid (1m to 30d)' }),
    handler: run(async (args: GlobalArgs & { node: string; ttl: string }) => {
      const ttlMs = parseDuration(args.ttl, '--ttl');
      const { ca } = context(args);
      const id = parseIdentityOf('node', String(args.node), ca.domain);
      if (id.kind !== 'node') return 2;
      const t = await mintToken(ca, id.nodeId, ttlMs);
      if (args.json) return printJson({ token: t.token, id: t.id, node: id.nodeId, expires: t.expires.toISOString() });
      print(t.token);
      process.stderr.write(
        `token ${t.id} for ${id.nodeId}, single use, valid until ${t.expires.toISOString()} — shown only now; only its hash is stored\n`,
      );
    }),
  },
  {
    command: 'install-units',
    describe: 'install the systemd units of the CA host: rivet-serve.service and the daily rivet-renew.timer',
    builder: (y) =>
      y
        .option('root', {
          type: 'string',
          default: '/',
          describe: 'install under this root instead of / (staging an image, tests)',
        })
        .option('listen', { type: 'string', describe: `host:port serve listens on (default 0.0.0.0:${DEFAULT_PORT})` })
        .option('secret-file', {
          type: 'string',
          describe:
            'root-only file holding the bootstrap secret (default RIVET_BOOTSTRAP_SECRET_FILE, else /etc/rivet-ca/bootstrap.secret)',
        }),
    handler: run(async (args: GlobalArgs & { root: string; listen?: string; secretFile?: string }) => {
      const { config } = context(args);
      const l = parseListen(args.listen);
      const r = await installCaUnits({
        root: args.root,
        caDir: config.caDir,
        nodeDir: config.nodeDir,
        listen: `${l.host.includes(':') ? `[${l.host}]` : l.host}:${l.port}`,
        secretFile: args.secretFile ?? config.env.RIVET_BOOTSTRAP_SECRET_FILE ?? '/etc/rivet-ca/bootstrap.secret',
      });
      if (args.json) return printJson(r);
      print(r.changed.length ? `wrote ${r.changed.join(', ')}` : `unchanged: ${r.files.join(', ')}`);
      if (r.next) print(r.next);
    }),
  },
];
