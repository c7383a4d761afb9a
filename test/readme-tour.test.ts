/**
 * The README's five-minute tour, run as written against the real server entry point on
 * embedded defaults: if a documented command or answer drifts from the code, this fails.
 * Only the ports change (free ones picked at start-up instead of 8080 and 1935).
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { startServerProcess } from './support/server-process.js';

const readme = readFileSync(fileURLToPath(new URL('../README.md', import.meta.url)), 'utf8');

/** The tour's second `sh` block (the first one installs and starts the server). */
function tourScript(): string {
  const tour = readme.slice(readme.indexOf('## Five-minute tour'));
  const blocks = [...tour.matchAll(/^```sh\n([\s\S]*?)^```/gm)].map((m) => m[1] ?? '');
  const script = blocks[1];
  if (!script) throw new Error('README: the five-minute tour has no second sh block');
  return script;
}

interface ScriptRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a bash script in its own process group, so the background ffmpeg it starts dies with it. */
async function runScript(script: string, timeoutMs: number): Promise<ScriptRun> {
  const proc = spawn('bash', ['-euo', 'pipefail', '-c', script], {
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  proc.stdout.on('data', (c: Buffer) => {
    stdout += c.toString();
  });
  proc.stderr.on('data', (c: Buffer) => {
    stderr += c.toString();
  });
  const killGroup = () => {
    try {
      if (proc.pid) process.kill(-proc.pid, 'SIGKILL');
    } catch {
      // the group is already gone
    }
  };
  const timer = setTimeout(() => {
    stderr += `\n(killed after ${timeoutMs} ms)`;
    killGroup();
  }, timeoutMs);
  const [code] = (await once(proc, 'exit')) as [number | null];
  clearTimeout(timer);
  killGroup();
  return { code, stdout, stderr };
}

const dataDir = mkdtempSync(join(tmpdir(), 'lcs-tour-'));
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

describe('README five-minute tour', () => {
  it('runs as written: sign-up, roles, a validation error, a paid flash-sale order, going live, a pin in the playlist, a support call, and the replay', {
    timeout: 240_000,
  }, async () => {
    // PORT=0 and RTMP_PORT=0: the answers' media and RTMP URLs must name the ports actually bound.
    const server = await startServerProcess({
      DATA_DIR: dataDir,
      ADMIN_EMAIL: 'admin@example.com',
      ADMIN_PASSWORD: 'change-me-now',
      ...(process.env.MEDIASOUP_WORKER_BIN ? { MEDIASOUP_WORKER_BIN: process.env.MEDIASOUP_WORKER_BIN } : {}),
    });
    try {
      const port = new URL(server.url).port;
      const script = tourScript()
        .replaceAll('localhost:8080', `localhost:${port}`)
        .replaceAll('localhost:1935', `localhost:${server.rtmpPort}`);
      const run = await runScript(script, 150_000);
      const context = `stdout:\n${run.stdout}\nstderr:\n${run.stderr}`;
      expect(run.code, context).toBe(0);

      const out = run.stdout;
      expect(out).toContain('"status":"ready"');
      expect(out).toContain('"code":"VALIDATION_FAILED"');
      expect(out).toContain('"status":"paid"');
      expect(out).toContain('"unitsSold":1');
      expect(out).toContain(`rtmp://localhost:${server.rtmpPort}/live\n`);
      expect(out).toContain('#EXTM3U');
      expect(out).toMatch(/#EXT-X-DATERANGE:ID="pin-/);
      expect(out).toContain('active\n');
      expect(out).toContain('hangup\n');

      // The page's behaviour is web-apps.test.ts's subject; here, that the link is served and names the stream run.
      const streamId = out.match(new RegExp(`open http://localhost:${port}/watch/([\\w-]+)`))?.[1];
      expect(streamId, context).toBeDefined();
      const watch = await fetch(`${server.url}/watch/${streamId}`);
      expect(watch.status).toBe(200);
      expect(watch.headers.get('content-type')).toContain('text/html');
      const page = await fetch(`${server.url}/v1/streams/${streamId}`);
      expect(page.status).toBe(200);
      expect(await page.json()).toMatchObject({ stream: { id: streamId }, status: 'ended' });

      const replayUrl = out.match(/"replayUrl":"([^"]+)"/)?.[1];
      expect(replayUrl, context).toMatch(/vod\.m3u8$/);
      expect(replayUrl).toContain(`http://localhost:${port}/media/`);
      const replay = await fetch(new URL(replayUrl as string, server.url));
      expect(replay.status).toBe(200);
      const vod = await replay.text();
      expect(vod).toContain('#EXT-X-PLAYLIST-TYPE:VOD');
      expect(vod).toContain('#EXT-X-ENDLIST');
    } finally {
      await server.stop();
    }
  });
});
