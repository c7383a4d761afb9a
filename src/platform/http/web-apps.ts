/**
 * The web apps (built by `npm run build` into dist/web): `/watch/<streamId>`,
 * `/studio`, `/support`, and their bundles under `/assets/`. Pages are revalidated on every load;
 * bundles are cached briefly (their names do not carry a content hash yet).
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, extname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AppError } from '../errors.js';

const CONTENT_TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json',
  '.html': 'text/html; charset=utf-8',
};

/** dist/web of the checkout this module runs from (as src/… under tsx or dist/src/… when built). */
export function webAppsDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json')) && dirname(dir) !== dir) dir = dirname(dir);
  return join(dir, 'dist/web');
}

export function registerWebApps(app: FastifyInstance, root = webAppsDir()): void {
  const read = (file: string): Buffer => {
    const path = resolve(root, file);
    if (!path.startsWith(root) || !existsSync(path)) {
      if (!existsSync(root)) throw new AppError('WEB_APPS_NOT_BUILT');
      throw new AppError('NOT_FOUND');
    }
    return readFileSync(path);
  };

  const page = (file: string) => async (_request: FastifyRequest, reply: FastifyReply) =>
    reply
      .type(CONTENT_TYPES['.html'] as string)
      .header('cache-control', 'no-cache')
      .send(read(file));
  app.get('/watch/:streamId', { schema: { hide: true } }, page('watch.html'));
  app.get('/studio', { schema: { hide: true } }, page('studio.html'));
  app.get('/support', { schema: { hide: true } }, page('support.html'));

  app.get<{ Params: { file: string } }>(
    '/assets/:file',
    { schema: { hide: true } },
    async (request, reply) => {
      const file = request.params.file;
      if (!/^[a-z0-9-]+\.(js|css|map)$/.test(file)) throw new AppError('NOT_FOUND');
      return reply
        .type(CONTENT_TYPES[extname(file)] as string)
        .header('cache-control', 'public, max-age=300')
        .header('x-content-type-options', 'nosniff')
        .send(read(join('assets', file)));
    },
  );
}
