/**
 * ICE servers for call clients: STUN URLs as configured, TURN URLs with
 * short-lived credentials by the TURN REST scheme that coturn checks with
 * `use-auth-secret` + `static-auth-secret`: the username is
 * `<expiry unix seconds>:<userId>`, the password base64(HMAC-SHA1(secret,
 * username)). coturn refuses a username whose expiry has passed, so a leaked
 * credential is only good until then.
 */
import { createHmac } from 'node:crypto';
import type { Config } from '../../config/schema.js';

/** The shape of RTCIceServer, as handed to the browser. */
export interface IceServer {
  urls: string[];
  username?: string;
  credential?: string;
}

export interface TurnCredential {
  username: string;
  credential: string;
  /** Unix seconds after which coturn refuses it. */
  expiresAt: number;
}

export interface IceServerOptions {
  stunUrls: string[];
  turnUrls: string[];
  /** Required when `turnUrls` is not empty. */
  turnSecret?: string;
  turnTtlSeconds: number;
}

/** Splits a comma-separated URL list from the config, dropping blanks. */
export function splitUrls(list: string): string[] {
  return list
    .split(',')
    .map((u) => u.trim())
    .filter(Boolean);
}

export function iceServerOptionsFromConfig(config: Config): IceServerOptions {
  return {
    stunUrls: splitUrls(config.STUN_URLS),
    turnUrls: splitUrls(config.TURN_URLS),
    turnSecret: config.TURN_SECRET,
    turnTtlSeconds: config.TURN_CREDENTIAL_TTL_SECONDS,
  };
}

/** A TURN REST credential for `userId`, valid for `ttlSeconds` from `nowMs`. */
export function turnCredential(
  secret: string,
  userId: string,
  ttlSeconds: number,
  nowMs = Date.now(),
): TurnCredential {
  // coturn splits the username at the first colon: the user id must not be what holds one.
  const expiresAt = Math.floor(nowMs / 1000) + ttlSeconds;
  const username = `${expiresAt}:${userId}`;
  const credential = createHmac('sha1', secret).update(username).digest('base64');
  return { username, credential, expiresAt };
}

/** The ICE servers one user gets for a call, with fresh TURN credentials. */
export function iceServersFor(options: IceServerOptions, userId: string, nowMs = Date.now()): IceServer[] {
  const servers: IceServer[] = [];
  if (options.stunUrls.length > 0) servers.push({ urls: options.stunUrls });
  if (options.turnUrls.length > 0 && options.turnSecret) {
    const { username, credential } = turnCredential(
      options.turnSecret,
      userId,
      options.turnTtlSeconds,
      nowMs,
    );
    servers.push({ urls: options.turnUrls, username, credential });
  }
  return servers;
}
