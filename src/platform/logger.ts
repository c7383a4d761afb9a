/**
 * pino, JSON, with secrets redacted. Stream keys, tokens and passwords must
 * never reach a log line: bodies are not logged, known secret fields are
 * censored wherever they appear, and access tokens are cut out of URLs.
 */
import { type Logger, type LoggerOptions, pino } from 'pino';

export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-stream-key"]',
  'password',
  'token',
  'streamKey',
  '*.password',
  '*.passwordHash',
  '*.token',
  '*.streamKey',
  '*.*.streamKey',
  '*.*.password',
  '*.*.token',
  '*.secret',
  '*.secretAccessKey',
  'config.JWT_SECRET',
  'config.S3_SECRET_ACCESS_KEY',
  'config.ADMIN_PASSWORD',
];

/** Removes secrets carried in query strings (WebSocket tokens, stream keys). */
export function redactUrlQuery(url: string): string {
  return url.replace(/([?&](?:token|access_token|key|streamKey)=)[^&]*/gi, '$1[REDACTED]');
}

export function loggerOptions(level: string): LoggerOptions {
  return {
    level,
    redact: { paths: REDACT_PATHS, censor: '[REDACTED]' },
    serializers: {
      req(req: { method?: string; url?: string; id?: string; ip?: string }) {
        return {
          method: req.method,
          url: req.url ? redactUrlQuery(req.url) : undefined,
          id: req.id,
          ip: req.ip,
        };
      },
    },
  };
}

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return destination ? pino(loggerOptions(level), destination) : pino(loggerOptions(level));
}

export type { Logger };
