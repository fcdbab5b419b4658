import path from 'node:path';
import { GatewayError } from '../errors';

/**
 * Spool directories open in this process. Two gateways or middlewares appending to one spool would interleave
 * their group commits and move each other's cursors: the second one to open it is refused with a clear error
 * instead. Resolved paths, released on close. (The one piece of state shared by every instance in a process,
 * and only to keep them apart.)
 */
const claimed = new Set<string>();

/** Claims SPOOL_DIR for one instance; returns the release. Throws ERR_CONFIG_INVALID when it is taken. */
export function claimSpoolDir(dir: string): () => void {
  const key = path.resolve(dir);
  if (claimed.has(key)) {
    throw new GatewayError(
      'ERR_CONFIG_INVALID',
      `Invalid configuration: SPOOL_DIR=${JSON.stringify(dir)} is already used by another gateway or audit middleware in this process: give each instance its own SPOOL_DIR.`,
    );
  }
  claimed.add(key);
  let released = false;
  return () => {
    if (released) return;
    released = true;
    claimed.delete(key);
  };
}
