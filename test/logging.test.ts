/**
 * Logs never carry secrets: known secret fields are censored wherever they
 * appear, and tokens or stream keys in URLs are cut out.
 */
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger, LazyChildLogger, redactUrlQuery } from '../src/platform/logger.js';
import { createTestApp } from './support/app.js';

function capture(): { stream: Writable; lines: () => Array<Record<string, unknown>> } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, done) {
      chunks.push(String(chunk));
      done();
    },
  });
  return {
    stream,
    lines: () =>
      chunks
        .join('')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

describe('logging', () => {
  it('censors secret fields at any depth it knows', () => {
    const out = capture();
    const log = createLogger('info', out.stream);
    log.info(
      {
        user: { password: 'hunter22', token: 'eyJabc', streamKey: 'live_sk_1' },
        config: { JWT_SECRET: 's3cret' },
      },
      'hello',
    );
    const [line] = out.lines();
    const text = JSON.stringify(line);
    for (const secret of ['hunter22', 'eyJabc', 'live_sk_1', 's3cret']) expect(text).not.toContain(secret);
    expect((line!.user as Record<string, unknown>).password).toBe('[REDACTED]');
  });

  it('builds a request logger only when the request logs at an enabled level, with its bindings and redaction', () => {
    const { stream, lines } = capture();
    const parent = createLogger('info', stream);
    let children = 0;
    const child = parent.child.bind(parent);
    parent.child = ((...args: Parameters<typeof child>) => {
      children++;
      return child(...args);
    }) as typeof parent.child;
    const lazy = new LazyChildLogger(parent, { reqId: 'r-1' }, {});
    lazy.debug('below the level');
    expect(children).toBe(0);
    expect(lazy.level).toBe('info');
    lazy.info({ req: { headers: { authorization: 'Bearer secret' } } }, 'hello');
    lazy.warn('again');
    expect(children).toBe(1);
    const written = lines();
    expect(written.map((l) => [l.msg, l.reqId])).toEqual([
      ['hello', 'r-1'],
      ['again', 'r-1'],
    ]);
    expect(JSON.stringify(written[0])).not.toContain('secret');
  });

  it('cuts tokens and stream keys out of URLs', () => {
    expect(redactUrlQuery('/ws?token=abc.def&room=x')).toBe('/ws?token=[REDACTED]&room=x');
    expect(redactUrlQuery('/live/x?streamKey=sk&key=k2')).toBe('/live/x?streamKey=[REDACTED]&key=[REDACTED]');
    expect(redactUrlQuery('/healthz')).toBe('/healthz');
  });
});

describe('CORS', () => {
  it('answers preflights for configured origins only', async () => {
    const t = await createTestApp({ CORS_ORIGINS: 'https://shop.example' });
    try {
      const ok = await t.app.inject({
        method: 'OPTIONS',
        url: '/v1/auth/login',
        headers: { origin: 'https://shop.example', 'access-control-request-method': 'POST' },
      });
      expect(ok.statusCode).toBe(204);
      expect(ok.headers['access-control-allow-origin']).toBe('https://shop.example');
      const other = await t.app.inject({ url: '/healthz', headers: { origin: 'https://evil.example' } });
      expect(other.headers['access-control-allow-origin']).toBeUndefined();
    } finally {
      await t.close();
    }
  });
});
