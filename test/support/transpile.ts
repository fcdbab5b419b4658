/**
 * Compiles parts of the repository to plain CommonJS in a temp dir with the TypeScript transpiler (no type check, well
 * under a second), keeping their layout so relative imports resolve, for code a test runs in a child process. Building
 * dist/ instead would tie such a test to the whole tree compiling, and would write into dist/ while others work.
 */
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import ts from 'typescript';

const ROOT = path.resolve(__dirname, '..', '..');

/** `sources`: files or directories relative to the repository root (a directory: its .ts files, not recursive). */
export async function transpile(outDir: string, sources: readonly string[]): Promise<void> {
  for (const source of sources) {
    const from = path.join(ROOT, source);
    const files = (await stat(from)).isDirectory()
      ? (await readdir(from)).filter((n) => n.endsWith('.ts') && !n.endsWith('.d.ts')).map((n) => path.join(source, n))
      : [source];
    for (const file of files) {
      const { outputText } = ts.transpileModule(await readFile(path.join(ROOT, file), 'utf8'), {
        compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true },
      });
      const out = path.join(outDir, file.replace(/\.ts$/, '.js'));
      await mkdir(path.dirname(out), { recursive: true });
      await writeFile(out, outputText);
    }
  }
}
