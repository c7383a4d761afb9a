/**
 * Presence across instances: which users are online, when each was last
 * seen, and who is in which presence-enabled room.
 *
 * Model. Each instance holds an entry per local user (and per local user in a
 * presence room) in the Engine, scored by an expiry on the engine clock and
 * refreshed every heartbeat. A user is online while any instance's entry is
 * live, so two tabs on two instances keep the user online until both close.
 * When an instance dies nobody refreshes its entries; every instance runs a
 * sweeper over two small due-indexes (`gw:userdue`, `gw:occdue`) and expires
 * what has lapsed. Transitions (online/offline, joined/left a room) are
 * decided inside atomic scripts, so exactly one instance reports each one even
 * when several sweep at once.
 *
 * Bound: a crashed instance's users go offline at most `ttlMs` after its last
 * refresh plus one sweep interval (`sweepIntervalMs`, half a heartbeat by
 * default) plus one engine round trip.
 *
 * Keys and scripts: see gateway-scripts.ts.
 */
import type { Engine } from '../src/platform/engine/engine.js';
import {
  occupancyScript,
  occupantsScript,
  ROOM_DUE_KEY,
  roomKeys,
  USER_DUE_KEY,
  userKeys,
  userPresenceScript,
  userStatusScript,
} from './gateway-scripts.js';

/** A user came online or went offline (reported once, by the instance that saw it). */
export interface PresenceChange {
  userId: string;
  online: boolean;
  /** Engine time of the change in ms. */
  at: number;
}

/** One user's presence as answered to `presence` requests. */
export interface UserPresence {
  userId: string;
  online: boolean;
  /** Last time the user was seen connected (ms since the epoch), null if never. */
  lastSeen: number | null;
}

export interface PresenceLogger {
  warn(obj: object, msg: string): void;
}

export interface PresenceOptions {
  engine: Engine;
  /** Unique per gateway instance; part of every entry this instance owns. */
  instanceId: string;
  /** Entry lifetime without refresh, ms. Must exceed the refresh interval comfortably. */
  ttlMs: number;
  /** How often to look for lapsed entries, ms. */
  sweepIntervalMs: number;
  /** How long `last seen` is kept after a user's last connection. Default 30 days. */
  seenTtlMs?: number;
  logger?: PresenceLogger;
  /** A user's first connection anywhere, or last connection gone. */
  onUserChange?: (change: PresenceChange) => void;
  /** Users whose first presence in `room` (on any instance) began, or whose last ended. */
  onRoomChange?: (room: string, joined: string[], left: string[]) => void;
}

const SWEEP_BATCH = 1000;
const MAX_OCCUPANTS = 1000;

export class Presence {
  private readonly engine: Engine;
  private readonly instanceId: string;
  private readonly ttlMs: number;
  private readonly seenTtlMs: number;
  private readonly sweepIntervalMs: number;
  private readonly logger: PresenceLogger | undefined;
  private readonly onUserChange: PresenceOptions['onUserChange'];
  private readonly onRoomChange: PresenceOptions['onRoomChange'];
  /** Local connections and display name per signed-in user. */
  private readonly users = new Map<string, { conns: number; name: string | undefined }>();
  /** Local connections per user per presence room. */
  private readonly rooms = new Map<string, Map<string, number>>();
  private sweepTimer: NodeJS.Timeout | undefined;
  private refreshing = false;
  private sweeping = false;
  private closed = false;

  constructor(options: PresenceOptions) {
    if (options.instanceId.includes('|')) throw new RangeError('instanceId must not contain |');
    this.engine = options.engine;
    this.instanceId = options.instanceId;
    this.ttlMs = options.ttlMs;
    this.seenTtlMs = options.seenTtlMs ?? 30 * 24 * 3600_000;
    this.sweepIntervalMs = options.sweepIntervalMs;
    this.logger = options.logger;
    this.onUserChange = options.onUserChange;
    this.onRoomChange = options.onRoomChange;
  }

  /** Starts the sweeper. */
  start(): void {
    if (this.sweepTimer || this.closed) return;
    this.sweepTimer = setInterval(() => void this.sweep(), this.sweepIntervalMs);
    this.sweepTimer.unref();
  }

  /** A local connection of `userId` opened. */
  connect(userId: string, name?: string): void {
    const entry = this.users.get(userId);
    if (entry) {
      entry.conns++;
      entry.name = name ?? entry.name;
      return;
    }
    this.users.set(userId, { conns: 1, name });
    void this.updateUser(userId, 'up');
  }

  /** A local connection of `userId` closed. */
  disconnect(userId: string): void {
    const entry = this.users.get(userId);
    if (!entry) return;
    if (--entry.conns > 0) return;
    this.users.delete(userId);
    void this.updateUser(userId, 'down');
  }

  /** Display name of a user connected here, if known. */
  nameOf(userId: string): string | undefined {
    return this.users.get(userId)?.name;
  }

  /** A local connection of `userId` joined a presence room. */
  enter(room: string, userId: string): void {
    let counts = this.rooms.get(room);
    if (!counts) {
      counts = new Map();
      this.rooms.set(room, counts);
    }
    const n = counts.get(userId) ?? 0;
    counts.set(userId, n + 1);
    if (n === 0) void this.updateRoom(room, [userId], []);
  }

  /** A local connection of `userId` left a presence room (or closed). */
  exit(room: string, userId: string): void {
    const counts = this.rooms.get(room);
    const n = counts?.get(userId) ?? 0;
    if (!counts || n === 0) return;
    if (n > 1) {
      counts.set(userId, n - 1);
      return;
    }
    counts.delete(userId);
    if (counts.size === 0) this.rooms.delete(room);
    void this.updateRoom(room, [], [userId]);
  }

  /** Re-arms every local entry; call once per heartbeat. */
  async refresh(): Promise<void> {
    if (this.refreshing || this.closed) return;
    this.refreshing = true;
    try {
      const userIds = [...this.users.keys()];
      const rooms = [...this.rooms.entries()].map(([room, counts]) => [room, [...counts.keys()]] as const);
      const [userDue, roomDue] = await Promise.all([
        Promise.all(userIds.map((id) => this.updateUser(id, 'up', false))),
        Promise.all(rooms.map(([room, ids]) => this.updateRoom(room, [...ids], [], false))),
      ]);
      const userEntries = userIds.flatMap((id, i) => (userDue[i]! > 0 ? [[userDue[i]!, id] as const] : []));
      const roomEntries = rooms.flatMap(([room], i) =>
        roomDue[i]! > 0 ? [[roomDue[i]!, room] as const] : [],
      );
      await Promise.all([
        userEntries.length > 0 ? this.engine.zAdd(USER_DUE_KEY, userEntries) : undefined,
        roomEntries.length > 0 ? this.engine.zAdd(ROOM_DUE_KEY, roomEntries) : undefined,
      ]);
    } catch (err) {
      if (!this.closed) this.logger?.warn({ err }, 'presence refresh failed');
    } finally {
      this.refreshing = false;
    }
  }

  /** Expires lapsed entries of any instance; reports the transitions this call decided. */
  async sweep(): Promise<void> {
    if (this.sweeping || this.closed) return;
    this.sweeping = true;
    try {
      await Promise.all([
        this.sweepIndex(USER_DUE_KEY, (userId) => this.updateUser(userId, 'expire', false)),
        this.sweepIndex(ROOM_DUE_KEY, (room) => this.updateRoom(room, [], [], false)),
      ]);
    } catch (err) {
      if (!this.closed) this.logger?.warn({ err }, 'presence sweep failed');
    } finally {
      this.sweeping = false;
    }
  }

  /**
   * Handles due members of an index: `expire` returns the member's latest
   * remaining expiry (0 when nothing is left). Members with nothing left are
   * removed; the others are re-filed under their real expiry. Racing a
   * refresh that re-files a member is harmless: the member's owner files it
   * again on its next refresh.
   */
  private async sweepIndex(key: string, expire: (member: string) => Promise<number>): Promise<void> {
    const due = await this.engine.zRangeByScore(key, Number.NEGATIVE_INFINITY, Date.now(), SWEEP_BATCH);
    if (due.length === 0) return;
    const left = await Promise.all(due.map((d) => expire(d.member)));
    const gone = due.filter((_, i) => left[i] === 0).map((d) => d.member);
    const alive = due.flatMap((d, i) => (left[i]! > 0 ? [[left[i]!, d.member] as const] : []));
    await Promise.all([
      gone.length > 0 ? this.engine.zRem(key, ...gone) : undefined,
      alive.length > 0 ? this.engine.zAdd(key, alive) : undefined,
    ]);
  }

  /** Runs one user step and reports its transition; resolves with the latest expiry (0 on failure). */
  private async updateUser(userId: string, mode: 'up' | 'down' | 'expire', file = true): Promise<number> {
    const keys = userKeys(userId);
    try {
      const [transition, maxExpiry, at] = await this.engine.run(
        userPresenceScript,
        [keys.instances, keys.online, keys.seen],
        [mode, this.instanceId, this.ttlMs, this.seenTtlMs],
      );
      if (transition !== 0) this.onUserChange?.({ userId, online: transition === 1, at });
      if (file && maxExpiry > 0) await this.engine.zAdd(USER_DUE_KEY, [[maxExpiry, userId]]);
      return maxExpiry;
    } catch (err) {
      if (!this.closed) this.logger?.warn({ err, userId, mode }, 'presence update failed');
      return 0;
    }
  }

  /** Runs one occupancy step and reports joins and leaves; resolves with the latest expiry. */
  private async updateRoom(room: string, add: string[], remove: string[], file = true): Promise<number> {
    const keys = roomKeys(room);
    try {
      const out = await this.engine.run(
        occupancyScript,
        [keys.occupancy, keys.occupancyCounts],
        [this.instanceId, this.ttlMs, add.length, ...add, ...remove],
      );
      const maxExpiry = Number(out[0]);
      const nJoined = Number(out[1]);
      const joined = out.slice(2, 2 + nJoined).map(String);
      const left = out.slice(2 + nJoined).map(String);
      if (joined.length > 0 || left.length > 0) this.onRoomChange?.(room, joined, left);
      if (file && maxExpiry > 0) await this.engine.zAdd(ROOM_DUE_KEY, [[maxExpiry, room]]);
      return maxExpiry;
    } catch (err) {
      if (!this.closed) this.logger?.warn({ err, room }, 'room presence update failed');
      return 0;
    }
  }

  /** Online state and last-seen time of each user, in the given order. */
  async status(userIds: readonly string[]): Promise<UserPresence[]> {
    return Promise.all(
      userIds.map(async (userId) => {
        const keys = userKeys(userId);
        const [online, seen, now] = await this.engine.run(userStatusScript, [keys.instances, keys.seen], []);
        return {
          userId,
          online: online === 1,
          lastSeen: online === 1 ? now : seen > 0 ? seen : null,
        };
      }),
    );
  }

  /** Users currently present in a presence room (any instance), at most `limit`. */
  async occupants(room: string, limit = 200): Promise<string[]> {
    const members = await this.engine.run(
      occupantsScript,
      [roomKeys(room).occupancy],
      [Math.min(limit * 4, MAX_OCCUPANTS)],
    );
    const users = new Set<string>();
    for (const m of members) {
      users.add(m.slice(0, m.lastIndexOf('|')));
      if (users.size >= limit) break;
    }
    return [...users];
  }

  /** Local users and presence rooms (for stats and tests). */
  get localCounts(): { users: number; rooms: number } {
    return { users: this.users.size, rooms: this.rooms.size };
  }

  /**
   * Removes this instance's entries (graceful shutdown: its users go offline
   * now rather than after the TTL) and stops the sweeper.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.sweepTimer = undefined;
    const rooms = [...this.rooms.entries()];
    const users = [...this.users.keys()];
    this.rooms.clear();
    this.users.clear();
    await Promise.all([
      ...rooms.map(([room, counts]) => this.updateRoom(room, [], [...counts.keys()], false)),
      ...users.map((id) => this.updateUser(id, 'down', false)),
    ]);
    this.closed = true;
  }
}
