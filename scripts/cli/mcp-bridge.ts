// `rivet-ca mcp-bridge`: stdio ↔ a mesh MCP server over mTLS, for Claude Desktop and Cursor
// (docs/MCP.md). The work is in lib/mcp/bridge.ts; stdout carries the protocol, so everything this
// command says goes to stderr.
import type { CommandModule } from 'yargs';
import { run, type GlobalArgs } from './common.ts';
import { RivetError, UsageError } from '../../lib/core/errors.ts';

type BridgeArgs = GlobalArgs & {
  url: string;
  agent?: string;
  cert?: string;
  key?: string;
  p12?: string;
  passphraseFile?: string;
  nodeDir?: string;
  ca?: string;
  crl?: string;
  servername?: string;
  connectTo?: string;
};

/** lib/mcp needs the MCP SDK, an optional peer dependency: loaded only by this command. */
async function loadMcp(): Promise<typeof import('../../lib/mcp.ts')> {
  try {
    return await import('../../lib/mcp.ts');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ERR_MODULE_NOT_FOUND' && code !== 'MODULE_NOT_FOUND') throw err;
    throw new RivetError(
      `mcp-bridge needs @modelcontextprotocol/sdk — \`npm install @modelcontextprotocol/sdk\` beside rivet-ca (${(err as Error).message.split('\n')[0]})`,
      'missing_dependency',
    );
  }
}

export const commands: CommandModule<GlobalArgs, any>[] = [
  {
    command: 'mcp-bridge',
    describe: 'a stdio MCP server forwarding to a mesh MCP server over mTLS (for Claude Desktop, Cursor)',
    builder: (y) =>
      y
        .option('url', {
          type: 'string',
          demandOption: true,
          describe: 'the mesh MCP endpoint, e.g. https://ct110-mcp.mesh:8443/mcp',
        })
        .option('agent', { type: 'string', describe: 'present RIVET_NODE_DIR/agents/<agent>.crt' })
        .option('cert', { type: 'string', describe: 'present this certificate (with --key), e.g. a user cert' })
        .option('key', { type: 'string', describe: 'the private key of --cert' })
        .option('p12', {
          type: 'string',
          describe: 'present the identity in this PKCS#12 file (with --passphrase-file)',
        })
        .option('passphrase-file', {
          type: 'string',
          describe: 'file holding the --p12 passphrase (never on the command line)',
        })
        .option('node-dir', {
          type: 'string',
          describe: 'where rivet-ca.crt, crl.pem and agents/ are (env RIVET_NODE_DIR, default /etc/rivetos)',
        })
        .option('ca', {
          type: 'string',
          describe: 'CA chain to verify the server with (default <node-dir>/rivet-ca.crt)',
        })
        .option('crl', { type: 'string', describe: 'CRL bundle (default <node-dir>/crl.pem)' })
        .option('servername', { type: 'string', describe: 'the name the server must prove, when --url holds an IP' })
        .option('connect-to', {
          type: 'string',
          describe: "host:port to connect to instead of the URL's (its name is still verified)",
        }),
    handler: run(async (args: BridgeArgs) => {
      if (args.agent === undefined && args.cert === undefined && args.key === undefined && args.p12 === undefined) {
        throw new UsageError('give an identity: --agent NAME, --cert F --key F, or --p12 F --passphrase-file F');
      }
      const { startMcpBridge } = await loadMcp();
      const log = (line: string) => process.stderr.write(`rivet-ca mcp-bridge: ${line}\n`);
      const bridge = await startMcpBridge({
        url: args.url,
        servername: args.servername,
        connectTo: args.connectTo,
        log,
        identity: {
          dir: args.nodeDir,
          domain: args.domain,
          agent: args.agent,
          cert: args.cert,
          key: args.key,
          p12: args.p12,
          passphraseFile: args.passphraseFile,
          ca: args.ca,
          crl: args.crl,
        },
      });
      process.once('SIGTERM', () => void bridge.close());
      process.once('SIGINT', () => void bridge.close());
      return bridge.done;
    }),
  },
];
