import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A new, empty folder under the system's temporary directory. */
export function tempDir(prefix = 'loyalty-ml-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}
