/**
 * The one configuration schema. Every environment variable the server reads is
 * declared here with its type, default and description; `docs/configuration.md`
 * is generated from this file (`npm run docs:config`) and a test fails when the
 * two drift apart.
 */
import { FormatRegistry, type Static, type TSchema, Type } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';

if (!FormatRegistry.Has('email')) FormatRegistry.Set('email', (v) => /^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(v));

const Port = (description: string, def: number) =>
  Type.Integer({ minimum: 0, maximum: 65535, default: def, description });

const URL_PATTERN = '^[a-z][a-z0-9+.-]*://[^\\s]+$';
const OptionalUrl = (description: string) =>
  Type.Optional(Type.String({ pattern: URL_PATTERN, description }));

export const ConfigSchema = Type.Object(
  {
    HOST: Type.String({
      minLength: 1,
      default: '127.0.0.1',
      description: 'Interface the HTTP and WebSocket listener binds to. Use 0.0.0.0 in containers.',
    }),
    PORT: Port('HTTP + WebSocket port (REST API, /ws, /media, /docs, /metrics). 0 picks a free port.', 8080),
    PUBLIC_BASE_URL: OptionalUrl(
      'Base URL clients use to reach this server (links in API answers, local media URLs). Default: http://localhost:PORT.',
    ),
    DATA_DIR: Type.String({
      minLength: 1,
      default: './data',
      description:
        'Directory for embedded state: PGlite database, local object store, generated dev JWT secret.',
    }),
    LOG_LEVEL: Type.Union(
      ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)),
      { default: 'info', description: 'pino log level.' },
    ),
    LOG_REQUESTS: Type.Boolean({
      default: true,
      description:
        'Log one line per HTTP request (method, route, status, time). Turn off under very high load.',
    }),
    TRUST_PROXY: Type.Boolean({
      default: false,
      description: 'Trust X-Forwarded-* headers (set when running behind a load balancer).',
    }),
    CORS_ORIGINS: Type.String({
      default: '',
      description: 'Comma-separated list of allowed browser origins, or * for any. Empty disables CORS.',
    }),
    BODY_LIMIT_BYTES: Type.Integer({
      minimum: 1024,
      default: 1048576,
      description: 'Largest accepted JSON request body in bytes; bigger bodies get 413 BODY_TOO_LARGE.',
    }),
    SHUTDOWN_TIMEOUT_MS: Type.Integer({
      minimum: 100,
      default: 10000,
      description: 'How long graceful shutdown may take before the process exits anyway.',
    }),
    DATABASE_URL: OptionalUrl(
      'PostgreSQL connection string (postgres://user@host:5432/db). Empty: embedded PGlite under DATA_DIR/pglite.',
    ),
    DATABASE_POOL_SIZE: Type.Integer({
      minimum: 1,
      maximum: 1000,
      default: 10,
      description: 'Maximum PostgreSQL connections per instance.',
    }),
    REDIS_URL: OptionalUrl(
      'Redis URL (redis://host:6379/0). Empty: in-memory engine (single instance only).',
    ),
    REDIS_KEY_PREFIX: Type.String({
      pattern: '^[A-Za-z0-9:_-]*$',
      default: 'lcs:',
      description:
        'Prefix for every Redis key and pub/sub channel, so several deployments can share a Redis.',
    }),
    S3_BUCKET: Type.Optional(
      Type.String({
        pattern: '^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$',
        description: 'S3 bucket for media. Empty: local directory DATA_DIR/objects served at /media.',
      }),
    ),
    S3_ENDPOINT: OptionalUrl('S3 API endpoint for non-AWS services (MinIO, R2, Swift s3api). Empty: AWS.'),
    S3_REGION: Type.String({ minLength: 1, default: 'us-east-1', description: 'S3 region.' }),
    S3_ACCESS_KEY_ID: Type.Optional(
      Type.String({ description: 'S3 access key id. Empty: the AWS SDK default credential chain.' }),
    ),
    S3_SECRET_ACCESS_KEY: Type.Optional(Type.String({ description: 'S3 secret access key (never logged).' })),
    S3_FORCE_PATH_STYLE: Type.Boolean({
      default: false,
      description: 'Use path-style URLs (http://endpoint/bucket/key); needed by MinIO and Swift.',
    }),
    S3_PUBLIC_URL: OptionalUrl(
      'Base URL players use for objects (a CDN or the public bucket URL), without the key. Empty: ENDPOINT/BUCKET.',
    ),
    S3_KEY_PREFIX: Type.String({
      pattern: '^([A-Za-z0-9._-]+/)*$',
      default: '',
      description: 'Prefix (ending in /) for every object key, so several deployments can share a bucket.',
    }),
    JWT_SECRET: Type.Optional(
      Type.String({
        minLength: 32,
        description:
          'HS256 secret for access tokens (32+ characters). Empty: a random secret is generated and kept in DATA_DIR/jwt-secret, with a warning.',
      }),
    ),
    JWT_TTL_SECONDS: Type.Integer({
      minimum: 60,
      maximum: 2592000,
      default: 3600,
      description: 'Lifetime of access tokens.',
    }),
    ADMIN_EMAIL: Type.Optional(
      Type.String({
        format: 'email',
        description: 'With ADMIN_PASSWORD: an admin user created at start if no user has this email.',
      }),
    ),
    ADMIN_PASSWORD: Type.Optional(
      Type.String({ minLength: 8, description: 'Password of the bootstrap admin (never logged).' }),
    ),
    AUTH_RATE_LIMIT_PER_MINUTE: Type.Integer({
      minimum: 1,
      default: 30,
      description: 'Login/register attempts allowed per client IP per minute.',
    }),
    ORDER_PAYMENT_TTL_SECONDS: Type.Integer({
      minimum: 30,
      default: 900,
      description: 'How long an unpaid order holds its stock and coupon before it expires.',
    }),
    PAYMENT_TIMEOUT_MS: Type.Integer({
      minimum: 100,
      default: 10000,
      description: 'How long a payment call may take before the request answers 504 PAYMENT_TIMEOUT.',
    }),
    SHIPPING_FEE_MINOR: Type.Integer({
      minimum: 0,
      default: 499,
      description: 'Flat shipping fee per order in minor units (removed by free-shipping coupons).',
    }),
    FLASH_VELOCITY_WINDOW_MS: Type.Integer({
      minimum: 100,
      default: 10000,
      description: 'Window of the flash-sale purchase velocity limits.',
    }),
    FLASH_VELOCITY_PER_USER: Type.Integer({
      minimum: 1,
      default: 20,
      description: 'Flash-sale purchase attempts one user may make per window and sale.',
    }),
    FLASH_VELOCITY_PER_IP: Type.Integer({
      minimum: 1,
      default: 600,
      description: 'Flash-sale purchase attempts one client IP may make per window and sale.',
    }),
    SWEEP_INTERVAL_MS: Type.Integer({
      minimum: 50,
      default: 1000,
      description: 'How often each instance expires due flash-sale reservations and unpaid orders.',
    }),
    WS_MAX_MESSAGE_BYTES: Type.Integer({
      minimum: 256,
      default: 16384,
      description:
        'Largest inbound WebSocket frame the gateway handles; bigger ones (up to WS_MAX_PAYLOAD_BYTES) get a FRAME_TOO_LARGE error and the connection stays open.',
    }),
    WS_MAX_PAYLOAD_BYTES: Type.Integer({
      minimum: 1024,
      default: 65536,
      description:
        'Hard limit of one inbound WebSocket frame; a bigger frame closes the connection with code 1009 before it is buffered.',
    }),
    WS_AUTH_TIMEOUT_MS: Type.Integer({
      minimum: 100,
      default: 10000,
      description:
        'A WebSocket connection without a token must send `auth` or `join` a room within this time, or it is closed with code 4002.',
    }),
    WS_HEARTBEAT_INTERVAL_MS: Type.Integer({
      minimum: 100,
      default: 20000,
      description:
        'Ping interval of the WebSocket gateway; a socket that has not answered the previous ping is dropped. Also the presence refresh interval.',
    }),
    WS_PRESENCE_TTL_MS: Type.Integer({
      minimum: 200,
      default: 45000,
      description:
        'How long a presence entry lives without a refresh (at least 1.5 x WS_HEARTBEAT_INTERVAL_MS). Users of a crashed instance go offline within this plus half a heartbeat interval.',
    }),
    WS_RATE_PER_SECOND: Type.Number({
      minimum: 0.1,
      default: 20,
      description:
        'Sustained inbound WebSocket frames allowed per connection per second (token bucket refill).',
    }),
    WS_RATE_BURST: Type.Integer({
      minimum: 1,
      default: 40,
      description: 'Inbound WebSocket frames a connection may send in a burst (token bucket size).',
    }),
    WS_FLOOD_CLOSE_AFTER: Type.Integer({
      minimum: 1,
      default: 20,
      description:
        'Consecutive rate-limited frames after which a flooding WebSocket connection is closed with code 4008.',
    }),
    WS_MAX_BUFFERED_BYTES: Type.Integer({
      minimum: 1024,
      default: 1048576,
      description:
        'Outbound bytes a WebSocket may have queued (not yet taken by the network); a slower client is closed with code 4009.',
    }),
    WS_MAX_ROOMS_PER_CONNECTION: Type.Integer({
      minimum: 1,
      default: 100,
      description: 'Rooms one WebSocket connection may be joined to at once.',
    }),
    WS_HISTORY_MAX_LEN: Type.Integer({
      minimum: 1,
      default: 1000,
      description:
        'Events kept per room for reconnect recovery; a client that missed more is told to reload history.',
    }),
    WS_HISTORY_TTL_MS: Type.Integer({
      minimum: 10000,
      default: 3600000,
      description:
        'A room history is dropped this long after its last event while no instance has a client in the room (the recovery window of an idle room).',
    }),
    RTMP_PORT: Port(
      'RTMP ingest port: OBS publishes to rtmp://HOST:RTMP_PORT/live with the stream key.',
      1935,
    ),
    RTMP_PUBLIC_URL: Type.Optional(
      Type.String({
        pattern: '^rtmps?://[^\\s]+$',
        description:
          'RTMP server URL shown to streamers for OBS ("Server"; the key goes in its own field), e.g. rtmp://live.example.com/live. Default: rtmp://<host of PUBLIC_BASE_URL>:RTMP_PORT/live.',
      }),
    ),
    STREAM_RECONNECT_GRACE_MS: Type.Integer({
      minimum: 1000,
      maximum: 3600000,
      default: 10000,
      description:
        'How long a live stream waits for its publisher to come back after it disconnects (a reconnect continues the same stream) before it ends.',
    }),
    RTMP_ENABLED: Type.Boolean({
      default: true,
      description: 'Run the RTMP ingest (and HLS packaging) in this instance.',
    }),
    FFMPEG_PATH: Type.String({
      minLength: 1,
      default: 'ffmpeg',
      description:
        'ffmpeg executable: transcodes ABR rungs (LIVE_ABR_LADDER) and packages fMP4 streams, and is checked at start when either is set; MPEG-TS streams are copied into segments in process without it.',
    }),
    HLS_SEGMENT_SECONDS: Type.Number({
      minimum: 0.5,
      maximum: 10,
      default: 1,
      description:
        "Target HLS segment length in seconds. Segments are cut at keyframes, so the publisher's keyframe interval is the real floor.",
    }),
    HLS_SEGMENT_TYPE: Type.Union([Type.Literal('mpegts'), Type.Literal('fmp4')], {
      default: 'mpegts',
      description:
        'HLS segment container: MPEG-TS (.ts, packaged in process) or fragmented MP4 (.m4s with an init.mp4, packaged by one ffmpeg per stream).',
    }),
    HLS_LIVE_WINDOW_SEGMENTS: Type.Integer({
      minimum: 3,
      maximum: 100,
      default: 8,
      description: 'Segments listed in a live playlist.',
    }),
    LIVE_ABR_LADDER: Type.String({
      default: '',
      pattern: '^(\\s*(1080|720|540|480|360|240|144)\\s*(,|$))*$',
      description:
        'Renditions (frame heights, e.g. 480,360) that streams created with `abr: true` are also transcoded to (x264 veryfast, about a fifth of a core per 480p rung), with a master playlist. Empty: no ladder, copy-transmux only.',
    }),
    LIVE_MAX_TRANSCODES: Type.Integer({
      minimum: 0,
      maximum: 1000,
      default: 4,
      description:
        'Most ladder rungs this instance transcodes at once. A stream that would exceed it goes live with its source only (logged as a warning).',
    }),
    LIVE_MAX_STREAMS: Type.Integer({
      minimum: 1,
      maximum: 10000,
      default: 50,
      description:
        'Most streams this instance packages at once; another publisher is refused (NetStream.Publish.Rejected) until one ends.',
    }),
    LIVE_WORK_DIR: Type.Optional(
      Type.String({
        minLength: 1,
        description:
          'Directory where segments wait until they are uploaded. Default: DATA_DIR/hls-work. Segments are deleted once stored.',
      }),
    ),
    HLS_UPLOAD_RETRY_MAX_MS: Type.Integer({
      minimum: 100,
      maximum: 300000,
      default: 5000,
      description:
        'Longest wait between retries of a failed segment or playlist upload (the wait doubles from 250 ms). Uploads retry until they succeed.',
    }),
    RECORDING_RETENTION_DAYS: Type.Integer({
      minimum: 0,
      maximum: 36500,
      default: 0,
      description:
        'Days a stream recording (segments and VOD playlist) is kept after the stream ends; then it is deleted from the object store. 0 keeps recordings forever.',
    }),
    UPLOAD_MAX_BYTES: Type.Integer({
      minimum: 1024,
      maximum: 1073741824,
      default: 10485760,
      description:
        'Largest file accepted by POST /v1/uploads (chat images and files) in bytes; bigger uploads get 413 UPLOAD_TOO_LARGE.',
    }),
    CHAT_GROUP_MAX_MEMBERS: Type.Integer({
      minimum: 2,
      maximum: 10000,
      default: 256,
      description: 'Most members a group conversation may have, its owner included.',
    }),
    CALLS_ENABLED: Type.Boolean({
      default: true,
      description:
        'Video calls (mediasoup SFU). When on, the server refuses to start without a mediasoup worker binary (see MEDIASOUP_WORKER_BIN); set false to run without calls.',
    }),
    MEDIASOUP_WORKER_BIN: Type.Optional(
      Type.String({
        minLength: 1,
        description:
          'Path of the mediasoup-worker binary. Empty: the one mediasoup built into node_modules, else the one `npm run setup` (scripts/mediasoup-worker.sh) cached under ~/.cache/mediasoup-worker.',
      }),
    ),
    MEDIASOUP_NUM_WORKERS: Type.Integer({
      minimum: 0,
      maximum: 256,
      default: 0,
      description: 'mediasoup worker processes per instance. 0: one per CPU core.',
    }),
    RTC_LISTEN_IP: Type.String({
      minLength: 1,
      default: '127.0.0.1',
      description:
        'IP the WebRTC transports listen on (UDP and TCP). Use 0.0.0.0 or the host IP with RTC_ANNOUNCED_ADDRESS in production.',
    }),
    RTC_ANNOUNCED_ADDRESS: Type.Optional(
      Type.String({
        minLength: 1,
        description:
          'Public IP or host name put in ICE candidates when RTC_LISTEN_IP is not reachable by clients (NAT, containers). Empty: the listen IP.',
      }),
    ),
    RTC_MIN_PORT: Port('Lowest UDP/TCP port of the WebRTC transports.', 40000),
    RTC_MAX_PORT: Port('Highest UDP/TCP port of the WebRTC transports.', 49999),
    STUN_URLS: Type.String({
      default: '',
      description:
        'Comma-separated STUN URLs handed to call clients, e.g. stun:stun.example.com:3478. Empty: none.',
    }),
    TURN_URLS: Type.String({
      default: '',
      description:
        'Comma-separated TURN URLs handed to call clients with short-lived credentials, e.g. turn:turn.example.com:3478?transport=udp,turns:turn.example.com:5349?transport=tcp. Needs TURN_SECRET.',
    }),
    TURN_SECRET: Type.Optional(
      Type.String({
        minLength: 16,
        description:
          "Secret shared with coturn's static-auth-secret (use-auth-secret): TURN credentials are minted by the TURN REST scheme (never logged).",
      }),
    ),
    TURN_CREDENTIAL_TTL_SECONDS: Type.Integer({
      minimum: 60,
      maximum: 86400,
      default: 3600,
      description: 'Lifetime of the TURN credentials minted per call.',
    }),
    CALL_RING_TIMEOUT_MS: Type.Integer({
      minimum: 1000,
      default: 30000,
      description: 'A ringing call nobody answers within this time ends as missed.',
    }),
    CALL_QUEUE_TIMEOUT_MS: Type.Integer({
      minimum: 1000,
      default: 120000,
      description: 'A support call waiting in the queue for a free agent longer than this ends as missed.',
    }),
    CALL_DISCONNECT_GRACE_MS: Type.Integer({
      minimum: 100,
      default: 10000,
      description:
        "When a participant's WebSocket leaves the call's room (closed or dropped), the call ends after this time unless they rejoin.",
    }),
    CALL_SIGNALING_TIMEOUT_MS: Type.Integer({
      minimum: 100,
      default: 5000,
      description:
        'How long a call signaling request forwarded to the instance hosting the call waits for its answer (CALL_MEDIA_UNAVAILABLE after).',
    }),
    CALL_STATS_INTERVAL_MS: Type.Integer({
      minimum: 1000,
      default: 10000,
      description:
        "How often the instance hosting a call samples its media stats (bitrate, loss, jitter, RTT, score) into the call's quality summary.",
    }),
    METRICS_ENABLED: Type.Boolean({ default: true, description: 'Serve Prometheus metrics at /metrics.' }),
  },
  { additionalProperties: false },
);

export type Config = Static<typeof ConfigSchema>;

/** Thrown when the environment holds a value the schema does not allow; its message is one line. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** Variables that must never appear in logs or error messages. */
export const SECRET_KEYS = ['S3_SECRET_ACCESS_KEY', 'JWT_SECRET', 'ADMIN_PASSWORD', 'TURN_SECRET'] as const;

type PropertySchema = TSchema & { type?: string; default?: unknown; anyOf?: Array<{ const?: unknown }> };

function coerce(name: string, raw: string, schema: PropertySchema): unknown {
  switch (schema.type) {
    case 'integer':
    case 'number': {
      const n = raw.trim() === '' ? Number.NaN : Number(raw);
      if (!Number.isFinite(n)) throw new ConfigError(`${name} must be a number, got "${raw}"`);
      return n;
    }
    case 'boolean': {
      const v = raw.trim().toLowerCase();
      if (['1', 'true', 'yes', 'on'].includes(v)) return true;
      if (['0', 'false', 'no', 'off'].includes(v)) return false;
      throw new ConfigError(`${name} must be true or false, got "${raw}"`);
    }
    default:
      return raw;
  }
}

/** A human description of what a property allows, for the one-line error. */
export function describeAllowed(schema: PropertySchema): string {
  const s = schema as PropertySchema & Record<string, unknown>;
  if (s.anyOf) return `one of ${s.anyOf.map((o) => String(o.const)).join(', ')}`;
  const parts: string[] = [];
  if (s.type === 'integer') parts.push('an integer');
  else if (s.type === 'number') parts.push('a number');
  else if (s.type === 'boolean') parts.push('true or false');
  else parts.push('a string');
  if (typeof s.minimum === 'number' && typeof s.maximum === 'number')
    parts.push(`from ${s.minimum} to ${s.maximum}`);
  else if (typeof s.minimum === 'number') parts.push(`>= ${s.minimum}`);
  if (typeof s.minLength === 'number' && s.minLength > 1) parts.push(`of at least ${s.minLength} characters`);
  if (s.format === 'email') parts.push('holding an email address');
  if (s.pattern === URL_PATTERN) parts[0] = 'a URL';
  else if (typeof s.pattern === 'string') parts.push(`matching ${s.pattern}`);
  return parts.join(' ');
}

/**
 * Reads the configuration from an environment. Empty strings count as unset.
 * Throws ConfigError with a one-line message naming the variable and what it allows.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const props = ConfigSchema.properties as Record<string, PropertySchema>;
  const out: Record<string, unknown> = {};
  for (const [name, schema] of Object.entries(props)) {
    const raw = env[name];
    if (raw === undefined || raw === '') {
      if (schema.default !== undefined) out[name] = schema.default;
      continue;
    }
    out[name] = coerce(name, raw, schema);
    if (!Value.Check(schema, out[name])) {
      const shown = (SECRET_KEYS as readonly string[]).includes(name) ? '(hidden)' : `"${raw}"`;
      throw new ConfigError(`${name} must be ${describeAllowed(schema)}, got ${shown}`);
    }
  }
  const config = out as Config;
  if (Boolean(config.ADMIN_EMAIL) !== Boolean(config.ADMIN_PASSWORD))
    throw new ConfigError('ADMIN_EMAIL and ADMIN_PASSWORD must be set together');
  if (Boolean(config.S3_ACCESS_KEY_ID) !== Boolean(config.S3_SECRET_ACCESS_KEY))
    throw new ConfigError('S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY must be set together');
  if (config.WS_PRESENCE_TTL_MS < 1.5 * config.WS_HEARTBEAT_INTERVAL_MS)
    throw new ConfigError(
      `WS_PRESENCE_TTL_MS (${config.WS_PRESENCE_TTL_MS}) must be at least 1.5 x WS_HEARTBEAT_INTERVAL_MS (${config.WS_HEARTBEAT_INTERVAL_MS})`,
    );
  if (config.WS_MAX_PAYLOAD_BYTES < config.WS_MAX_MESSAGE_BYTES)
    throw new ConfigError('WS_MAX_PAYLOAD_BYTES must be at least WS_MAX_MESSAGE_BYTES');
  if (config.TURN_URLS.trim() && !config.TURN_SECRET)
    throw new ConfigError('TURN_URLS needs TURN_SECRET (the static-auth-secret shared with coturn)');
  if (config.RTC_MIN_PORT > config.RTC_MAX_PORT)
    throw new ConfigError('RTC_MIN_PORT must not be above RTC_MAX_PORT');
  return config;
}

/** The base URL clients use to reach this server. */
export function publicBaseUrl(config: Config, boundPort = config.PORT): string {
  return (config.PUBLIC_BASE_URL ?? `http://localhost:${boundPort}`).replace(/\/+$/, '');
}
