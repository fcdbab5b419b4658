import type { IncomingMessage } from 'node:http';
import type { ClientLimits } from '../config';
import { GatewayError } from '../errors';

/**
 * Request headers that make a server or framework behind the gateway run another method or path than the one
 * on the request line, which is the one the event names. None is sent by Code Engine's clients (SDKs, CLI,
 * kubectl); each is honoured somewhere a Code Engine frontend could be built with, so each is refused (400,
 * audited) rather than forwarded or silently dropped. Names are compared lower-cased with "_" read as "-", as
 * CGI, PHP and nginx (underscores_in_headers) fold X_Original_URL into X-Original-URL.
 */
const REWRITING_HEADERS: ReadonlyMap<string, string> = new Map([
  // Method overrides: Express method-override, Rails Rack::MethodOverride, Laravel, Symfony, ASP.NET, Google APIs.
  ['x-http-method-override', 'another method'],
  ['x-http-method', 'another method'],
  ['x-method-override', 'another method'],
  // nginx auth_request and Traefik ForwardAuth carry the original method in these; handlers that trust them act on it.
  ['x-original-method', 'another method'],
  ['x-forwarded-method', 'another method'],
  // IIS URL Rewrite / ARR, Symfony (before CVE-2018-14773), Zend Framework / Laminas, Drupal: the path to run.
  ['x-original-url', 'another path'],
  ['x-rewrite-url', 'another path'],
  // nginx auth_request (X-Original-URI), Traefik ForwardAuth and ingress-nginx (X-Forwarded-Uri), Kong
  // (X-Forwarded-Path), Envoy (X-Envoy-Original-Path): the path before a proxy rewrote it.
  ['x-original-uri', 'another path'],
  ['x-forwarded-uri', 'another path'],
  ['x-forwarded-path', 'another path'],
  ['x-envoy-original-path', 'another path'],
  // Spring's ForwardedHeaderFilter (the request URI's context path), ASP.NET Core's PathBase, Werkzeug's
  // ProxyFix and WSGI recipes (SCRIPT_NAME from X-Script-Name): a path prefix the routing then strips or adds.
  ['x-forwarded-prefix', 'another path prefix'],
  ['x-script-name', 'another path prefix'],
]);

/** `_method` in the query: Symfony, Laravel and Express's method-override (with a query getter) run that method. */
const METHOD_QUERY_PARAMETER = /[?&](?:_|%5f)method(?:[=&]|$)/i;

interface HeaderScan {
  hosts: number;
  /** The first header (as sent) that would rewrite the method or path, and what it asks for. */
  rewriting: { name: string; asks: string } | undefined;
}

/** One pass over the raw headers: the Host count, and the first header that would rewrite the method or path. */
function scanHeaders(rawHeaders: readonly string[]): HeaderScan {
  let hosts = 0;
  let rewriting: HeaderScan['rewriting'];
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = (rawHeaders[i] as string).toLowerCase();
    if (name === 'host') hosts++;
    else if (rewriting === undefined && name.charCodeAt(0) === 0x78 /* x */) {
      const asks = REWRITING_HEADERS.get(name.includes('_') ? name.replace(/_/g, '-') : name);
      if (asks !== undefined) rewriting = { name: rawHeaders[i] as string, asks };
    }
  }
  return { hosts, rewriting };
}

/**
 * Requests the gateway refuses before anything is forwarded, because what the upstream would execute could
 * differ from what the event names, or because a limit is exceeded. Node's parser has already refused
 * smuggling (conflicting Content-Length / Transfer-Encoding, obsolete line folding, bad chunk sizes): these
 * are the ambiguities it lets through.
 */
export function refusalOf(req: IncomingMessage, target: { path: string; search: string }, limits: ClientLimits): GatewayError | undefined {
  const { path, search } = target;
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
  if (search !== '' && METHOD_QUERY_PARAMETER.test(search)) {
    return new GatewayError(
      'ERR_BAD_REQUEST',
      'The query parameter _method asks for another method than the one sent; send the method itself.',
    );
  }
  const headers = scanHeaders(req.rawHeaders);
  if (headers.rewriting !== undefined) {
    const { name, asks } = headers.rewriting;
    return new GatewayError(
      'ERR_BAD_REQUEST',
      `The ${name} header asks for ${asks} than the one sent, which is the one audited; send the method and path themselves.`,
    );
  }
  if (req.rawHeaders.length / 2 > limits.maxHeaders) {
    return new GatewayError('ERR_HEADERS_TOO_LARGE', `The request has more than ${limits.maxHeaders} headers (MAX_HEADERS).`);
  }
  if (headers.hosts > 1) {
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
