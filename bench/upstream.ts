/**
 * The benchmark's Code Engine: its own process (node:http, keep-alive), answering like the management API.
 *   GET  /v2/function_runtimes          ~1 KB JSON
 *   GET  /v2/projects/<id>/apps          64 KB JSON list (one page of applications)
 *   GET  /v2/_download?bytes=N           N bytes streamed in 64 KB chunks, with backpressure
 *   POST /v2/_upload                     reads the whole body, answers {"bytes": <size>}
 * Bodies are built once at start, so the upstream spends as little CPU per call as it can: it is the same
 * upstream behind every system measured. Prints one JSON line with its URL; SIGTERM closes it.
 * Run: node build/bench/upstream.js [--port N]
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PROJECT_ID } from './common';

const CHUNK = Buffer.alloc(64 * 1024, 0x61);
const MAX_DOWNLOAD = 4 * 1024 * 1024 * 1024;

function runtimesBody(): Buffer {
  const runtime = (id: string, name: string, family: string, optimized: boolean, def: boolean): Record<string, unknown> => ({
    default: def,
    deprecated: false,
    family,
    id,
    name,
    optimized,
  });
  const body = {
    function_runtimes: [
      runtime('nodejs-20', 'Node.js 20', 'nodejs', false, true),
      runtime('nodejs-18', 'Node.js 18', 'nodejs', false, false),
      runtime('nodejs-20-optimized', 'Node.js 20 (optimized)', 'nodejs', true, false),
      runtime('python-3.11', 'Python 3.11', 'python', false, true),
      runtime('python-3.10', 'Python 3.10', 'python', false, false),
      runtime('python-3.11-optimized', 'Python 3.11 (optimized)', 'python', true, false),
      runtime('go-1.22', 'Go 1.22', 'go', false, true),
      runtime('go-1.21', 'Go 1.21', 'go', false, false),
    ],
  };
  return Buffer.from(JSON.stringify(body));
}

/** One page of applications, padded with whole apps to just under 64 KiB. */
function appsBody(): Buffer {
  const app = (i: number): Record<string, unknown> => {
    const name = `app-${String(i).padStart(4, '0')}`;
    const id = `${String(i).padStart(8, '0')}-1a2b-4c3d-8e4f-5a6b7c8d9e0f`;
    return {
      build: `build-${name}`,
      created_at: '2025-11-20T09:12:44Z',
      endpoint: `https://${name}.1a2b3c4d5e6f.us-south.codeengine.appdomain.cloud`,
      endpoint_internal: `http://${name}.1a2b3c4d5e6f.svc.cluster.local`,
      entity_tag: String(1000 + i),
      href: `https://api.us-south.codeengine.cloud.ibm.com/v2/projects/${PROJECT_ID}/apps/${name}`,
      id,
      image_port: 8080,
      image_reference: `icr.io/codeengine/${name}:latest`,
      managed_domain_mappings: 'local_public',
      name,
      probe_readiness: { type: 'tcp', port: 8080, initial_delay: 0, interval: 10, timeout: 1, failure_threshold: 1 },
      project_id: PROJECT_ID,
      region: 'us-south',
      resource_type: 'app_v2',
      run_env_variables: [{ type: 'literal', name: 'LOG_LEVEL', value: 'info' }],
      scale_concurrency: 100,
      scale_cpu_limit: '1',
      scale_max_instances: 10,
      scale_memory_limit: '4G',
      scale_min_instances: 0,
      status: 'ready',
    };
  };
  const limit = 64 * 1024;
  const apps: Record<string, unknown>[] = [];
  const wrap = (list: Record<string, unknown>[]): string =>
    JSON.stringify({
      apps: list,
      first: { href: `https://api.us-south.codeengine.cloud.ibm.com/v2/projects/${PROJECT_ID}/apps?limit=100` },
      limit: 100,
    });
  for (let i = 0; i < 1000; i++) {
    const next = [...apps, app(i)];
    if (Buffer.byteLength(wrap(next)) > limit) break;
    apps.push(app(i));
  }
  return Buffer.from(wrap(apps));
}

const RUNTIMES = runtimesBody();
const APPS = appsBody();
const APPS_PATH = `/v2/projects/${PROJECT_ID}/apps`;

function json(res: ServerResponse, status: number, body: Buffer): void {
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': body.length });
  res.end(body);
}

function download(req: IncomingMessage, res: ServerResponse, query: string): void {
  const bytes = Number(new URLSearchParams(query).get('bytes') ?? '0');
  if (!Number.isSafeInteger(bytes) || bytes < 0 || bytes > MAX_DOWNLOAD) {
    json(res, 400, Buffer.from('{"errors":[{"code":"bad_request","message":"bytes must be 0..4 GiB"}]}'));
    return;
  }
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': bytes });
  let left = bytes;
  const pump = (): void => {
    while (left > 0) {
      const n = Math.min(left, CHUNK.length);
      left -= n;
      const more = res.write(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n));
      if (!more) {
        res.once('drain', pump);
        return;
      }
    }
    res.end();
  };
  req.socket.setNoDelay(true);
  pump();
}

function upload(req: IncomingMessage, res: ServerResponse): void {
  let bytes = 0;
  req.on('data', (c: Buffer) => (bytes += c.length));
  req.on('end', () => json(res, 200, Buffer.from(JSON.stringify({ bytes }))));
  req.on('error', () => res.destroy());
}

const server = createServer({ keepAliveTimeout: 65_000, headersTimeout: 60_000, requestTimeout: 0 }, (req, res) => {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  const pathname = q < 0 ? url : url.slice(0, q);
  const query = q < 0 ? '' : url.slice(q + 1);
  if (req.method === 'GET' && pathname === '/v2/function_runtimes') return json(res, 200, RUNTIMES);
  if (req.method === 'GET' && pathname === APPS_PATH) return json(res, 200, APPS);
  if (req.method === 'GET' && pathname === '/v2/_download') return download(req, res, query);
  if (req.method === 'POST' && pathname === '/v2/_upload') return upload(req, res);
  req.resume();
  json(res, 404, Buffer.from('{"errors":[{"code":"not_found","message":"Not found"}],"status_code":404}'));
});

const portArg = process.argv.indexOf('--port');
const port = portArg > 0 ? Number(process.argv[portArg + 1]) : 0;
server.listen(port, '127.0.0.1', () => {
  const { port: p } = server.address() as AddressInfo;
  process.stdout.write(
    `${JSON.stringify({ msg: 'upstream listening', url: `http://127.0.0.1:${p}`, bytes1k: RUNTIMES.length, bytes64k: APPS.length })}\n`,
  );
});
const stop = (): void => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
