/** How `ce-audit verify` prints its result: a readable report, or one JSON document (--json). */
import type { Finding } from './findings';
import type { VerifyResult } from './verify';

const MAX_SOURCES = 3;

function findingLine(f: Finding): string {
  const tag = f.problem ? 'PROBLEM' : 'note   ';
  let line = `  ${tag} ${f.code.padEnd(19)} ${f.message}`;
  if (f.fields && f.fields.length > 0) line += ` [fields: ${f.fields.join(', ')}]`;
  const where: string[] = [];
  if (f.id) where.push(`id ${f.id}`);
  if (f.sources && f.sources.length > 0) {
    where.push(
      f.sources.slice(0, MAX_SOURCES).join(', ') + (f.sources.length > MAX_SOURCES ? `, +${f.sources.length - MAX_SOURCES} more` : ''),
    );
  }
  if (where.length > 0) line += ` (${where.join('; ')})`;
  return line;
}

export function renderText(r: VerifyResult): string {
  const out: string[] = [];
  out.push(`inputs (${r.inputs.length}):`);
  for (const i of r.inputs) {
    const formats = i.formats.length === 0 ? 'no gateway events' : i.formats.join(' + ');
    out.push(`  ${i.path}: ${formats}; ${i.lines} lines, ${i.candidates} events, ${i.foreign} foreign`);
  }
  for (const l of r.logs) {
    out.push('');
    out.push(`log ${l.log}${l.region ? ` (region ${l.region})` : ''}`);
    const span = l.events > 0 ? `seq ${l.firstSeq}-${l.lastSeq}, ${l.firstTime ?? '?'} to ${l.lastTime ?? '?'}` : 'none';
    out.push(`  events: ${l.events} (${span}); ${l.verified} verified against signed checkpoints; covered up to seq ${l.coveredUpTo - 1}`);
    const verdicts = Object.entries(l.checkpoints.verdicts)
      .map(([v, n]) => `${n} ${v}`)
      .join(', ');
    out.push(
      `  checkpoints: ${l.checkpoints.found} found, ${l.checkpoints.trusted} trusted${verdicts ? ` (${verdicts})` : ''}${
        l.checkpoints.keys.length > 0 ? `; keys: ${l.checkpoints.keys.join(', ')}` : ''
      }`,
    );
    for (const f of [...l.findings].sort((a, b) => Number(b.problem) - Number(a.problem))) out.push(findingLine(f));
  }
  if (r.findings.length > 0) {
    out.push('');
    for (const f of r.findings) out.push(findingLine(f));
  }
  out.push('');
  out.push(r.problems === 0 ? 'OK: no problem found.' : `FAILED: ${r.problems} problem${r.problems === 1 ? '' : 's'} found.`);
  return `${out.join('\n')}\n`;
}

export function renderJson(r: VerifyResult): string {
  const doc = {
    ok: r.problems === 0,
    problems: r.problems,
    inputs: r.inputs,
    logs: r.logs.map((l) => ({
      log: l.log,
      region: l.region,
      events: l.events,
      verified: l.verified,
      firstSeq: l.firstSeq,
      lastSeq: l.lastSeq,
      firstTime: l.firstTime,
      lastTime: l.lastTime,
      coveredUpTo: l.coveredUpTo,
      checkpoints: l.checkpoints,
      findings: l.findings,
    })),
    findings: r.findings,
  };
  return `${JSON.stringify(doc, null, 2)}\n`;
}
