/**
 * POST /v1/uploads: raw bytes in, an object-store URL out. Registered as its
 * own plugin because it replaces the content-type parsers of its scope: only
 * the accepted binary types are read (as a Buffer, up to UPLOAD_MAX_BYTES),
 * and the type, the declared size and the caller are checked before a byte of
 * the body is read.
 */
import { Type } from '@sinclair/typebox';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { currentUser } from '../auth/auth-hooks.js';
import { AppError } from '../platform/errors.js';
import { toAppError } from '../platform/http/error-handler.js';
import { ErrorRef } from '../platform/http/openapi.js';
import { UploadSchema } from './chat-schemas.js';
import {
  MAX_FILE_NAME_LENGTH,
  UPLOAD_CONTENT_TYPE_LIST,
  type UploadsService,
  uploadContentType,
} from './uploads-service.js';

export interface UploadRoutesOptions {
  uploads: UploadsService;
}

export async function uploadRoutes(fastify: FastifyInstance, opts: UploadRoutesOptions): Promise<void> {
  const { uploads } = opts;
  const maxBytes = uploads.options.maxBytes;
  fastify.addSchema(UploadSchema);
  // This scope reads only the upload types, raw; JSON and anything else is refused before parsing.
  fastify.removeAllContentTypeParsers();
  fastify.addContentTypeParser(
    UPLOAD_CONTENT_TYPE_LIST,
    { parseAs: 'buffer', bodyLimit: maxBytes },
    (_request, body, done) => done(null, body),
  );

  /** Runs before the body is read: no anonymous, mistyped or declared-too-large upload costs a read. */
  const precheck = async (request: FastifyRequest) => {
    currentUser(request);
    if (!uploadContentType(request.headers['content-type']))
      throw new AppError('UPLOAD_TYPE_UNSUPPORTED', undefined, { allowed: UPLOAD_CONTENT_TYPE_LIST });
    const declared = Number(request.headers['content-length']);
    if (Number.isFinite(declared) && declared > maxBytes)
      throw new AppError('UPLOAD_TOO_LARGE', undefined, { maxBytes });
  };

  /** Same catalogue as everywhere, but a body over the parser's limit is this route's UPLOAD_TOO_LARGE. */
  const errorHandler = (err: FastifyError, request: FastifyRequest, reply: FastifyReply) => {
    const appErr =
      err.code === 'FST_ERR_CTP_BODY_TOO_LARGE'
        ? new AppError('UPLOAD_TOO_LARGE', undefined, { maxBytes })
        : err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE'
          ? new AppError('UPLOAD_TYPE_UNSUPPORTED', undefined, { allowed: UPLOAD_CONTENT_TYPE_LIST })
          : toAppError(err);
    if (appErr.statusCode >= 500) request.log.error({ err }, 'request failed');
    return reply.status(appErr.statusCode).send(appErr.toJSON());
  };

  fastify.post(
    '/v1/uploads',
    {
      onRequest: precheck,
      errorHandler,
      bodyLimit: maxBytes,
      // The body is raw bytes (checked by the service); the schemas below document the route.
      validatorCompiler: () => () => true,
      schema: {
        tags: ['chat'],
        summary: 'Upload an image or file for a chat message',
        description: `Send the file's bytes as the body with its Content-Type (${UPLOAD_CONTENT_TYPE_LIST.join(', ')}) and its name in \`x-file-name\` (percent-encode non-ASCII). At most UPLOAD_MAX_BYTES (default 10 MiB; currently ${maxBytes}); larger is 413 UPLOAD_TOO_LARGE. The content must match the type (image signatures, %PDF-, UTF-8 text). The answer's \`url\` is what an image or file message's \`attachment\` names.`,
        security: [{ bearer: [] }],
        consumes: UPLOAD_CONTENT_TYPE_LIST,
        headers: Type.Object({
          'x-file-name': Type.Optional(
            Type.String({
              maxLength: MAX_FILE_NAME_LENGTH * 9,
              description: 'The file name shown to others; default upload.<ext>',
              examples: ['red-sneaker.jpg'],
            }),
          ),
        }),
        body: Type.Unsafe<Buffer>({ type: 'string', format: 'binary', description: 'The file' }),
        response: {
          201: Type.Ref(UploadSchema),
          400: ErrorRef,
          401: ErrorRef,
          413: ErrorRef,
          415: ErrorRef,
        },
      },
    },
    async (request, reply) => {
      const header = request.headers['x-file-name'];
      const view = await uploads.upload(currentUser(request), {
        contentType: request.headers['content-type'],
        fileName: Array.isArray(header) ? header[0] : header,
        bytes: Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0),
      });
      return reply.status(201).send(view);
    },
  );
}
