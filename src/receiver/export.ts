/**
 * What an auditor downloads from each service, made from what the receiver accepted (tests and the demo):
 *  - LogDNA / Activity Tracker export (`/v1/export`): JSON lines, the line as sent in `_line`, the service's own
 *    fields (`_ts`, `_app`, `_host`, `_lid`, `_logtype`, `level`) and the line's parsed JSON merged on top;
 *  - IBM Cloud Logs query results: `{metadata, labels, user_data}` with the event re-serialised (the service keeps a
 *    parsed copy: here its members come out in another order), as JSON lines or as the server-sent events of
 *    `POST /v1/query` (a query_id item, then result items, with keep-alive comments).
 */
import { createHash } from 'node:crypto';
import type { ReceivedEvent } from './types';

function idOf(e: ReceivedEvent, i: number): string {
  return createHash('sha256').update(`${e.receivedAt}:${i}:${e.raw}`).digest('hex').slice(0, 32);
}

/** LogDNA's export of the events received on its ingest API. */
export function logdnaExport(events: readonly ReceivedEvent[]): string {
  let out = '';
  events.forEach((e, i) => {
    if (e.api !== 'logdna') return;
    const parsed = e.event !== null && typeof e.event === 'object' && !Array.isArray(e.event) ? (e.event as Record<string, unknown>) : {};
    const line = {
      _account: 'receiver',
      _app: e.meta.app,
      _host: e.meta.hostname,
      _lid: idOf(e, i),
      _line: e.raw,
      _logtype: Object.keys(parsed).length > 0 ? 'json' : 'customapp',
      _ts: e.meta.timestamp,
      level: e.meta.level,
      ...parsed,
    };
    out += `${JSON.stringify(line)}\n`;
  });
  return out;
}

/** A JSON value written again with every object's members in reverse order, as a re-serialising store may. */
function reserialise(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(reserialise);
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(value).reverse()) {
    Object.defineProperty(out, key, {
      value: reserialise((value as Record<string, unknown>)[key]),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return out;
}

function cloudLogsResult(e: ReceivedEvent, i: number): Record<string, unknown> {
  const severity = ['Debug', 'Verbose', 'Info', 'Warning', 'Error', 'Critical'][Number(e.meta.severity) - 1] ?? 'Info';
  return {
    metadata: [
      { key: 'timestamp', value: new Date(Number(e.meta.timestamp)).toISOString() },
      { key: 'severity', value: severity },
      { key: 'logid', value: idOf(e, i) },
    ],
    labels: [
      { key: 'applicationname', value: String(e.meta.applicationName) },
      { key: 'subsystemname', value: String(e.meta.subsystemName) },
    ],
    user_data: typeof e.event === 'string' ? e.event : JSON.stringify(reserialise(e.event)),
  };
}

/** IBM Cloud Logs query results of the events received on its ingest API, one result per line. */
export function cloudLogsResults(events: readonly ReceivedEvent[]): string {
  return events.map((e, i) => (e.api === 'cloud-logs' ? `${JSON.stringify(cloudLogsResult(e, i))}\n` : '')).join('');
}

/** The same as the raw server-sent-event stream of `POST /v1/query`, `perItem` results per data item. */
export function cloudLogsSse(events: readonly ReceivedEvent[], perItem = 3): string {
  const results = events.flatMap((e, i) => (e.api === 'cloud-logs' ? [cloudLogsResult(e, i)] : []));
  let out = `: keep-alive\n\ndata: ${JSON.stringify({ query_id: { query_id: 'e3c2b1a0-0000-4000-8000-000000000000' } })}\n\n`;
  for (let i = 0; i < results.length; i += perItem) {
    out += `data: ${JSON.stringify({ result: { results: results.slice(i, i + perItem) } })}\n\n`;
    if (i % (perItem * 4) === 0) out += ':\n\n';
  }
  return out;
}
