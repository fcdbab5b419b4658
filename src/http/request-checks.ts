import type { IncomingMessage } from 'node:http';
import type { ClientLimits } from '../config';
import { GatewayError } from '../errors';

/** Headers some frameworks use to run another method than the one sent: the event would name the wrong one. */
const METHOD_OVERRIDE_HEADERS = ['x-http-method-override', 'x-http-method', 'x-method-override'];

function countHeader(rawHeaders: readonly string[], name: string): number {
  let n = 0;
  for (let i = 0; i < rawHeaders.length; i += 2) if ((rawHeaders[i] as string).toLowerCase() === name) n++;
  return n;
}

/**
 * Requests the gateway refuses before anything is forwarded, because what the upstream would execute could
 * differ from what the event names, or because a limit is exceeded. Node's parser has already refused
 * smuggling (conflicting Content-Length / Transfer-Encoding, obsolete line folding, bad chunk sizes): these
 * are the ambiguities it lets through.
 */
export function refusalOf(req: IncomingMessage, path: string, limits: ClientLimits): GatewayError | undefined {
  if (path.includes('#')) {
    return new GatewayError('ERR_BAD_REQUEST', 'The request target contains "#", which is not part of an HTTP request target.');
  }
  if (path.includes(';')) {
    // Matrix parameters: some servers strip ";..." from a segment, others keep it; the catalog cannot know.
    return new GatewayError(
      'ERR_BAD_REQUEST',
      'The request path contains ";" (matrix parameters), which servers read differently. Encode it as %3B.',
    );
  }
  for (const name of METHOD_OVERRIDE_HEADERS) {
    if (req.headers[name] !== undefined) {
      return new GatewayError('ERR_BAD_REQUEST', `The ${name} header asks for another method than the one sent; send the method itself.`);
    }
  }
  if (req.rawHeaders.length / 2 > limits.maxHeaders) {
    return new GatewayError('ERR_HEADERS_TOO_LARGE', `The request has more than ${limits.maxHeaders} headers (MAX_HEADERS).`);
  }
  if (countHeader(req.rawHeaders, 'host') > 1) {
    return new GatewayError('ERR_BAD_REQUEST', 'The request has more than one Host header.');
  }
  const length = req.headers['content-length'];
  if (limits.maxBodyBytes > 0 && length !== undefined && Number(length) > limits.maxBodyBytes) {
    return new GatewayError(
      'ERR_PAYLOAD_TOO_LARGE',
      `The request body (${length} bytes) is larger than ${limits.maxBodyBytes} bytes (MAX_BODY_BYTES).`,
    );
  }
  return undefined;
}

export interface RequestLine {
  method: string;
  url: string;
}

/**
 * The request line of a request Node's parser refused, read from the bytes it kept, so the refusal can be
 * audited. Only the first line is read (never headers: they may hold credentials), bounded, and only when it
 * looks like a request line.
 */
export function requestLineOf(rawPacket: Buffer | undefined): RequestLine | undefined {
  if (!rawPacket || rawPacket.length === 0) return undefined;
  const head = rawPacket.subarray(0, 8192).toString('latin1');
  const end = head.search(/\r?\n/);
  const line = end < 0 ? head : head.slice(0, end);
  const m = /^([!#$%&'*+.^_`|~0-9A-Za-z-]{1,32}) (\S{1,8192})(?: HTTP\/\d(?:\.\d)?)?$/.exec(line);
  if (!m) return undefined;
  return { method: m[1] as string, url: m[2] as string };
}

const PARSE_ERRORS: Record<string, string> = {
  HPE_INVALID_METHOD: 'an unknown or malformed method',
  HPE_UNEXPECTED_CONTENT_LENGTH: 'conflicting Content-Length and Transfer-Encoding (or repeated Content-Length) headers',
  HPE_INVALID_TRANSFER_ENCODING: 'an unsupported, repeated or conflicting Transfer-Encoding',
  HPE_INVALID_CONTENT_LENGTH: 'an invalid Content-Length',
  HPE_INVALID_HEADER_TOKEN: 'a malformed header (invalid characters, a space before the colon, or obsolete line folding)',
  HPE_LF_EXPECTED: 'a bare CR or LF in the request head',
  HPE_CR_EXPECTED: 'a bare CR or LF in the request head',
  HPE_INVALID_CHUNK_SIZE: 'a malformed chunked body',
  HPE_INVALID_VERSION: 'an invalid HTTP version',
  HPE_INVALID_URL: 'an invalid request target',
};

/** The refusal matching an error of Node's HTTP parser or its request timers. */
export function clientErrorRefusal(code: string | undefined, limits: ClientLimits): GatewayError {
  if (code === 'HPE_HEADER_OVERFLOW') {
    return new GatewayError('ERR_HEADERS_TOO_LARGE', `The request head is larger than ${limits.maxHeaderBytes} bytes (MAX_HEADER_BYTES).`);
  }
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT' || code === 'ERR_HTTP_HEADERS_TIMEOUT') {
    return new GatewayError('ERR_REQUEST_TIMEOUT', 'The client did not send its request in time (HEADERS_TIMEOUT_MS, REQUEST_TIMEOUT_MS).');
  }
  const what = (code && PARSE_ERRORS[code]) ?? 'a malformed request';
  return new GatewayError('ERR_BAD_REQUEST', `The request was refused: it has ${what}${code ? ` (${code})` : ''}.`);
}
