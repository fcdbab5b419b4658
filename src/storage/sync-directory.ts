import { open } from 'node:fs/promises';

/**
 * Makes a file creation or rename in `dir` durable: without it a crash can lose a new file's directory entry even though
 * its data was fdatasync'ed. Best effort where the platform cannot open a directory for syncing.
 */
export async function syncDirectory(dir: string): Promise<void> {
  let handle;
  try {
    handle = await open(dir, 'r');
  } catch (err) {
    // A directory that is gone is a failure the caller must see (its file has no name); others are platform limits.
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw err;
    return;
  }
  try {
    await handle.datasync();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EINVAL' && code !== 'EISDIR' && code !== 'EPERM') throw err;
  } finally {
    await handle.close();
  }
}
