/**
 * Fault injection at Node's file-system API: `node:fs/promises` and the FileHandle methods, for paths under the roots a
 * test names. The gateway's code is the code that runs in production, unchanged: it sees what a kernel would give it
 * (ENOSPC, EIO, EROFS, EACCES, writes that land only in part, operations that take seconds or never return), in the
 * places a kernel gives them.
 *
 * In a test process: `installFsFaults()` and `set(rules)`. In a gateway process: this file, compiled (see transpile.ts),
 * is loaded with `node --require` and follows the rules in the JSON file named by CE_AUDIT_FS_FAULTS, which the test
 * rewrites (writeFaultPlan); it re-reads it every 20 ms.
 */
import { constants, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
// The module object itself (not an interop copy), so that what is patched here is what the gateway calls.
import fsp = require('node:fs/promises');

export type FaultOp = 'open' | 'write' | 'sync' | 'truncate' | 'read' | 'stat' | 'mkdir' | 'rename' | 'unlink' | 'writeFile';

export interface FaultRule {
  /** Paths at or under this one. */
  under: string;
  ops: FaultOp[];
  /** Only files whose base name matches this regular expression. */
  name?: string;
  /** 'open' only when the file is opened for writing (or created). */
  writing?: boolean;
  /** Fail with this errno code (ENOSPC, EIO, EROFS, EACCES, ...). */
  error?: string;
  /** A write lands in part (half of it) before it fails, as on a disk that fills up mid-write. */
  partial?: boolean;
  /** Wait this long before doing (or failing) the operation: a slow disk. */
  delayMs?: number;
  /** Never return (after the partial write, if any): a disk that hangs. */
  hang?: boolean;
}

export interface FaultController {
  set(rules: readonly FaultRule[]): void;
  clear(): void;
  /** Files under `root` opened through node:fs/promises and not closed yet. */
  openFiles(root: string): string[];
  /** Operations that failed or waited because of a rule, by op. */
  readonly hits: Record<string, number>;
  uninstall(): void;
}

const MESSAGES: Record<string, string> = {
  ENOSPC: 'no space left on device',
  EIO: 'i/o error',
  EROFS: 'read-only file system',
  EACCES: 'permission denied',
  EDQUOT: 'disk quota exceeded',
};

const ERRNO: Record<string, number> = { ENOSPC: -28, EIO: -5, EROFS: -30, EACCES: -13, EDQUOT: -122 };

function fsError(code: string, syscall: string, file: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: ${MESSAGES[code] ?? 'injected failure'}, ${syscall} '${file}'`), {
    code,
    errno: ERRNO[code],
    syscall,
    path: file,
  });
}

function opensForWriting(flags: unknown): boolean {
  if (flags === undefined || flags === null) return false;
  if (typeof flags === 'number') {
    return (flags & (constants.O_WRONLY | constants.O_RDWR | constants.O_CREAT | constants.O_TRUNC | constants.O_APPEND)) !== 0;
  }
  return /[wa+]/.test(String(flags));
}

type AnyFn = (...args: unknown[]) => Promise<unknown>;
type Proto = Record<string, AnyFn>;

let installed: FaultController | undefined;

export function installFsFaults(): FaultController {
  if (installed) return installed;
  let rules: readonly FaultRule[] = [];
  const paths = new WeakMap<object, string>();
  const open = new Map<object, string>();
  const hits: Record<string, number> = {};
  const module = fsp as unknown as Record<string, AnyFn>;
  const originals = new Map<string, AnyFn>();
  let proto: Proto | undefined;
  const protoOriginals = new Map<string, AnyFn>();

  const matching = (op: FaultOp, file: string | undefined, flags?: unknown): FaultRule | undefined => {
    if (file === undefined) return undefined;
    const abs = path.resolve(file);
    return rules.find(
      (r) =>
        r.ops.includes(op) &&
        (abs === r.under || abs.startsWith(r.under.endsWith(path.sep) ? r.under : r.under + path.sep)) &&
        (r.name === undefined || new RegExp(r.name).test(path.basename(abs))) &&
        (op !== 'open' || !r.writing || opensForWriting(flags)),
    );
  };

  /** Applies the rule's delay and failure; resolves when the real operation may run. */
  const apply = async (rule: FaultRule | undefined, op: FaultOp, file: string): Promise<void> => {
    if (!rule) return;
    hits[op] = (hits[op] ?? 0) + 1;
    if (rule.delayMs) await new Promise((r) => setTimeout(r, rule.delayMs));
    if (rule.hang) await new Promise(() => undefined);
    if (rule.error) throw fsError(rule.error, op, file);
  };

  const wrapModule = (name: string, op: FaultOp, fileArg = 0): void => {
    const original = module[name] as AnyFn;
    originals.set(name, original);
    module[name] = async function (this: unknown, ...args: unknown[]) {
      const file = typeof args[fileArg] === 'string' ? (args[fileArg] as string) : undefined;
      let rule = matching(op, file, args[1]);
      // mkdir of a directory that exists succeeds, read-only or not.
      if (rule && op === 'mkdir' && file !== undefined) {
        try {
          if (statSync(file).isDirectory()) rule = undefined;
        } catch {
          // Missing: the rule applies.
        }
      }
      await apply(rule, op, file ?? '');
      return original.apply(this, args);
    };
  };

  const wrapProto = (name: string, op: FaultOp): void => {
    if (!proto) return;
    const original = proto[name] as AnyFn;
    protoOriginals.set(name, original);
    proto[name] = async function (this: object, ...args: unknown[]) {
      const file = paths.get(this);
      const rule = matching(op, file);
      if (rule && op === 'write' && rule.partial && Buffer.isBuffer(args[0])) {
        const [buffer, offset = 0, length = (args[0] as Buffer).length - ((args[1] as number) ?? 0), position] = args as [
          Buffer,
          number?,
          number?,
          number?,
        ];
        hits.write = (hits.write ?? 0) + 1;
        // Half of the write, never ending just after a newline: two lines of the same length would otherwise land
        // one whole line and look like no tear at all.
        let half = Math.floor(length / 2);
        if (half > 1 && buffer[offset + half - 1] === 0x0a) half -= 1;
        if (half > 0) await original.call(this, buffer, offset, half, position);
        if (rule.delayMs) await new Promise((r) => setTimeout(r, rule.delayMs));
        if (rule.hang) await new Promise(() => undefined);
        throw fsError(rule.error ?? 'ENOSPC', 'write', file ?? '');
      }
      await apply(rule, op, file ?? '');
      return original.apply(this, args);
    };
  };

  const patchHandles = (handle: object): void => {
    if (proto) return;
    proto = Object.getPrototypeOf(handle) as Proto;
    wrapProto('write', 'write');
    wrapProto('writev', 'write');
    wrapProto('datasync', 'sync');
    wrapProto('sync', 'sync');
    wrapProto('truncate', 'truncate');
    wrapProto('read', 'read');
    wrapProto('stat', 'stat');
  };

  const realOpen = module.open as AnyFn;
  originals.set('open', realOpen);
  module.open = async function (this: unknown, ...args: unknown[]) {
    const file = typeof args[0] === 'string' ? (args[0] as string) : undefined;
    await apply(matching('open', file, args[1]), 'open', file ?? '');
    const handle = (await realOpen.apply(this, args)) as object;
    patchHandles(handle);
    if (file !== undefined) {
      paths.set(handle, path.resolve(file));
      open.set(handle, path.resolve(file));
      // close is an instance property of a FileHandle, not a prototype method.
      const target = handle as { close: AnyFn };
      const close = target.close;
      target.close = function (this: unknown, ...closeArgs: unknown[]) {
        open.delete(handle);
        return close.apply(handle, closeArgs);
      };
    }
    return handle;
  };
  wrapModule('mkdir', 'mkdir');
  wrapModule('rename', 'rename', 1);
  wrapModule('unlink', 'unlink');
  wrapModule('writeFile', 'writeFile');
  wrapModule('truncate', 'truncate');

  installed = {
    set: (next) => {
      rules = next.map((r) => ({ ...r, under: path.resolve(r.under) }));
    },
    clear: () => {
      rules = [];
    },
    openFiles: (root) => [...open.values()].filter((f) => f === path.resolve(root) || f.startsWith(path.resolve(root) + path.sep)),
    hits,
    uninstall: () => {
      for (const [name, fn] of originals) module[name] = fn;
      if (proto) for (const [name, fn] of protoOriginals) proto[name] = fn;
      installed = undefined;
    },
  };
  return installed;
}

/** Replaces the plan a gateway process follows (atomically: it never reads half a plan). */
export function writeFaultPlan(file: string, rules: readonly FaultRule[]): void {
  writeFileSync(`${file}.tmp`, JSON.stringify(rules));
  renameSync(`${file}.tmp`, file);
}

/** As a --require preload: follow the plan file named by CE_AUDIT_FS_FAULTS. */
const planFile = process.env.CE_AUDIT_FS_FAULTS;
if (planFile) {
  const faults = installFsFaults();
  let seen = '';
  const load = (): void => {
    let text = '';
    try {
      text = readFileSync(planFile, 'utf8');
    } catch {
      return;
    }
    if (text === seen) return;
    seen = text;
    try {
      faults.set(JSON.parse(text) as FaultRule[]);
    } catch {
      // A plan being replaced: the next read gets it whole.
    }
  };
  load();
  setInterval(load, 20).unref();
}
