import { constants } from 'node:fs';
import { mkdir, open, unlink } from 'node:fs/promises';
import path from 'node:path';
import { GatewayError } from '../errors';

interface Explanation {
  what: string;
  fix: string;
}

/** What a file-system error code means for a directory the gateway must write, and what an operator does about it. */
function explain(code: string | undefined, setting: string): Explanation {
  const elsewhere = `or set ${setting} to a directory on a disk that can be written`;
  switch (code) {
    case 'ENOSPC':
      return { what: 'the disk is full (ENOSPC)', fix: `free space on that volume or give it more, ${elsewhere}` };
    case 'EDQUOT':
      return { what: 'the disk quota is exhausted (EDQUOT)', fix: `raise the quota or free space, ${elsewhere}` };
    case 'EROFS':
      return {
        what: 'the file system is read-only (EROFS)',
        fix: `mount a writable volume there (in Kubernetes: an emptyDir or a persistent volume not mounted readOnly), ${elsewhere}`,
      };
    case 'EACCES':
    case 'EPERM': {
      const uid = typeof process.getuid === 'function' ? `${process.getuid()}:${process.getgid?.() ?? ''}` : 'the gateway';
      return {
        what: `permission denied (${code})`,
        fix: `make it writable by the gateway's user (chown ${uid} on the directory; in Kubernetes: securityContext.fsGroup), ${elsewhere}`,
      };
    }
    case 'EIO':
      return { what: 'the disk reported an I/O error (EIO)', fix: `check the volume (the kernel log says more), ${elsewhere}` };
    case 'ENOTDIR':
    case 'EEXIST':
      return { what: `a file is in the way of the directory (${code})`, fix: `remove that file, ${elsewhere}` };
    case 'ENOENT':
      return { what: 'the directory is missing and cannot be created (ENOENT)', fix: `create it, ${elsewhere}` };
    case 'EREMOVED':
      return { what: 'a file the gateway was writing was removed from under it', fix: 'leave the directory to the gateway while it runs' };
    default:
      return { what: code ? `it failed with ${code}` : 'it failed', fix: `check the volume, ${elsewhere}` };
  }
}

function codeOf(err: unknown): string | undefined {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** One line for logs and readiness: what is wrong with the directory and the fix. */
export function describeStorageProblem(err: unknown, setting: string, dir: string): string {
  const { what, fix } = explain(codeOf(err), setting);
  return `${setting} ${JSON.stringify(dir)} cannot be written: ${what}. Fix: ${fix}.`;
}

/** The start-up failure for a directory the gateway cannot write: the process exits 2 with this message. */
export function storageUnusable(err: unknown, setting: string, dir: string): GatewayError {
  const detail = err instanceof Error ? ` (${err.message})` : '';
  return new GatewayError(
    'ERR_STORAGE_UNUSABLE',
    `${describeStorageProblem(err, setting, dir)} The gateway does not start without a place to keep audit events${detail}.`,
    { cause: err },
  );
}

/** Bytes a start-up probe writes (and syncs, and removes): a disk that cannot take this much cannot take events either. */
const PROBE_BYTES = 64 * 1024;

/**
 * Checks at start-up that `dir` can be created, written and synced: a full, read-only, forbidden or failing disk stops the
 * gateway with a message naming the setting, the directory and the fix, instead of letting it take calls it cannot audit.
 */
export async function checkWritable(setting: string, dir: string): Promise<void> {
  const probe = path.join(dir, `.write-probe-${process.pid}`);
  try {
    await mkdir(dir, { recursive: true, mode: 0o750 });
    const handle = await open(probe, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC, 0o640);
    try {
      const data = Buffer.alloc(PROBE_BYTES);
      for (let at = 0; at < data.length;) at += (await handle.write(data, at, data.length - at, at)).bytesWritten;
      await handle.datasync();
    } finally {
      await handle.close().catch(() => undefined);
      await unlink(probe).catch(() => undefined);
    }
  } catch (err) {
    throw storageUnusable(err, setting, dir);
  }
}
