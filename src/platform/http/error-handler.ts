/**
 * Maps every error to the catalogue: a client mistake becomes a 4xx with a
 * stable code, anything else a 500 with a generic message (details go to the
 * log, never to the client).
 */
import type { FastifyError, FastifyInstance } from 'fastify';
import { AppError, type ErrorBody, type ErrorCode } from '../errors.js';

/** Fastify's own error codes that are client mistakes, mapped to ours. */
const FASTIFY_CODES: Record<string, ErrorCode> = {
  FST_ERR_CTP_INVALID_JSON_BODY: 'INVALID_JSON',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'INVALID_JSON',
  FST_ERR_CTP_BODY_TOO_LARGE: 'BODY_TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'BAD_REQUEST',
  FST_ERR_CTP_INVALID_TYPE: 'BAD_REQUEST',
  FST_ERR_BAD_URL: 'BAD_REQUEST',
  FST_ERR_ASYNC_CONSTRAINT: 'BAD_REQUEST',
};

export function toAppError(err: FastifyError): AppError {
  if (err instanceof AppError) return err;
  if (err.validation) {
    const first = err.validation[0];
    const params = (first?.params ?? {}) as Record<string, unknown>;
    const path = first?.instancePath ?? '';
    const extra =
      (params.missingProperty as string | undefined) ?? (params.additionalProperty as string | undefined);
    const field = [path.replace(/^\//, '').replaceAll('/', '.'), extra].filter(Boolean).join('.');
    const what =
      first?.keyword === 'required'
        ? 'is required'
        : first?.keyword === 'additionalProperties'
          ? 'is not allowed'
          : (first?.message ?? 'is invalid');
    return new AppError(
      'VALIDATION_FAILED',
      `${err.validationContext ?? 'request'}${field ? `.${field}` : ''} ${what}`,
      {
        location: err.validationContext ?? 'body',
        field: field || null,
        rule: first?.keyword ?? null,
      },
    );
  }
  const mapped = err.code ? FASTIFY_CODES[err.code] : undefined;
  if (mapped) return new AppError(mapped, err.message);
  if (err instanceof SyntaxError) return new AppError('INVALID_JSON', err.message);
  if (err.statusCode === 429) return new AppError('RATE_LIMITED', err.message);
  if (err.statusCode === 503) return new AppError('SERVICE_UNAVAILABLE');
  if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500)
    return new AppError('BAD_REQUEST', err.message);
  return new AppError('INTERNAL');
}

export function registerErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError, request, reply) => {
    const appErr = toAppError(err);
    if (appErr.statusCode >= 500) request.log.error({ err }, 'request failed');
    else request.log.debug({ code: appErr.code }, appErr.message);
    const body: ErrorBody = appErr.toJSON();
    if (appErr.code === 'RATE_LIMITED' && !reply.hasHeader('retry-after')) reply.header('retry-after', '60');
    return reply.status(appErr.statusCode).send(body);
  });

  app.setNotFoundHandler((request, reply) => {
    const body: ErrorBody = {
      code: 'ROUTE_NOT_FOUND',
      message: `No route ${request.method} ${request.url.split('?')[0]}`,
    };
    return reply.status(404).send(body);
  });
}
