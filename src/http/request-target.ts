import { GatewayError } from '../errors';

/**
 * The request target, normalised once: the catalog matches these segments, the event names them, and the
 * upstream receives exactly `path` + `search`. So whatever the upstream executes is what the event records.
 */
export interface RequestTarget {
  /** Normalised path, always starting with '/', without a trailing slash (except the root). */
  path: string;
  /** Path segments without the leading empty one; encoded, as sent upstream. */
  segments: string[];
  /** The query string including its '?', or ''. Forwarded unchanged. */
  search: string;
}

export const MAX_PATH_LENGTH = 8192;

// Anything that needs work: encodings, empty or dot segments, a trailing slash, backslashes.
const NEEDS_NORMALISING = /%|\/\/|\/\.\.?(\/|$)|.\/$|\\/;
const UNRESERVED = /[A-Za-z0-9\-._~]/;
// Bytes never allowed in a path, even percent-encoded: control characters, NUL, and the path separators.
const FORBIDDEN_DECODED = /[\x00-\x1f\x7f/\\]/;

function badRequest(message: string): GatewayError {
  return new GatewayError('ERR_BAD_REQUEST', message);
}

/** Decode %XX of unreserved characters, upper-case every other escape, refuse escapes that hide separators. */
function normaliseSegment(segment: string): string {
  if (!segment.includes('%')) return segment;
  let out = '';
  for (let i = 0; i < segment.length; i++) {
    const ch = segment[i] as string;
    if (ch !== '%') {
      out += ch;
      continue;
    }
    const hex = segment.slice(i + 1, i + 3);
    if (!/^[0-9A-Fa-f]{2}$/.test(hex)) throw badRequest('The request path contains a malformed percent-encoding.');
    const decoded = String.fromCharCode(parseInt(hex, 16));
    if (FORBIDDEN_DECODED.test(decoded)) {
      throw badRequest('The request path contains an encoded separator or control character, which is ambiguous.');
    }
    out += UNRESERVED.test(decoded) ? decoded : `%${hex.toUpperCase()}`;
    i += 2;
  }
  return out;
}

export function parseRequestTarget(url: string): RequestTarget {
  if (url.length > MAX_PATH_LENGTH) throw badRequest(`The request target is longer than ${MAX_PATH_LENGTH} characters.`);
  if (url[0] !== '/') throw badRequest('The request target must be a path starting with "/" (absolute URLs and "*" are not accepted).');
  const q = url.indexOf('?');
  const rawPath = q < 0 ? url : url.slice(0, q);
  const search = q < 0 ? '' : url.slice(q);
  if (/[\x00-\x20\x7f]/.test(url)) throw badRequest('The request target contains whitespace or control characters.');
  if (!NEEDS_NORMALISING.test(rawPath)) {
    return { path: rawPath, segments: rawPath === '/' ? [] : rawPath.slice(1).split('/'), search };
  }
  if (rawPath.includes('\\')) throw badRequest('The request path contains a backslash, which is ambiguous.');
  const segments: string[] = [];
  for (const raw of rawPath.split('/')) {
    const segment = normaliseSegment(raw);
    if (segment === '' || segment === '.') continue;
    if (segment === '..') {
      if (segments.length === 0) throw badRequest('The request path climbs above the root with "..".');
      segments.pop();
      continue;
    }
    segments.push(segment);
  }
  return { path: `/${segments.join('/')}`, segments, search };
}
