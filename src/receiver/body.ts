/**
 * Reads a request body under a byte limit: never buffers more than the limit, answers 413 as soon as the
 * declared or received size is over it, and decompresses `Content-Encoding: gzip` under the same limit.
 */
import type { IncomingMessage } from 'node:http';
import { gunzip } from 'node:zlib';
import { ReceiverError } from './errors';
import { headerValue } from './http';

export interface BodyProgress {
  /** Wire bytes read so far (updated as chunks arrive). */
  bodyBytes: number;
}

function tooLarge(limit: number): ReceiverError {
  return new ReceiverError('ERR_BODY_TOO_LARGE', `Request body exceeds the limit of ${limit} bytes.`);
}

/** Reads the raw (possibly compressed) body. On 413 the rest of the body is discarded, not kept. */
export function readRawBody(req: IncomingMessage, limit: number, progress: BodyProgress): Promise<Buffer> {
  const declared = Number(headerValue(req, 'content-length') ?? '');
  if (Number.isFinite(declared) && declared > limit) {
    req.resume();
    return Promise.reject(tooLarge(limit));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let kept = 0;
    let done = false;
    const finish = (err: Error | undefined): void => {
      if (done) return;
      done = true;
      req.off('data', onData);
      if (err) {
        chunks.length = 0;
        req.resume();
        reject(err);
      } else {
        resolve(Buffer.concat(chunks, kept));
      }
    };
    const onData = (chunk: Buffer): void => {
      progress.bodyBytes += chunk.length;
      if (kept + chunk.length > limit) return finish(tooLarge(limit));
      chunks.push(chunk);
      kept += chunk.length;
    };
    req.on('data', onData);
    req.on('end', () => finish(undefined));
    req.on('error', (err) => finish(err));
    req.on('close', () => finish(req.complete ? undefined : new Error('client closed the request')));
  });
}

function gunzipLimited(data: Buffer, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    gunzip(data, { maxOutputLength: limit }, (err, out) => {
      if (!err) return resolve(out);
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ERR_BUFFER_TOO_LARGE' || err instanceof RangeError) return reject(tooLarge(limit));
      reject(new ReceiverError('ERR_BAD_REQUEST', `Request body is not valid gzip: ${err.message}`, { cause: err }));
    });
  });
}

/** The decoded body: `identity` or `gzip`; other encodings are refused with 415. */
export async function readBody(req: IncomingMessage, limit: number, progress: BodyProgress): Promise<Buffer> {
  const encoding = (headerValue(req, 'content-encoding') ?? 'identity').trim().toLowerCase();
  if (encoding !== 'identity' && encoding !== 'gzip' && encoding !== '') {
    req.resume();
    throw new ReceiverError('ERR_UNSUPPORTED_MEDIA_TYPE', `Content-Encoding ${encoding} is not supported (use gzip).`);
  }
  const raw = await readRawBody(req, limit, progress);
  return encoding === 'gzip' ? gunzipLimited(raw, limit) : raw;
}

/** Parses a JSON body; 400 when it is not JSON. */
export function parseJsonBody(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString('utf8')) as unknown;
  } catch (err) {
    throw new ReceiverError('ERR_BAD_REQUEST', `Request body is not valid JSON: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/** JSON bodies: no Content-Type, `application/json` or any `+json` type; anything else is 415. */
export function requireJson(type: string): void {
  if (type === '' || type === 'application/json' || type.endsWith('+json')) return;
  throw new ReceiverError('ERR_UNSUPPORTED_MEDIA_TYPE', `Content-Type ${type} is not supported (use application/json).`);
}
