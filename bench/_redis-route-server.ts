/**
 * The server of `npm run bench -- redis-route`: a bare Fastify app (no
 * hooks, schemas or logger) with a trivial JSON route and a route that makes
 * one Redis Lua call (one INCR) through ioredis with auto-pipelining.
 * Prints `{"port":N}` once listening.
 */
import Fastify from 'fastify';
import { Redis } from 'ioredis';

const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379/0', { enableAutoPipelining: true });
const key = `bench:redis-route:${process.pid}`;
const sha = (await redis.script('LOAD', "return redis.call('INCR', KEYS[1])")) as string;
const app = Fastify({ logger: false });
app.get('/hello', async () => ({ hello: 'world' }));
app.post('/lua', async () => ({ n: await redis.evalsha(sha, 1, key) }));
await app.listen({ port: 0, host: '127.0.0.1', backlog: 4096 });
const address = app.server.address();
process.stdout.write(`${JSON.stringify({ port: typeof address === 'object' ? address?.port : null })}\n`);
const stop = async () => {
  await app.close();
  await redis.del(key);
  redis.disconnect();
};
process.once('SIGTERM', () => void stop());
