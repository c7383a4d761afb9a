/**
 * The whole live stack for browser tests: an S3 bucket on the real server
 * from TEST_S3_* (public-read, as players need), the server process on it,
 * a signed-in admin, and headless Debian Chromium driven by playwright-core.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { CreateBucketCommand, PutBucketAclCommand, S3Client } from '@aws-sdk/client-s3';
import { type Browser, chromium, type Page } from 'playwright-core';
import { type ServerProcess, startServerProcess } from './server-process.js';

export const S3_ENDPOINT = process.env.TEST_S3_ENDPOINT;
export const S3_PUBLIC_BASE = process.env.TEST_S3_PUBLIC_BASE;
export const ARTIFACTS = resolve('test-artifacts');
export const CHROMIUM = '/usr/bin/chromium';
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--autoplay-policy=no-user-gesture-required',
  // Calls: a fake camera and microphone, allowed without a prompt.
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
];

/** For `describeWithService`: S3 and Chromium are there, or the reason they are not. */
export async function probeLiveStack(): Promise<void> {
  if (!S3_ENDPOINT || !S3_PUBLIC_BASE)
    throw new Error(
      'TEST_S3_ENDPOINT/TEST_S3_PUBLIC_BASE not set; start Swift first: source scripts/test-s3.sh',
    );
  readFileSync(CHROMIUM);
}

/**
 * Console errors, page errors and failed requests of `page` go to `problems`, except the
 * client errors a test provokes on purpose (`expected`: status and path, e.g. a wrong coupon).
 */
export const watchForProblems = (
  page: Page,
  problems: string[],
  expected: Array<{ status: number; path: string }> = [],
) => {
  const isExpected = (status: number, url: string) =>
    expected.some((e) => e.status === status && url !== '' && new URL(url).pathname === e.path);
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    // Chromium reports every failed fetch as "Failed to load resource: … status of 404".
    const status = Number(/status of (\d{3})/.exec(m.text())?.[1]);
    if (!isExpected(status, m.location().url)) problems.push(m.text());
  });
  page.on('pageerror', (err) => problems.push(err.message));
  page.on('response', (res) => {
    if (res.status() >= 400 && !isExpected(res.status(), res.url()))
      problems.push(`${res.status()} ${res.url()}`);
  });
};

export interface LiveStack {
  /** The current server process (replaced by `restart`). */
  server: ServerProcess;
  /** Stops the server (SIGTERM) and starts it again with the same settings and data. */
  restart(): Promise<void>;
  browser: Browser;
  /** Admin access token (also a streamer: admins manage any stream). */
  admin: string;
  /** JSON call to the server as `token` (default: the admin); throws on 4xx/5xx. */
  api<T = Record<string, unknown>>(method: string, path: string, body?: object, token?: string): Promise<T>;
  /** Creates a user with a password and returns its token. */
  user(displayName: string): Promise<{ id: string; token: string; email: string; password: string }>;
  close(): Promise<void>;
}

export async function startLiveStack(env: Record<string, string> = {}): Promise<LiveStack> {
  const bucket = `lcs-e2e-${randomBytes(4).toString('hex')}`;
  const s3 = new S3Client({
    endpoint: S3_ENDPOINT,
    region: process.env.TEST_S3_REGION || 'us-east-1',
    forcePathStyle: true,
    credentials: {
      accessKeyId: process.env.TEST_S3_ACCESS_KEY_ID ?? '',
      secretAccessKey: process.env.TEST_S3_SECRET_ACCESS_KEY ?? '',
    },
  });
  await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  // Players read anonymously (Swift serves a public-read container's plain URL, with CORS).
  await s3.send(new PutBucketAclCommand({ Bucket: bucket, ACL: 'public-read' }));
  s3.destroy();

  const dataDir = mkdtempSync(join(tmpdir(), 'lcs-e2e-'));
  const serverEnv = {
    DATA_DIR: dataDir,
    STREAM_RECONNECT_GRACE_MS: '2000',
    ADMIN_EMAIL: 'admin@example.com',
    ADMIN_PASSWORD: 'admin-password-123',
    S3_BUCKET: bucket,
    S3_ENDPOINT: S3_ENDPOINT as string,
    S3_REGION: process.env.TEST_S3_REGION || 'us-east-1',
    S3_ACCESS_KEY_ID: process.env.TEST_S3_ACCESS_KEY_ID ?? '',
    S3_SECRET_ACCESS_KEY: process.env.TEST_S3_SECRET_ACCESS_KEY ?? '',
    S3_FORCE_PATH_STYLE: 'true',
    S3_PUBLIC_URL: `${S3_PUBLIC_BASE}/${bucket}`,
    ...env,
  };
  let server = await startServerProcess(serverEnv);
  const api = async <T>(method: string, path: string, body?: object, token?: string): Promise<T> => {
    const res = await fetch(`${server.url}${path}`, {
      method,
      headers: {
        ...(token !== '' ? { authorization: `Bearer ${token ?? admin}` } : {}),
        ...(body ? { 'content-type': 'application/json' } : {}),
      },
      body: body ? JSON.stringify(body) : undefined,
    });
    const json = (await res.json()) as T;
    if (res.status >= 400) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
    return json;
  };
  let admin = '';
  admin = (
    await api<{ token: string }>(
      'POST',
      '/v1/auth/login',
      { email: 'admin@example.com', password: 'admin-password-123' },
      '',
    )
  ).token;
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  mkdirSync(ARTIFACTS, { recursive: true });
  let users = 0;
  return {
    get server() {
      return server;
    },
    async restart() {
      await server.stop();
      server = await startServerProcess(serverEnv);
    },
    browser,
    admin,
    api,
    async user(displayName) {
      users += 1;
      const email = `${displayName.toLowerCase().replaceAll(/\W/g, '')}${users}-${randomBytes(3).toString('hex')}@example.com`;
      const password = 'password-123';
      const registered = await api<{ user: { id: string }; token: string }>(
        'POST',
        '/v1/auth/register',
        { email, password, displayName },
        '',
      );
      return { id: registered.user.id, token: registered.token, email, password };
    },
    async close() {
      await browser.close();
      await server.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
