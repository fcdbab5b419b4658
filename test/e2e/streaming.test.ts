/**
 * Bodies stream both ways: 200 MB up and 200 MB down pass through the gateway process while its memory stays
 * bounded (only a capture prefix is ever held), and the bytes arrive intact.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startFakeCodeEngine, type FakeCodeEngine } from '../support/fake-code-engine';
import { spawnGateway, type GatewayProcess } from '../support/gateway-process';
import { waitForJournal } from '../support/harness';

const SIZE = 200 * 1024 * 1024;
/**
 * Peak RSS may grow by at most this much while 400 MB stream through: far below either body, so buffering one
 * fails. Not tighter: every chunk read from a socket is a new Buffer whose memory V8 frees only when it collects
 * the dead wrapper, which external-memory pressure forces at about 64 MB; with the machine busy (CI runs suites
 * in parallel) growth of 56-65 MB was measured, at this commit and before it. The +32 MB target for one
 * 100 MB transfer at a time is measured by the benchmark (bench/), not here.
 */
const MAX_GROWTH = 96 * 1024 * 1024;

let upstream: FakeCodeEngine;
let gw: GatewayProcess;
let dir: string;

beforeAll(async () => {
  upstream = await startFakeCodeEngine();
  dir = await mkdtemp(path.join(tmpdir(), 'ce-audit-stream-'));
  gw = await spawnGateway({
    PORT: '0',
    ADMIN_PORT: '0',
    CE_API_URL: upstream.url,
    CE_KUBE_API_URL: upstream.url,
    AT_FILE_DIR: path.join(dir, 'audit'),
    SPOOL_DIR: path.join(dir, 'spool'),
  });
});
afterAll(async () => {
  gw.kill('SIGKILL');
  await gw.exited;
  await upstream.close();
  await rm(dir, { recursive: true, force: true });
});

function chunkAt(i: number): Buffer {
  const b = Buffer.alloc(64 * 1024, i % 251);
  b.writeUInt32BE(i, 0);
  return b;
}

test('200 MB upload and 200 MB download with bounded gateway memory', async () => {
  // Warm up so the baseline includes the pools and JIT.
  await new Promise<void>((resolve, reject) =>
    httpRequest(`${gw.proxyUrl}/v2/_download?bytes=1000000`, (res) => res.resume().on('end', resolve))
      .on('error', reject)
      .end(),
  );
  const baseline = gw.peakRss();

  const sent = createHash('sha256');
  const upload = await new Promise<{ received_bytes: number; sha256: string }>((resolve, reject) => {
    const req = httpRequest(
      `${gw.proxyUrl}/v2/_upload`,
      { method: 'POST', headers: { 'content-type': 'application/octet-stream' } },
      (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => resolve(JSON.parse(text) as { received_bytes: number; sha256: string }));
      },
    );
    req.on('error', reject);
    let i = 0;
    const total = SIZE / (64 * 1024);
    const pump = (): void => {
      while (i < total) {
        const chunk = chunkAt(i++);
        sent.update(chunk);
        if (!req.write(chunk)) {
          req.once('drain', pump);
          return;
        }
      }
      req.end();
    };
    pump();
  });
  expect(upload.received_bytes).toBe(SIZE);
  expect(upload.sha256).toBe(sent.digest('hex'));

  const downloaded = await new Promise<{ bytes: number; ok: boolean }>((resolve, reject) => {
    httpRequest(`${gw.proxyUrl}/v2/_download?bytes=${SIZE}`, (res) => {
      let bytes = 0;
      let ok = true;
      res.on('data', (c: Buffer) => {
        // byte i of the body is i % 251: check a sample of every chunk.
        if (c[0] !== bytes % 251 || c[c.length - 1] !== (bytes + c.length - 1) % 251) ok = false;
        bytes += c.length;
      });
      res.on('end', () => resolve({ bytes, ok }));
    })
      .on('error', reject)
      .end();
  });
  expect(downloaded).toEqual({ bytes: SIZE, ok: true });

  const growth = gw.peakRss() - baseline;
  process.stdout.write(
    `streaming 2 x ${SIZE / 2 ** 20} MiB: gateway peak RSS ${(baseline / 2 ** 20).toFixed(1)} -> ${(gw.peakRss() / 2 ** 20).toFixed(1)} MiB\n`,
  );
  expect(growth).toBeLessThan(MAX_GROWTH);

  const events = await waitForJournal(path.join(dir, 'audit'), 3);
  const big = events.filter((e) => e.requestData.path === '/v2/_upload' || e.requestData.path === '/v2/_download');
  expect(big).toHaveLength(3);
  const up = big.find((e) => e.requestData.path === '/v2/_upload');
  expect(up?.requestData.bodyOmitted).toMatch(/larger than the 64 KiB capture limit/);
}, 120_000);
