import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import { httpErrorFor, type GatewayError } from '../errors';

/** How long a refused client may take to read the answer before its socket is destroyed. */
const LINGER_MS = 1000;

/**
 * The gateway's error answer written by hand on a client socket, for requests Node's HTTP parser gave up on
 * (a malformed head, a body that is malformed or too slow): there is no ServerResponse to write it with. The
 * status line names the status it carries, the body is the usual JSON error with the transaction id, and the
 * connection is closed, since the rest of what the client sent cannot be trusted to frame a next request.
 */
export function writeRawErrorReply(socket: Duplex, error: GatewayError, transactionId: string): void {
  const { status, body } = httpErrorFor(error, transactionId);
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\nContent-Type: application/json\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nX-Transaction-Id: ${transactionId}\r\nConnection: close\r\n\r\n${body}`,
  );
  setTimeout(() => socket.destroy(), LINGER_MS).unref();
}
