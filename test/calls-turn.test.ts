/**
 * TURN REST credentials against a real coturn (Debian `coturn`): a
 * turnserver with `use-auth-secret` runs on loopback on a free port for this
 * file only, and `turnutils_uclient` (shipped with coturn) tries an
 * allocation with the credentials the server mints. Fresh ones allocate;
 * expired ones and ones signed with another secret are refused.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { loadConfig } from '../config/schema.js';
import { iceServerOptionsFromConfig, iceServersFor, turnCredential } from '../src/calls/ice-servers.js';
import { describeWithService } from './support/real-services.js';

const SECRET = 'turn-test-secret-0123456789';

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

function run(cmd: string, args: string[]): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, output: `${stdout}${stderr}` });
    });
  });
}

async function probeCoturn(): Promise<void> {
  for (const bin of ['turnserver', 'turnutils_uclient']) {
    const { code, output } = await run('sh', ['-c', `command -v ${bin}`]);
    if (code !== 0 || !output.trim()) throw new Error(`${bin} not installed (apt-get install coturn)`);
  }
}

it('mints TURN REST credentials: expiry:userId, base64 HMAC-SHA1, TTL from config', () => {
  const cred = turnCredential('s3cret', 'user-1', 600, 1_700_000_000_000);
  expect(cred.username).toBe('1700000600:user-1');
  expect(cred.expiresAt).toBe(1_700_000_600);
  // echo -n 1700000600:user-1 | openssl dgst -sha1 -hmac s3cret -binary | base64
  expect(cred.credential).toBe('tdZNzWYvEosp1bAlWIoGlMc8d/g=');
  const config = loadConfig({
    STUN_URLS: 'stun:a.example:3478, stun:b.example:3478',
    TURN_URLS: 'turn:t.example:3478?transport=udp,turns:t.example:5349?transport=tcp',
    TURN_SECRET: SECRET,
    TURN_CREDENTIAL_TTL_SECONDS: '120',
  });
  const servers = iceServersFor(iceServerOptionsFromConfig(config), 'u9', 1_000_000);
  expect(servers).toEqual([
    { urls: ['stun:a.example:3478', 'stun:b.example:3478'] },
    {
      urls: ['turn:t.example:3478?transport=udp', 'turns:t.example:5349?transport=tcp'],
      username: '1120:u9',
      credential: turnCredential(SECRET, 'u9', 120, 1_000_000).credential,
    },
  ]);
  expect(() => loadConfig({ TURN_URLS: 'turn:t.example:3478' })).toThrow(/TURN_SECRET/);
  expect(iceServersFor(iceServerOptionsFromConfig(loadConfig({})), 'u9')).toEqual([]);
});

await describeWithService('coturn', probeCoturn, () => {
  let dir: string;
  let turn: ChildProcess | undefined;
  let port: number;
  let log = '';

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'lcs-turn-'));
    port = await freePort();
    const relayMin = 20000 + Math.floor(Math.random() * 20000);
    turn = spawn(
      'turnserver',
      [
        '-n', // no config file
        '--listening-ip=127.0.0.1',
        '--relay-ip=127.0.0.1',
        `--listening-port=${port}`,
        `--min-port=${relayMin}`,
        `--max-port=${relayMin + 50}`,
        '--use-auth-secret',
        `--static-auth-secret=${SECRET}`,
        '--realm=calls.test',
        '--no-tls',
        '--no-dtls',
        '--no-cli',
        '--allow-loopback-peers',
        '--log-file=stdout',
        '--simple-log',
        `--db=${join(dir, 'turndb')}`,
        `--pidfile=${join(dir, 'turnserver.pid')}`,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    turn.stdout?.on('data', (d: Buffer) => {
      log += d.toString();
    });
    turn.stderr?.on('data', (d: Buffer) => {
      log += d.toString();
    });
    // Ready once it listens on the port.
    const deadline = Date.now() + 20_000;
    while (!/listener opened on|Total General servers/i.test(log)) {
      if (turn.exitCode !== null) throw new Error(`turnserver exited: ${log.slice(-500)}`);
      if (Date.now() > deadline) throw new Error(`turnserver did not start: ${log.slice(-500)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  });

  afterAll(async () => {
    if (turn && turn.exitCode === null) {
      const exited = new Promise((r) => turn?.once('exit', r));
      turn.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
      if (turn.exitCode === null) turn.kill('SIGKILL');
    }
    rmSync(dir, { recursive: true, force: true });
  });

  /** One TURN allocation (plus a couple of sends to a loopback peer) with these credentials. */
  const allocate = (username: string, password: string) =>
    run('turnutils_uclient', [
      ...['-p', String(port), '-u', username, '-w', password],
      ...['-n', '1', '-m', '1', '-e', '127.0.0.1', '-r', String(port + 1)],
      '127.0.0.1',
    ]);

  it('allocates with a fresh credential', async () => {
    const cred = turnCredential(SECRET, 'agent-7', 600);
    const { code, output } = await allocate(cred.username, cred.credential);
    expect(output).not.toMatch(/Cannot complete Allocation/);
    expect(output).toMatch(/start_mclient: tot_send_msgs=\d+/);
    expect(code).toBe(0);
  });

  it('refuses an expired credential', async () => {
    const cred = turnCredential(SECRET, 'agent-7', 60, Date.now() - 120_000);
    expect(cred.expiresAt * 1000).toBeLessThan(Date.now());
    const { code, output } = await allocate(cred.username, cred.credential);
    expect(output).toMatch(/Cannot complete Allocation/);
    expect(code).not.toBe(0);
  });

  it('refuses a credential signed with another secret', async () => {
    const cred = turnCredential('not-the-shared-secret', 'agent-7', 600);
    const { code, output } = await allocate(cred.username, cred.credential);
    expect(output).toMatch(/Cannot complete Allocation/);
    expect(code).not.toBe(0);
  });
});
