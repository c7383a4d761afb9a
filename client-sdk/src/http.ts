/**
 * JSON over HTTP to the server's `/v1` API, with the caller's access token
 * and idempotency keys for mutating requests.
 */
import { LiveCommerceError } from './errors.js';

export type TokenSource = () => string | null | undefined | Promise<string | null | undefined>;

export interface HttpClientOptions {
  /** Server origin, e.g. `https://shop.example.com` (no trailing slash needed). */
  baseUrl: string;
  /** Gives the current access token, if signed in. */
  token?: TokenSource;
  /** Per-request timeout. Default 15 s. */
  timeoutMs?: number;
  /** fetch implementation (default: the global one). */
  fetch?: typeof fetch;
}

export interface RequestOptions {
  /** Sent as `Idempotency-Key`: a retry with the same key never repeats the effect. */
  idempotencyKey?: string;
  query?: Record<string, string | number | undefined>;
}

/** A random idempotency key (one per user action; reuse it when retrying that action). */
export function newIdempotencyKey(): string {
  return crypto.randomUUID();
}

export class HttpClient {
  private readonly baseUrl: string;

  constructor(private readonly options: HttpClientOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, '');
  }

  async request<T>(method: string, path: string, body?: unknown, options: RequestOptions = {}): Promise<T> {
    const url = new URL(this.baseUrl + path);
    for (const [k, v] of Object.entries(options.query ?? {}))
      if (v !== undefined) url.searchParams.set(k, String(v));
    const headers: Record<string, string> = {};
    const token = await this.options.token?.();
    if (token) headers.authorization = `Bearer ${token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (options.idempotencyKey) headers['idempotency-key'] = options.idempotencyKey;
    const doFetch = this.options.fetch ?? fetch;
    let res: Response;
    try {
      res = await doFetch(url, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(this.options.timeoutMs ?? 15_000),
      });
    } catch (err) {
      const timeout = err instanceof DOMException && err.name === 'TimeoutError';
      throw new LiveCommerceError(
        timeout ? 'TIMEOUT' : 'NETWORK',
        timeout ? 'Request timed out' : 'Network error',
      );
    }
    if (res.status === 204) return undefined as T;
    const text = await res.text();
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      throw new LiveCommerceError('BAD_RESPONSE', `Unreadable answer (${res.status})`, res.status);
    }
    if (!res.ok) {
      const e = (json ?? {}) as { code?: string; message?: string; details?: Record<string, unknown> };
      throw new LiveCommerceError(
        e.code ?? 'BAD_RESPONSE',
        e.message ?? `HTTP ${res.status}`,
        res.status,
        e.details,
      );
    }
    return json as T;
  }
}
