// Who may push CRLs to a node (DESIGN §5): by default only the CA host's node identity, which
// `provision-ct enroll` records in node.json as `caHost` — the node whose certificate answered the
// pinned first contact (the enrollment service presents the CA host's node cert, DESIGN §4.7).
// A bundle authenticates itself, but a node that took CRLs from anyone would let any mesh
// certificate probe and churn its state; so the sender is narrowed to the one node that has them.
import fs from 'node:fs';
import path from 'node:path';
import { RivetError, show } from '../core/errors.ts';
import { nodeId, type NodeId } from '../core/identity.ts';

export const NODE_SETTINGS_FILE = 'node.json';
export const CA_HOST_FIELD = 'caHost';

/** The CA host recorded in `dir`/node.json, or undefined when none is (not enrolled by provision-ct, or before it recorded one). */
export function recordedCaHost(dir: string): NodeId | undefined {
  const file = path.join(dir, NODE_SETTINGS_FILE);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new RivetError(`cannot read ${show(file)}: ${(err as Error).message}`, 'bad_settings');
  }
  let value: unknown;
  try {
    value = (JSON.parse(text) as Record<string, unknown>)[CA_HOST_FIELD];
  } catch (err) {
    throw new RivetError(
      `${show(file)} is not JSON (${(err as Error).message}) — re-run \`provision-ct enroll\` to rewrite it`,
      'bad_settings',
    );
  }
  if (value === undefined) return undefined;
  try {
    return nodeId(String(value));
  } catch (err) {
    throw new RivetError(
      `${show(file)} field ${CA_HOST_FIELD} ${show(value)} is not a node id: ${(err as Error).message}`,
      'bad_settings',
    );
  }
}
