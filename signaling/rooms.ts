/**
 * Room names and who may do what in a room.
 *
 * A room is `<type>:<id>`: `stream:<id>` (live chat and events), `conv:<id>`
 * (chat conversation), `call:<id>` (call signaling), `user:<id>` (personal
 * notifications). Each type has a `RoomAuthorizer`; the domain module that
 * owns a type registers its own (`gateway.rooms.register('conv', ...)`), and
 * until it does the defaults below apply: `user:` only for that user,
 * `stream:` open to everyone (anonymous included) for reading and to signed-in
 * users for publishing, `conv:` and `call:` closed.
 */
import type { AuthUser } from '../src/auth/permissions.js';

export type RoomAction = 'join' | 'publish';

/** A parsed, syntactically valid room name. */
export interface RoomName {
  /** The full name, e.g. `stream:42`. */
  readonly name: string;
  /** The part before the first colon, e.g. `stream`. */
  readonly type: string;
  /** The part after it, e.g. `42`. */
  readonly id: string;
}

/**
 * Decides whether `user` (null for an anonymous connection) may `join` a
 * room (receive its events) or `publish` to it (domain handlers ask before
 * acting for a client). May be synchronous.
 */
export interface RoomAuthorizer {
  authorize(user: AuthUser | null, room: RoomName, action: RoomAction): boolean | Promise<boolean>;
}

/** Per-type behaviour besides authorization. */
export interface RoomTypeOptions {
  /**
   * Track who is in rooms of this type across instances and publish
   * `presence.join` / `presence.leave` events to them. Off for big public
   * rooms (a join event per viewer of a stream would drown its chat).
   */
  presence?: boolean;
  /**
   * The users who belong to a room whether connected or not (a
   * conversation's members, from the Db). When given, a `presence {room}`
   * request answers with these users' status; otherwise with the users
   * currently joined.
   */
  members?: (room: RoomName) => Promise<string[]>;
}

export interface RoomType extends Required<Pick<RoomTypeOptions, 'presence'>> {
  authorizer: RoomAuthorizer;
  members?: RoomTypeOptions['members'];
}

const ROOM_ID = /^[A-Za-z0-9._-]{1,128}$/;
const ROOM_TYPE = /^[a-z][a-z0-9-]{0,30}$/;

/** Splits a room name; null when it is not `<type>:<id>` with allowed characters. */
export function parseRoomName(name: string): RoomName | null {
  const colon = name.indexOf(':');
  if (colon <= 0) return null;
  const type = name.slice(0, colon);
  const id = name.slice(colon + 1);
  if (!ROOM_TYPE.test(type) || !ROOM_ID.test(id)) return null;
  return { name, type, id };
}

/** Allows everything for `join`; `publish` needs a signed-in user. */
export const publicRoom: RoomAuthorizer = {
  authorize: (user, _room, action) => action === 'join' || user !== null,
};

/** Only the user whose id is the room id. */
export const personalRoom: RoomAuthorizer = {
  authorize: (user, room) => user !== null && user.id === room.id,
};

/** Denies everything: the type exists but its module has not said who may use it. */
export const closedRoom: RoomAuthorizer = {
  authorize: () => false,
};

/** The room types of one gateway and their authorizers. */
export class RoomRegistry {
  private readonly types = new Map<string, RoomType>();

  constructor() {
    this.register('stream', publicRoom, { presence: false });
    this.register('user', personalRoom, { presence: false });
    this.register('conv', closedRoom, { presence: true });
    this.register('call', closedRoom, { presence: true });
  }

  /**
   * Sets the authorizer (and options) of a room type, replacing the previous
   * one; new types may be added. Options not given keep their previous value.
   */
  register(type: string, authorizer: RoomAuthorizer, options: RoomTypeOptions = {}): void {
    if (!ROOM_TYPE.test(type)) throw new RangeError(`invalid room type ${JSON.stringify(type)}`);
    const previous = this.types.get(type);
    this.types.set(type, {
      authorizer,
      presence: options.presence ?? previous?.presence ?? false,
      members: options.members ?? previous?.members,
    });
  }

  /** The registered type of a valid room name, or null (unknown type or malformed name). */
  resolve(name: string): { room: RoomName; type: RoomType } | null {
    const room = parseRoomName(name);
    if (!room) return null;
    const type = this.types.get(room.type);
    return type ? { room, type } : null;
  }

  /** Whether `user` may perform `action` in `name`; false for unknown or malformed rooms. */
  async authorize(user: AuthUser | null, name: string, action: RoomAction): Promise<boolean> {
    const resolved = this.resolve(name);
    if (!resolved) return false;
    return resolved.type.authorizer.authorize(user, resolved.room, action);
  }
}
