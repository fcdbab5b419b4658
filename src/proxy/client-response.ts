import { EventEmitter } from 'node:events';
import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import { httpErrorFor, type GatewayError } from '../errors';

/**
 * What a proxied call needs of the client side. `http.ServerResponse` has it; `SocketResponse` provides it on
 * the raw socket of an upgrade request (kubectl exec/attach/port-forward), whose answer may be a 101 tunnel or
 * an ordinary HTTP response.
 */
export interface ClientResponse {
  readonly headersSent: boolean;
  readonly writableEnded: boolean;
  readonly writableFinished: boolean;
  readonly destroyed: boolean;
  writeHead(statusCode: number, statusMessage: string | undefined, headers: string[]): unknown;
  write(chunk: Buffer): boolean;
  end(chunk?: string | Buffer): unknown;
  destroy(): unknown;
  on(event: 'close', listener: () => void): unknown;
  once(event: 'drain', listener: () => void): unknown;
  off(event: 'drain', listener: () => void): unknown;
}

function head(statusCode: number, statusMessage: string | undefined, headers: string[]): string {
  let text = `HTTP/1.1 ${statusCode} ${statusMessage || STATUS_CODES[statusCode] || 'Unknown'}\r\n`;
  for (let i = 0; i < headers.length; i += 2) text += `${headers[i]}: ${headers[i + 1]}\r\n`;
  return `${text}\r\n`;
}

/** HTTP/1.1 responses written by hand on an upgrade request's socket. Non-101 answers close the connection. */
export class SocketResponse extends EventEmitter implements ClientResponse {
  headersSent = false;
  writableEnded = false;
  writableFinished = false;

  constructor(readonly socket: Duplex) {
    super();
    socket.on('close', () => this.emit('close'));
    socket.on('drain', () => this.emit('drain'));
    socket.on('error', () => socket.destroy());
  }

  get destroyed(): boolean {
    return this.socket.destroyed;
  }

  writeHead(statusCode: number, statusMessage: string | undefined, headers: string[]): this {
    const out: string[] = [];
    for (let i = 0; i < headers.length; i += 2) {
      const name = (headers[i] as string).toLowerCase();
      if (name !== 'connection' && name !== 'transfer-encoding' && name !== 'keep-alive')
        out.push(headers[i] as string, headers[i + 1] as string);
    }
    // The body is sent as is (de-chunked), delimited by its length or by closing the connection.
    if (statusCode !== 101) out.push('Connection', 'close');
    this.socket.write(head(statusCode, statusMessage, out));
    this.headersSent = true;
    return this;
  }

  /** The 101 answer of an upgrade: the upstream's headers as they came, hop-by-hop ones included. */
  writeSwitchingProtocols(statusMessage: string | undefined, headers: string[]): void {
    this.socket.write(head(101, statusMessage, headers));
    this.headersSent = true;
  }

  write(chunk: Buffer): boolean {
    return this.socket.write(chunk);
  }

  end(chunk?: string | Buffer): this {
    this.writableEnded = true;
    this.socket.end(chunk, () => {
      this.writableFinished = true;
    });
    return this;
  }

  destroy(): this {
    this.socket.destroy();
    return this;
  }
}

/** The gateway's own JSON answer (Code Engine's error format, see httpErrorFor), with the transaction id. */
export function writeErrorReply(res: Pick<ClientResponse, 'writeHead' | 'end'>, error: GatewayError, transactionId: string): void {
  const reply = httpErrorFor(error, transactionId);
  res.writeHead(reply.status, undefined, [
    'content-type',
    'application/json',
    'content-length',
    String(Buffer.byteLength(reply.body)),
    'x-transaction-id',
    transactionId,
  ]);
  res.end(reply.body);
}
