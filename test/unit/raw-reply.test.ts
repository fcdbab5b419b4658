/** The one hand-written error answer, for sockets Node's parser gave up on: its status line says its status. */
import { PassThrough } from 'node:stream';
import { GatewayError, type ErrorCode } from '../../src/errors';
import { writeRawErrorReply } from '../../src/http/raw-reply';

function written(code: ErrorCode): Promise<string> {
  const socket = new PassThrough();
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  return new Promise((resolve) => {
    socket.on('end', () => resolve(Buffer.concat(chunks).toString('latin1')));
    writeRawErrorReply(socket, new GatewayError(code, 'refused for a test'), 'raw-tx-1');
  });
}

test.each([
  ['ERR_BAD_REQUEST', '400 Bad Request', 'bad_request'],
  ['ERR_REQUEST_TIMEOUT', '408 Request Timeout', 'request_timeout'],
  ['ERR_PAYLOAD_TOO_LARGE', '413 Payload Too Large', 'payload_too_large'],
  ['ERR_HEADERS_TOO_LARGE', '431 Request Header Fields Too Large', 'request_header_fields_too_large'],
  ['ERR_TOO_MANY_CONNECTIONS', '503 Service Unavailable', 'too_many_connections'],
] as const)('%s: HTTP/1.1 %s, a JSON error with the transaction id, connection closed', async (code, line, apiCode) => {
  const text = await written(code);
  const [head = '', body = ''] = text.split('\r\n\r\n');
  const lines = head.split('\r\n');
  expect(lines[0]).toBe(`HTTP/1.1 ${line}`);
  expect(lines).toContain('Connection: close');
  expect(lines).toContain('X-Transaction-Id: raw-tx-1');
  expect(lines).toContain(`Content-Length: ${Buffer.byteLength(body)}`);
  expect(JSON.parse(body)).toMatchObject({ errors: [{ code: apiCode, message: 'refused for a test' }], transaction_id: 'raw-tx-1' });
});
