// A fresh temporary directory per call (mkdtemp: unique even with suites running in parallel).
// Its own file so the unit tier imports no CA machinery.
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

export async function tempDir(prefix = 'rivet-test-'): Promise<string> {
  return fsp.mkdtemp(path.join(os.tmpdir(), prefix));
}
