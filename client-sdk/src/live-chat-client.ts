/**
 * Chat in a live stream's room, and the stream's live events, over the
 * realtime client.
 */
import type { FlashSale, StreamPin } from './commerce-client.js';
import type { PlaybackQuality } from './live-player.js';
import type { RealtimeClient, RoomEvent } from './realtime-client.js';

export interface LiveChatMessage {
  id: string;
  userId: string;
  displayName: string;
  body: string;
  sentAt: string;
}

/** Typed events of the room `stream:<id>`. */
export interface StreamEvents {
  'chat.message': LiveChatMessage;
  'chat.message_deleted': { messageId: string; by: string };
  'stream.status': { status: 'live' | 'ended'; startedAt?: string; endedAt?: string; reason?: string };
  /** The live playlist is on the object store: start the player. */
  'stream.playable': { hlsUrl: string; mediaOriginAt: string };
  'stream.pin': StreamPin;
  'stream.unpin': { pinId: string; mediaTimeMs: number | null; unpinnedAt: string };
  'flash.sale': { sale: FlashSale; mediaTimeMs: number | null };
  'flash.stock': { saleId: string; remaining: number };
  'stream.viewers': { current: number; peak: number; unique: number };
  'stream.likes': { total: number };
}

export class LiveRoom {
  readonly room: string;

  constructor(
    private readonly realtime: RealtimeClient,
    readonly streamId: string,
  ) {
    this.room = `stream:${streamId}`;
  }

  /** Joins the room (again after every reconnect, missing nothing). */
  join(): Promise<unknown> {
    return this.realtime.join(this.room);
  }

  leave(): Promise<void> {
    return this.realtime.leave(this.room);
  }

  on<E extends keyof StreamEvents>(
    event: E,
    handler: (data: StreamEvents[E], raw: RoomEvent) => void,
  ): () => void {
    return this.realtime.on(event, (raw) => {
      if (raw.room === this.room) handler(raw.data as StreamEvents[E], raw);
    });
  }

  /** Sends a chat message (signed-in viewers). Errors: `CHAT_MUTED`, `CHAT_SLOW_MODE`, `CHAT_BANNED`, … */
  send(body: string): Promise<{ id: string; seq: number }> {
    return this.realtime.request('live.chat.send', { streamId: this.streamId, body });
  }

  /** Adds likes (batch taps: send the count every half second or so, not one message per tap). */
  like(count = 1): Promise<{ total: number }> {
    return this.realtime.request('live.like', { streamId: this.streamId, count });
  }

  /** Reports seconds played and how playback went (feed it `LivePlayer`'s `watched` events) for the stream's analytics. */
  reportWatch(seconds: number, quality?: PlaybackQuality): Promise<{ recorded: boolean }> {
    return this.realtime.request('live.watch', {
      streamId: this.streamId,
      seconds: Math.min(60, seconds),
      ...(quality ? { quality } : {}),
    });
  }

  deleteMessage(messageId: string): Promise<unknown> {
    return this.realtime.request('live.chat.delete', { streamId: this.streamId, messageId });
  }

  mute(userId: string, seconds: number): Promise<{ until: string }> {
    return this.realtime.request('live.mute', { streamId: this.streamId, userId, seconds });
  }

  ban(userId: string): Promise<unknown> {
    return this.realtime.request('live.ban', { streamId: this.streamId, userId });
  }

  slowMode(seconds: number): Promise<unknown> {
    return this.realtime.request('live.slow_mode', { streamId: this.streamId, seconds });
  }
}
