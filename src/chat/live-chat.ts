/**
 * Chat in a live stream's public room (`stream:<streamId>`), with the
 * moderation a big audience needs: a moderator deletes any message, mutes a
 * user for a while, bans a user from the room, and sets slow mode (one
 * message per N seconds per user). All rules live in the Engine, so they hold
 * on every instance; messages travel through the gateway, numbered and kept
 * for recovery like every room event.
 *
 * Moderators: users with the `chat:moderate` permission (streamers, admins).
 */
import { randomUUID } from 'node:crypto';
import { Type } from '@sinclair/typebox';
import type { Gateway } from '../../signaling/gateway.js';
import { type AuthUser, assertCan } from '../auth/permissions.js';
import type { Engine } from '../platform/engine/engine.js';
import { AppError } from '../platform/errors.js';

/** Longest live-chat message, in characters. */
export const LIVE_MESSAGE_MAX = 500;
/** Longest mute, and the longest slow-mode interval. */
const MAX_MUTE_SECONDS = 7 * 24 * 3600;
const MAX_SLOW_SECONDS = 3600;

const StreamId = Type.String({ pattern: '^[A-Za-z0-9._-]{1,128}$' });
const UserId = Type.String({ format: 'uuid' });

/** Engine keys of a stream's chat rules; one hash tag per stream. */
function keys(streamId: string) {
  const tag = `{lc:${streamId}}`;
  return {
    banned: (userId: string) => `${tag}:ban:${userId}`,
    muted: (userId: string) => `${tag}:mute:${userId}`,
    lastSent: (userId: string) => `${tag}:last:${userId}`,
    slowSeconds: `${tag}:slow`,
    count: `${tag}:count`,
  };
}

export interface LiveChatMessage {
  id: string;
  streamId: string;
  userId: string;
  displayName: string;
  body: string;
  sentAt: string;
}

export class LiveChat {
  constructor(
    private readonly engine: Engine,
    private readonly gateway: Gateway,
  ) {}

  async isBanned(streamId: string, userId: string): Promise<boolean> {
    return (await this.engine.get(keys(streamId).banned(userId))) !== null;
  }

  async send(
    user: AuthUser,
    streamId: string,
    body: string,
  ): Promise<{ message: LiveChatMessage; seq: number }> {
    const text = body.trim();
    if (text.length === 0 || text.length > LIVE_MESSAGE_MAX)
      throw new AppError('VALIDATION_FAILED', `body must be 1-${LIVE_MESSAGE_MAX} characters`, {
        field: 'body',
      });
    const k = keys(streamId);
    const [banned, muted, slow] = await Promise.all([
      this.engine.get(k.banned(user.id)),
      this.engine.ttl(k.muted(user.id)),
      this.engine.get(k.slowSeconds),
    ]);
    if (banned !== null) throw new AppError('CHAT_BANNED');
    if (muted !== -2) throw new AppError('CHAT_MUTED', undefined, { retryAfterMs: Math.max(0, muted) });
    const slowSeconds = Number(slow ?? 0);
    // Slow mode: the first message of a window claims it atomically; the rest are refused until it ends.
    if (
      slowSeconds > 0 &&
      !(await this.engine.set(k.lastSent(user.id), '1', { ttlMs: slowSeconds * 1000, onlyIfAbsent: true }))
    )
      throw new AppError('CHAT_SLOW_MODE', undefined, {
        slowModeSeconds: slowSeconds,
        retryAfterMs: Math.max(0, await this.engine.ttl(k.lastSent(user.id))),
      });
    const message: LiveChatMessage = {
      id: randomUUID(),
      streamId,
      userId: user.id,
      displayName: user.displayName,
      body: text,
      sentAt: new Date().toISOString(),
    };
    const { seq } = await this.gateway.publish(`stream:${streamId}`, 'chat.message', message);
    await this.engine.incrBy(k.count, 1);
    return { message, seq };
  }

  /** Hides a message for everyone (moderators). */
  async remove(moderator: AuthUser, streamId: string, messageId: string): Promise<void> {
    assertCan(moderator, 'chat:moderate');
    await this.gateway.publish(`stream:${streamId}`, 'chat.message_deleted', { messageId, by: moderator.id });
  }

  async mute(
    moderator: AuthUser,
    streamId: string,
    userId: string,
    seconds: number,
  ): Promise<{ until: string }> {
    assertCan(moderator, 'chat:moderate');
    await this.engine.set(keys(streamId).muted(userId), moderator.id, { ttlMs: seconds * 1000 });
    const until = new Date(Date.now() + seconds * 1000).toISOString();
    await this.gateway.publish(`stream:${streamId}`, 'chat.user_muted', { userId, until, by: moderator.id });
    return { until };
  }

  async unmute(moderator: AuthUser, streamId: string, userId: string): Promise<void> {
    assertCan(moderator, 'chat:moderate');
    await this.engine.del(keys(streamId).muted(userId));
    await this.gateway.publish(`stream:${streamId}`, 'chat.user_unmuted', { userId, by: moderator.id });
  }

  /** Bans a user from the room: no posting, no joining again. */
  async ban(moderator: AuthUser, streamId: string, userId: string): Promise<void> {
    assertCan(moderator, 'chat:moderate');
    await this.engine.set(keys(streamId).banned(userId), moderator.id);
    await this.gateway.publish(`stream:${streamId}`, 'chat.user_banned', { userId, by: moderator.id });
  }

  async unban(moderator: AuthUser, streamId: string, userId: string): Promise<void> {
    assertCan(moderator, 'chat:moderate');
    await this.engine.del(keys(streamId).banned(userId));
  }

  /** One message per `seconds` per user; 0 turns slow mode off. */
  async setSlowMode(moderator: AuthUser, streamId: string, seconds: number): Promise<void> {
    assertCan(moderator, 'chat:moderate');
    const k = keys(streamId);
    if (seconds === 0) await this.engine.del(k.slowSeconds);
    else await this.engine.set(k.slowSeconds, String(seconds));
    await this.gateway.publish(`stream:${streamId}`, 'chat.slow_mode', { seconds, by: moderator.id });
  }

  /** Messages sent in the stream's chat so far. */
  async messageCount(streamId: string): Promise<number> {
    return Number((await this.engine.get(keys(streamId).count)) ?? 0);
  }
}

/**
 * Stream rooms stay public for watching (anonymous viewers included), but a
 * banned user can join no more; the WebSocket message types for live chat.
 */
export function registerLiveChatOnGateway(gateway: Gateway, live: LiveChat): void {
  gateway.rooms.register(
    'stream',
    {
      authorize: async (user, room, action) => {
        if (user && (await live.isBanned(room.id, user.id))) return false;
        return action === 'join' || user !== null;
      },
    },
    { presence: false },
  );
  const Target = { streamId: StreamId, userId: UserId };
  gateway.handle(
    'live.chat.send',
    Type.Object(
      { streamId: StreamId, body: Type.String({ minLength: 1, maxLength: LIVE_MESSAGE_MAX * 4 }) },
      { additionalProperties: false },
    ),
    async (ctx, d) => {
      const { message, seq } = await live.send(ctx.requireUser(), d.streamId, d.body);
      return { id: message.id, seq };
    },
    { auth: true },
  );
  gateway.handle(
    'live.chat.delete',
    Type.Object(
      { streamId: StreamId, messageId: Type.String({ format: 'uuid' }) },
      { additionalProperties: false },
    ),
    (ctx, d) => live.remove(ctx.requireUser(), d.streamId, d.messageId).then(() => ({})),
    { auth: true },
  );
  gateway.handle(
    'live.mute',
    Type.Object(
      { ...Target, seconds: Type.Integer({ minimum: 1, maximum: MAX_MUTE_SECONDS }) },
      { additionalProperties: false },
    ),
    (ctx, d) => live.mute(ctx.requireUser(), d.streamId, d.userId, d.seconds),
    { auth: true },
  );
  gateway.handle(
    'live.unmute',
    Type.Object(Target, { additionalProperties: false }),
    (ctx, d) => live.unmute(ctx.requireUser(), d.streamId, d.userId).then(() => ({})),
    { auth: true },
  );
  gateway.handle(
    'live.ban',
    Type.Object(Target, { additionalProperties: false }),
    (ctx, d) => live.ban(ctx.requireUser(), d.streamId, d.userId).then(() => ({})),
    { auth: true },
  );
  gateway.handle(
    'live.unban',
    Type.Object(Target, { additionalProperties: false }),
    (ctx, d) => live.unban(ctx.requireUser(), d.streamId, d.userId).then(() => ({})),
    { auth: true },
  );
  gateway.handle(
    'live.slow_mode',
    Type.Object(
      { streamId: StreamId, seconds: Type.Integer({ minimum: 0, maximum: MAX_SLOW_SECONDS }) },
      { additionalProperties: false },
    ),
    (ctx, d) => live.setSlowMode(ctx.requireUser(), d.streamId, d.seconds).then(() => ({})),
    { auth: true },
  );
}
