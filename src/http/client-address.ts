import type { IncomingMessage } from 'node:http';
import { isIP, isIPv6, type BlockList } from 'node:net';

export interface ClientAddress {
  address: string;
  addressType: 'IPv4' | 'IPv6';
}

function plain(address: string): string {
  // IPv4 clients of a dual-stack listener appear as ::ffff:a.b.c.d
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}

function typed(address: string): ClientAddress {
  return { address, addressType: isIPv6(address) ? 'IPv6' : 'IPv4' };
}

function isTrusted(address: string, trusted: BlockList): boolean {
  return trusted.check(address, isIPv6(address) ? 'ipv6' : 'ipv4');
}

/**
 * The caller's address: the socket's peer, unless that peer is a configured trusted proxy, in which case the
 * right-most X-Forwarded-For entry that is not itself a trusted proxy. Without TRUSTED_PROXIES the header is
 * never believed, so a caller cannot choose the address the audit records.
 */
/** The socket peer's address, as the audit records it. */
export function peerAddressOf(socket: { remoteAddress?: string | undefined }): ClientAddress {
  return typed(plain(socket.remoteAddress ?? '') || 'unknown');
}

export function clientAddressOf(req: IncomingMessage, trusted: BlockList | undefined): ClientAddress {
  const peer = plain(req.socket.remoteAddress ?? '');
  if (!trusted || !peer || !isTrusted(peer, trusted)) return peerAddressOf(req.socket);
  const header = req.headers['x-forwarded-for'];
  if (typeof header !== 'string' || header === '') return typed(peer);
  const hops = header.split(',').map((h) => plain(h.trim()));
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = hops[i] as string;
    if (isIP(hop) === 0) return typed(peer);
    if (!isTrusted(hop, trusted)) return typed(hop);
  }
  return typed(hops[0] ?? peer);
}
