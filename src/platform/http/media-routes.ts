/**
 * /media/<key>: objects of the local object store, with their stored content
 * type and cache policy, ETag revalidation and byte ranges (players seek in
 * recordings). With S3 configured, objects live elsewhere: redirect there so
 * links minted by either adapter keep working.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AppError } from '../errors.js';
import type { ObjectStore } from '../object-store/object-store.js';

const DEFAULT_CACHE_CONTROL = 'public, max-age=60';

function parseRange(
  header: string,
  size: number,
): { start: number; end: number } | 'unsatisfiable' | undefined {
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m) return undefined; // multiple or malformed ranges: serve the whole object, as RFC 9110 allows
  const [, from, to] = m;
  if (from === '' && to === '') return undefined;
  let start: number;
  let end: number;
  if (from === '') {
    const suffix = Number(to);
    if (suffix === 0) return 'unsatisfiable';
    start = Math.max(0, size - suffix);
    end = size - 1;
  } else {
    start = Number(from);
    end = to === '' ? size - 1 : Math.min(Number(to), size - 1);
  }
  if (start >= size || start > end) return 'unsatisfiable';
  return { start, end };
}

export function registerMediaRoutes(app: FastifyInstance, store: ObjectStore): void {
  const handler = async (request: FastifyRequest<{ Params: { '*': string } }>, reply: FastifyReply) => {
    const key = request.params['*'];
    if (store.kind !== 'local') return reply.redirect(store.publicUrl(key), 302);
    const info = await store.head(key).catch((err: unknown) => {
      if (err instanceof AppError && err.code === 'OBJECT_KEY_INVALID') throw new AppError('NOT_FOUND');
      throw err;
    });
    if (!info) throw new AppError('NOT_FOUND', 'No such object');

    reply.header('content-type', info.contentType);
    reply.header('cache-control', info.cacheControl ?? DEFAULT_CACHE_CONTROL);
    reply.header('accept-ranges', 'bytes');
    // Uploads are user content: never let a browser guess a more dangerous type than the stored one.
    reply.header('x-content-type-options', 'nosniff');
    reply.header('last-modified', info.lastModified.toUTCString());
    if (info.etag) {
      const etag = `"${info.etag}"`;
      reply.header('etag', etag);
      if (request.headers['if-none-match'] === etag) return reply.status(304).send();
    }

    const rangeHeader = request.headers.range;
    const range = rangeHeader ? parseRange(rangeHeader, info.size) : undefined;
    if (range === 'unsatisfiable') {
      reply.header('content-range', `bytes */${info.size}`);
      throw new AppError('RANGE_NOT_SATISFIABLE');
    }
    if (request.method === 'HEAD') {
      reply.header('content-length', info.size);
      return reply.send();
    }
    const object = await store.get(key, range);
    if (!object) throw new AppError('NOT_FOUND', 'No such object');
    if (range) {
      reply.status(206);
      reply.header('content-range', `bytes ${range.start}-${range.end}/${info.size}`);
      reply.header('content-length', range.end - range.start + 1);
    } else {
      reply.header('content-length', object.size);
    }
    return reply.send(object.body);
  };

  app.route<{ Params: { '*': string } }>({
    method: ['GET', 'HEAD'],
    url: '/media/*',
    schema: { hide: true },
    handler,
  });
}
