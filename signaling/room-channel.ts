/**
 * One room on one instance: its bus subscription, the local members, and the
 * ordering and recovery rules that keep every member's view of the room's
 * sequence gap-free and strictly increasing.
 *
 * Sequencing. A publication is appended to the room's history log in the
 * Engine first, which assigns its seq, and then published on the room's bus
 * channel as `<seq>:<body>`. Publishers on different instances race between
 * those two steps, so the bus may deliver 7 before 6, and a publisher that
 * dies in between never publishes at all. The channel therefore tracks
 * `head`, the highest seq it has delivered with nothing missing below:
 * - seq <= head: a duplicate (already delivered, e.g. fetched from the log): dropped;
 * - seq == head + 1: delivered, then any buffered successors;
 * - seq > head + 1: buffered; if the gap is still open after `gapWaitMs`, the
 *   missing range is read from the log (every seq below a published one is
 *   in the log, because the log assigned them in order).
 * If the log no longer holds the missing range (trimmed), members get a
 * `reset` frame with the new position instead of a silent skip.
 *
 * Start. `head` starts at the log's lastSeq read *after* the subscription is
 * active, so every later append is seen on the bus; messages arriving in
 * between are buffered and reconciled.
 *
 * Keep-alive. While the channel exists it re-arms the history's TTL
 * (roomTouchScript), so a quiet room with connected clients never restarts
 * its numbering; the same call reveals a lost tail (lastSeq > head with
 * nothing buffered: fetch it) or a wiped Engine (lastSeq < head: `reset`
 * with reason `restarted`).
 *
 * Recovery. A member joining with `lastSeq` is added not-live with its cursor
 * at lastSeq, is sent the log after its cursor in batches, and turns live in
 * the same synchronous step that finds its cursor caught up with `head`;
 * live delivery only sends a member seqs above its cursor, so the
 * replay/live boundary has neither gaps nor duplicates.
 */
import type { Engine } from '../src/platform/engine/engine.js';
import type { Connection } from './connection.js';
import { PreparedFrame } from './connection.js';
import { roomKeys, roomTouchScript } from './gateway-scripts.js';
import { eventFrame, resetFrame } from './protocol.js';

/** A connection's membership in one room. */
export interface RoomMember {
  readonly conn: Connection;
  readonly channel: RoomChannel;
  /** Highest seq this member has been sent (or told to skip to). */
  cursor: number;
  /** Receives live events; false while its recovery replay runs. */
  live: boolean;
  /** Left or disconnected. */
  gone: boolean;
}

export interface RoomChannelOptions {
  engine: Engine;
  historyTtlMs: number;
  gapWaitMs: number;
  replayBatch: number;
  logger?: { warn(obj: object, msg: string): void };
  /** Waits until the connection has room in its outbound buffer (replays). */
  waitWritable(conn: Connection): Promise<void>;
}

export interface RecoveryResult {
  recovered: boolean;
  /** The member's position once live. */
  lastSeq: number;
  replayed: number;
  reason?: 'gap_too_old';
}

/** Buffered out-of-order publications kept per room before relying on the log alone. */
const MAX_PENDING = 10_000;
/** Log reads per recovery before giving up on catching a room that outruns the reader. */
const MAX_REPLAY_ROUNDS = 1000;

export class RoomChannel {
  readonly json: string;
  readonly keys: ReturnType<typeof roomKeys>;
  readonly members = new Set<RoomMember>();
  /** Highest contiguous seq delivered on this instance. */
  head = 0;
  state: 'init' | 'ready' | 'closed' = 'init';
  /** Joins in progress that hold the channel open. */
  holds = 0;
  lingerTimer: NodeJS.Timeout | undefined;
  touchedAt = 0;
  ready: Promise<void> = Promise.resolve();
  private readonly pending = new Map<number, string>();
  private gapTimer: NodeJS.Timeout | undefined;
  private filling = false;
  /** A seq the log is known to have reached (from a touch), to fill up to. */
  private fillTarget = 0;
  private unsubscribe: (() => Promise<void>) | undefined;

  constructor(
    readonly name: string,
    private readonly options: RoomChannelOptions,
  ) {
    this.json = JSON.stringify(name);
    this.keys = roomKeys(name);
  }

  /** Subscribes and learns the current head; `ready` settles when done. */
  start(): Promise<void> {
    this.ready = (async () => {
      const unsubscribe = await this.options.engine.subscribe(this.keys.channel, (message) =>
        this.onBusMessage(message),
      );
      if (this.isClosed()) {
        await unsubscribe();
        throw new Error('room channel closed while starting');
      }
      this.unsubscribe = unsubscribe;
      const last = await this.touchNow();
      if (this.isClosed()) throw new Error('room channel closed while starting');
      this.head = last;
      this.state = 'ready';
      this.drain();
    })();
    return this.ready;
  }

  private async touchNow(): Promise<number> {
    this.touchedAt = Date.now();
    return this.options.engine.run(roomTouchScript, this.keys.historyKeys, [this.options.historyTtlMs]);
  }

  /** Re-arms the history TTL when due and checks the log against `head`. */
  async touch(now: number, everyMs: number): Promise<void> {
    if (this.state !== 'ready' || now - this.touchedAt < everyMs) return;
    try {
      const last = await this.touchNow();
      if (this.state !== 'ready') return;
      if (last < this.head) {
        // The Engine lost the history (flushed, failed over): numbering restarted.
        this.skipTo(0, 'restarted');
        this.fillTarget = Math.max(this.fillTarget, last);
        void this.fillGap();
      } else if (last > this.head && this.pending.size === 0) {
        // A publication whose bus message never arrived, with nothing after it to reveal the gap.
        this.fillTarget = Math.max(this.fillTarget, last);
        void this.fillGap();
      }
    } catch (err) {
      this.options.logger?.warn({ err, room: this.name }, 'room history touch failed');
    }
  }

  /** A bus message `<seq>:<body>`; seq 0 marks an ephemeral event (no history, no seq). */
  private onBusMessage(message: string): void {
    const colon = message.indexOf(':');
    const seq = Number(message.slice(0, colon));
    const body = message.slice(colon + 1);
    if (!Number.isSafeInteger(seq) || seq < 0) return;
    if (seq === 0) this.deliverEphemeral(body);
    else this.receive(seq, body);
  }

  /** Takes a sequenced publication from the bus or from a local publisher. */
  receive(seq: number, body: string): void {
    if (this.state === 'closed') return;
    if (this.state === 'init') {
      if (this.pending.size < MAX_PENDING) this.pending.set(seq, body);
      return;
    }
    if (seq <= this.head) return;
    if (seq === this.head + 1) {
      this.head = seq;
      this.deliver(seq, body);
      this.drain();
      return;
    }
    if (this.pending.size < MAX_PENDING) this.pending.set(seq, body);
    this.scheduleGapFill();
  }

  /** Delivers buffered successors of `head`, drops stale entries, and arms the gap timer if a gap remains. */
  private drain(): void {
    for (
      let body = this.pending.get(this.head + 1);
      body !== undefined;
      body = this.pending.get(this.head + 1)
    ) {
      this.pending.delete(this.head + 1);
      this.head++;
      this.deliver(this.head, body);
    }
    for (const seq of this.pending.keys()) if (seq <= this.head) this.pending.delete(seq);
    if (this.pending.size > 0) this.scheduleGapFill();
    else if (this.gapTimer) {
      clearTimeout(this.gapTimer);
      this.gapTimer = undefined;
    }
  }

  private scheduleGapFill(): void {
    if (this.gapTimer || this.filling || this.state !== 'ready') return;
    this.gapTimer = setTimeout(() => {
      this.gapTimer = undefined;
      void this.fillGap();
    }, this.options.gapWaitMs);
    this.gapTimer.unref();
  }

  /** Reads the missing range from the log and delivers it in order. */
  private async fillGap(): Promise<void> {
    if (this.filling || this.state !== 'ready') return;
    this.filling = true;
    try {
      for (let round = 0; round < MAX_REPLAY_ROUNDS; round++) {
        let target = this.fillTarget;
        for (const seq of this.pending.keys()) if (seq > target) target = seq;
        if (target <= this.head) break;
        const limit = Math.min(target - this.head, this.options.replayBatch * 5);
        const r = await this.options.engine.logRead(this.keys.history, this.head, limit);
        if (this.state !== 'ready') return;
        if (r.lastSeq < this.head) {
          this.skipTo(0, 'restarted');
          continue;
        }
        const first = r.entries[0];
        if (r.truncated && (!first || first.seq > this.head + 1)) {
          // The range is gone from the log: tell members where they are now.
          this.skipTo(first ? first.seq - 1 : r.lastSeq, 'gap_too_old');
        }
        for (const entry of r.entries) {
          if (entry.seq !== this.head + 1) continue;
          this.head = entry.seq;
          this.pending.delete(entry.seq);
          this.deliver(entry.seq, entry.data);
        }
        this.drain();
        if (r.entries.length === 0) break;
      }
    } catch (err) {
      this.options.logger?.warn({ err, room: this.name }, 'room gap fill failed');
    } finally {
      this.filling = false;
      if (this.fillTarget <= this.head) this.fillTarget = 0;
    }
    if (this.pending.size > 0 && this.state === 'ready') this.scheduleGapFill();
  }

  /** Moves everyone to `seq` without events (history lost or restarted) and says so. */
  private skipTo(seq: number, reason: 'gap_too_old' | 'restarted'): void {
    this.head = seq;
    for (const s of this.pending.keys()) if (s <= seq) this.pending.delete(s);
    if (reason === 'restarted') this.pending.clear();
    const frame = new PreparedFrame(resetFrame(this.name, seq, reason));
    for (const member of this.members) {
      member.cursor = seq;
      member.conn.sendPrepared(frame);
    }
  }

  private deliver(seq: number, body: string): void {
    let frame: PreparedFrame | undefined;
    for (const member of this.members) {
      if (!member.live || seq <= member.cursor) continue;
      member.cursor = seq;
      frame ??= new PreparedFrame(eventFrame(this.json, seq, body));
      member.conn.sendPrepared(frame);
    }
  }

  private deliverEphemeral(body: string): void {
    if (this.state !== 'ready') return;
    let frame: PreparedFrame | undefined;
    for (const member of this.members) {
      if (!member.live) continue;
      frame ??= new PreparedFrame(eventFrame(this.json, 0, body));
      member.conn.sendPrepared(frame);
    }
  }

  /** Adds a member that starts live at the current head. Call only when ready. */
  addLive(conn: Connection): RoomMember {
    const member: RoomMember = { conn, channel: this, cursor: this.head, live: true, gone: false };
    this.members.add(member);
    return member;
  }

  /**
   * Adds a member positioned after `lastSeq`, replays what it missed and turns
   * it live. `onLive` runs synchronously at the moment the member turns live,
   * before any live event can reach it, so the join reply precedes them.
   * Resolves with null when the member left or the channel closed meanwhile.
   */
  async recover(
    conn: Connection,
    lastSeq: number,
    onAdded: (member: RoomMember) => void,
    onLive: (result: RecoveryResult) => void,
  ): Promise<RecoveryResult | null> {
    const member: RoomMember = { conn, channel: this, cursor: lastSeq, live: false, gone: false };
    this.members.add(member);
    onAdded(member);
    const batch = this.options.replayBatch;
    let replayed = 0;
    let restarted = false;
    for (let round = 0; round < MAX_REPLAY_ROUNDS; round++) {
      const r = await this.options.engine.logRead(this.keys.history, member.cursor, batch);
      if (member.gone || this.state !== 'ready' || conn.closing) return null;
      const first = r.entries[0];
      const contiguous = first ? first.seq === member.cursor + 1 : !r.truncated;
      if (!contiguous) {
        // lastSeq below the cursor: the history restarted since the client's last visit.
        restarted = r.lastSeq < member.cursor;
        break;
      }
      for (const entry of r.entries) {
        if (entry.seq <= member.cursor) continue;
        member.cursor = entry.seq;
        replayed++;
        conn.sendText(eventFrame(this.json, entry.seq, entry.data));
      }
      if (r.entries.length < batch && member.cursor >= this.head) {
        member.live = true;
        const result: RecoveryResult = { recovered: true, lastSeq: member.cursor, replayed };
        onLive(result);
        return result;
      }
      await this.options.waitWritable(conn);
      if (member.gone || this.state !== 'ready' || conn.closing) return null;
    }
    // What the client missed is no longer in the log: it continues from head and reloads history.
    member.cursor = restarted ? this.head : Math.max(member.cursor, this.head);
    member.live = true;
    const result: RecoveryResult = {
      recovered: false,
      reason: 'gap_too_old',
      lastSeq: member.cursor,
      replayed,
    };
    onLive(result);
    return result;
  }

  removeMember(member: RoomMember): void {
    member.gone = true;
    this.members.delete(member);
  }

  /** A method rather than a field test so TypeScript does not narrow it across awaits. */
  isClosed(): boolean {
    return this.state === 'closed';
  }

  /** Number of members plus joins in progress. */
  get refs(): number {
    return this.members.size + this.holds;
  }

  async close(): Promise<void> {
    if (this.state === 'closed') return;
    this.state = 'closed';
    if (this.gapTimer) clearTimeout(this.gapTimer);
    if (this.lingerTimer) clearTimeout(this.lingerTimer);
    this.gapTimer = undefined;
    this.lingerTimer = undefined;
    this.pending.clear();
    const unsubscribe = this.unsubscribe;
    this.unsubscribe = undefined;
    await unsubscribe?.();
  }
}
