import pino, { type Logger } from 'pino';

/**
 * Paths the gateway's own logs never print. Request logging only ever sees headers through these paths, and
 * error logs carry messages, never request objects.
 */
export const REDACTED_LOG_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["proxy-authorization"]',
  'req.headers["x-delegated-refresh-token"]',
  'req.headers["refresh-token"]',
  'req.headers["x-auth-token"]',
  'req.headers.apikey',
  'res.headers["set-cookie"]',
  'headers.authorization',
  'headers.cookie',
  'config.ingestionKey',
  '*.apikey',
  '*.apiKey',
  '*.ingestionKey',
  '*.token',
  '*.password',
];

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'ce-audit-gateway' },
      redact: { paths: REDACTED_LOG_PATHS, censor: '[REDACTED]' },
      formatters: { level: (label) => ({ level: label }) },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination,
  );
}
