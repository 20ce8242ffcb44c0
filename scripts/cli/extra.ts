// Commands contributed by other parts of the project (service, root ceremonies). Each part
// appends its own module here so that rivet-ca.mts never changes.
import type { CommandModule } from 'yargs';
import type { GlobalArgs } from './common.ts';
import { commands as serve } from './serve.ts';
import { commands as root } from './root.ts';
import { commands as mcpBridge } from './mcp-bridge.ts';
import { commands as push } from './push.ts';

export const extraCommands: CommandModule<GlobalArgs, any>[] = [...serve, ...root, ...push, ...mcpBridge];
