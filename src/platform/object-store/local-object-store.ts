/**
 * LocalObjectStore: the embedded ObjectStore, a plain directory tree
 * (`<rootDir>/<key>`), served by this server at /media.
 *
 * Layout
 *   <rootDir>/live/12/seg-1.ts                 object data, at its key's path
 *   <rootDir>/.~meta/live/12/seg-1.ts~meta.json  sidecar: content type, cache
 *                                              control, size, inode
 *   <dir>/.<name>~<random>.tmp                 a write in progress
 *
 * A put whose metadata is the key's default (the extension's content type,
 * `defaultCacheControl`) has no sidecar; readers that find none use the defaults.
 *
 * Every name the store invents contains `~`, which no key segment may
 * contain, so temp files and the metadata tree can never collide with an
 * object and `list` hides them by that one rule.
 *
 * Atomicity: data is written to a temp file in the target directory,
 * fsynced, then renamed over the key's path, so a reader (this class, or
 * anything reading the directory) sees the old bytes or the new bytes, never
 * a prefix. The sidecar is written (in place) just before the data is
 * renamed. It records the data file's inode (rename keeps inodes), so a
 * reader that catches the short window between the two notices that the
 * sidecar belongs to another version (or is half-written) and retries; the
 * sidecar write and the rename of one key are serialized in-process so
 * sidecar and data always end up from the same put. A put without a sidecar
 * renames first and then removes the previous version's sidecar, so the
 * window shows the new data with a sidecar that does not match (a retry),
 * never the old data without its own.
 *
 * Limits (plain files, unlike S3): a key cannot be both an object and a
 * "directory" of others (`a` and `a/b`): such a put fails with CONFLICT. On
 * case-insensitive filesystems keys differing only in case collide.
 */
import { randomBytes } from 'node:crypto';
import type { BigIntStats, Dirent } from 'node:fs';
import {
  type FileHandle,
  lstat,
  mkdir,
  open,
  readdir,
  readFile,
  rename,
  rm,
  rmdir,
  unlink,
} from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { AppError } from '../errors.js';
import {
  assertValidKey,
  assertValidPrefix,
  checkRange,
  contentTypeForKey,
  isValidKey,
  normalizeListLimit,
} from './object-key.js';
import type {
  ListPage,
  ObjectBody,
  ObjectInfo,
  ObjectStore,
  PutOptions,
  StoredObject,
} from './object-store.js';

export interface LocalObjectStoreOptions {
  /** Directory holding the objects (e.g. `DATA_DIR/objects`); created on first write or `check()`. */
  rootDir: string;
  /**
   * Base URL at which the HTTP server serves `rootDir`, without a trailing
   * slash, e.g. `http://localhost:8080/media`; `publicUrl(key)` is `<base>/<key>`.
   */
  publicBaseUrl: string;
  /**
   * fsync each object before it becomes visible, so a crash or power loss
   * cannot leave a renamed-but-empty file. Default true; tests and throw-away
   * stores may turn it off for speed.
   */
  fsync?: boolean;
  /**
   * The Cache-Control of a key when its put does not say otherwise. A put
   * whose metadata is the key's default (this, and the content type of its
   * extension) is stored without a sidecar: one file fewer per live segment.
   * Default: none.
   */
  defaultCacheControl?: (key: string) => string | undefined;
}

/** Directory of metadata sidecars, under rootDir. Contains `~`, so it is never a key. */
const META_DIR = '.~meta';
const META_SUFFIX = '~meta.json';
/** How often a reader retries when the sidecar and the data come from different puts. */
const CONSISTENT_READ_ATTEMPTS = 5;

interface Sidecar {
  v: 1;
  /** Inode of the data file this sidecar describes (a string: inodes can exceed 2^53). */
  ino: string;
  size: number;
  contentType: string;
  cacheControl?: string;
}

function errCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string'
    ? err.code
    : undefined;
}

function parseSidecar(text: string): Sidecar | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof value !== 'object' || value === null) return null;
  const v = value as Record<string, unknown>;
  if (
    v.v !== 1 ||
    typeof v.ino !== 'string' ||
    typeof v.size !== 'number' ||
    typeof v.contentType !== 'string' ||
    (v.cacheControl !== undefined && typeof v.cacheControl !== 'string')
  ) {
    return null;
  }
  return {
    v: 1,
    ino: v.ino,
    size: v.size,
    contentType: v.contentType,
    ...(typeof v.cacheControl === 'string' ? { cacheControl: v.cacheControl } : {}),
  };
}

/**
 * The ETag of a stored file: its inode, size and modification time, as web
 * servers derive theirs. Every put writes a new file (a new inode, a new
 * mtime), so it changes whenever the object does; unlike S3's single-part
 * ETag it is not the MD5 of the bytes, which cost more CPU than the rest of
 * a put (a live stream stores a segment a second).
 */
function fileEtag(st: BigIntStats): string {
  return `${st.ino.toString(36)}-${st.size.toString(36)}-${st.mtimeNs.toString(36)}`;
}

function toChunk(chunk: unknown): Uint8Array {
  if (chunk instanceof Uint8Array) return chunk; // Buffer included
  if (typeof chunk === 'string') return Buffer.from(chunk);
  throw new TypeError('object body streams must yield Buffer, Uint8Array or string chunks');
}

async function writeAll(fh: FileHandle, data: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < data.length) {
    const { bytesWritten } = await fh.write(data, offset, data.length - offset);
    offset += bytesWritten;
  }
}

function conflict(key: string, err: unknown): AppError {
  return new AppError(
    'CONFLICT',
    `Object key ${JSON.stringify(key)} collides with another object's path in the local store ` +
      `(a key cannot be both an object and a prefix of other objects): ${errCode(err) ?? String(err)}`,
  );
}

export class LocalObjectStore implements ObjectStore {
  readonly kind = 'local' as const;
  private readonly root: string;
  private readonly metaRoot: string;
  private publicBase: string;
  private readonly fsync: boolean;
  private readonly defaultCacheControl: (key: string) => string | undefined;
  /** Tail of the queue of renames/deletes per key (see the class comment). */
  private readonly keyLocks = new Map<string, Promise<void>>();

  constructor(options: LocalObjectStoreOptions) {
    this.root = resolve(options.rootDir);
    this.metaRoot = join(this.root, META_DIR);
    this.publicBase = options.publicBaseUrl.replace(/\/+$/, '');
    this.fsync = options.fsync ?? true;
    this.defaultCacheControl = options.defaultCacheControl ?? (() => undefined);
  }

  private dataPath(key: string): string {
    return join(this.root, ...key.split('/'));
  }

  private sidecarPath(key: string): string {
    return join(this.metaRoot, ...`${key}${META_SUFFIX}`.split('/'));
  }

  /** Runs `fn` after every earlier `fn` of the same key has finished. */
  private async withKeyLock<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.keyLocks.get(key) ?? Promise.resolve();
    const run = previous.then(() => fn());
    const tail = run.then(
      () => undefined,
      () => undefined,
    );
    this.keyLocks.set(key, tail);
    try {
      return await run;
    } finally {
      if (this.keyLocks.get(key) === tail) this.keyLocks.delete(key);
    }
  }

  /**
   * Opens `path` for writing with `flags`, making its directory only when the
   * open finds it missing (most writes go to one that exists: one syscall
   * instead of three), and again when a concurrent delete prunes it in between.
   */
  private async openCreating(path: string, flags: 'wx' | 'w', key: string): Promise<FileHandle> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await open(path, flags, 0o644);
      } catch (err) {
        const code = errCode(err);
        if (code === 'ENOENT' && attempt < 5) {
          await mkdir(dirname(path), { recursive: true }).catch((mkdirErr: unknown) => {
            const mkdirCode = errCode(mkdirErr);
            if (mkdirCode === 'ENOTDIR' || mkdirCode === 'EEXIST') throw conflict(key, mkdirErr);
            throw mkdirErr;
          });
          continue;
        }
        if (code === 'ENOTDIR' || code === 'EEXIST') throw conflict(key, err);
        throw err;
      }
    }
  }

  /** Creates `<dir>/.<name>~<random>.tmp` next to `target` and returns its handle. */
  private async openTemp(target: string, key: string): Promise<{ fh: FileHandle; path: string }> {
    const dir = dirname(target);
    const path = join(dir, `.${target.slice(dir.length + 1)}~${randomBytes(6).toString('hex')}.tmp`);
    return { fh: await this.openCreating(path, 'wx', key), path };
  }

  /** Writes the body to a temp file next to the key's path; returns it with its size and (`withInode`) inode. */
  private async writeTemp(
    key: string,
    body: ObjectBody,
    durable: boolean,
    withInode: boolean,
  ): Promise<{ path: string; size: number; ino: string }> {
    const { fh, path } = await this.openTemp(this.dataPath(key), key);
    let size = 0;
    try {
      const write = async (chunk: Uint8Array) => {
        size += chunk.length;
        await writeAll(fh, chunk);
      };
      if (body instanceof Readable) {
        for await (const chunk of body) await write(toChunk(chunk));
      } else {
        await write(toChunk(body));
      }
      if (this.fsync && durable) await fh.sync();
      const ino = withInode ? (await fh.stat({ bigint: true })).ino.toString() : '';
      await fh.close();
      return { path, size, ino };
    } catch (err) {
      await fh.close().catch(() => undefined);
      await rm(path, { force: true });
      if (body instanceof Readable && !body.destroyed) body.destroy();
      throw err;
    }
  }

  /**
   * Writes the sidecar in place: no temp file and rename, so a key rewritten
   * every second (a live playlist) keeps one sidecar inode instead of churning
   * through new ones. A reader that catches it half-written sees JSON that does
   * not parse or an inode that does not match, and retries like in any other race.
   */
  private async writeSidecar(key: string, sidecar: Sidecar): Promise<void> {
    const fh = await this.openCreating(this.sidecarPath(key), 'w', key);
    try {
      await writeAll(fh, Buffer.from(JSON.stringify(sidecar)));
      // No fsync: a lost sidecar only loses the content type / cache control,
      // and readers detect that by the inode and fall back to defaults.
    } finally {
      await fh.close();
    }
  }

  /** Removes the key's sidecar if it has one: one unlink (most keys have none; rm would stat first). */
  private async removeSidecar(key: string): Promise<void> {
    await unlink(this.sidecarPath(key)).catch((err: unknown) => {
      const code = errCode(err);
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw err;
    });
  }

  /** The key's sidecar; `absent` when there is none, null when it does not parse (half-written, foreign). */
  private async readSidecar(key: string): Promise<Sidecar | 'absent' | null> {
    try {
      return parseSidecar(await readFile(this.sidecarPath(key), 'utf8'));
    } catch (err) {
      const code = errCode(err);
      if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR') return 'absent';
      throw err;
    }
  }

  async put(key: string, body: ObjectBody, options: PutOptions = {}): Promise<void> {
    assertValidKey(key);
    const defaultType = contentTypeForKey(key);
    const contentType = options.contentType ?? defaultType;
    const needsSidecar =
      contentType !== defaultType || options.cacheControl !== this.defaultCacheControl(key);
    // The long part (receiving the body) runs unlocked, so concurrent puts of
    // one key stream in parallel; only the sidecar and the rename are serialized.
    const temp = await this.writeTemp(key, body, options.durable ?? true, needsSidecar);
    try {
      await this.withKeyLock(key, async () => {
        if (!needsSidecar) {
          await this.renameInto(temp.path, key);
          // After the rename: a reader in between sees the old sidecar on the new data (another
          // inode) and retries, rather than the old data without its sidecar.
          await this.removeSidecar(key);
          return;
        }
        await this.writeSidecar(key, {
          v: 1,
          ino: temp.ino,
          size: temp.size,
          contentType,
          ...(options.cacheControl !== undefined ? { cacheControl: options.cacheControl } : {}),
        });
        await this.renameInto(temp.path, key).catch(async (err: unknown) => {
          // The sidecar just written is nobody's.
          await this.removeSidecar(key);
          throw err;
        });
      });
    } catch (err) {
      await rm(temp.path, { force: true });
      throw err;
    }
  }

  /** Puts a temp file in place as `key`; CONFLICT when the key's path is a directory of other objects. */
  private async renameInto(path: string, key: string): Promise<void> {
    try {
      await rename(path, this.dataPath(key));
    } catch (err) {
      throw errCode(err) === 'EISDIR' ? conflict(key, err) : err;
    }
  }

  /**
   * Opens the key's data file and finds its metadata. The returned handle
   * pins that version: a later overwrite or delete does not change what is read.
   */
  private async openObject(key: string): Promise<{ fh: FileHandle; info: ObjectInfo } | null> {
    const path = this.dataPath(key);
    for (let attempt = 1; ; attempt++) {
      let fh: FileHandle;
      try {
        fh = await open(path, 'r');
      } catch (err) {
        const code = errCode(err);
        if (code === 'ENOENT' || code === 'ENOTDIR') return null;
        throw err;
      }
      try {
        const st = await fh.stat({ bigint: true });
        if (!st.isFile()) {
          await fh.close();
          return null; // a "directory" key like `live` when `live/1.ts` exists
        }
        const size = Number(st.size);
        const meta = await this.readSidecar(key);
        const matches =
          typeof meta === 'object' && meta !== null && meta.ino === st.ino.toString() && meta.size === size;
        if (matches || meta === 'absent' || attempt >= CONSISTENT_READ_ATTEMPTS) {
          // Without a sidecar (a put with the defaults, a file put there by hand), or
          // after the retries, the metadata is the key's default rather than another version's.
          const info: ObjectInfo = {
            key,
            size,
            contentType: matches ? meta.contentType : contentTypeForKey(key),
            lastModified: new Date(Number(st.mtimeMs)),
            etag: fileEtag(st),
          };
          const cacheControl = matches ? meta.cacheControl : this.defaultCacheControl(key);
          if (cacheControl !== undefined) info.cacheControl = cacheControl;
          return { fh, info };
        }
        await fh.close();
      } catch (err) {
        await fh.close().catch(() => undefined);
        throw err;
      }
      await sleep(attempt * 2); // a put is between its two renames
    }
  }

  async get(key: string, range?: { start: number; end?: number }): Promise<StoredObject | null> {
    assertValidKey(key);
    if (range) checkRange(range);
    const opened = await this.openObject(key);
    if (!opened) return null;
    const { fh, info } = opened;
    try {
      if (!range) {
        return { ...info, body: fh.createReadStream({ autoClose: true }) };
      }
      const { start, end } = checkRange(range, info.size);
      const last = end ?? info.size - 1;
      return {
        ...info,
        body: fh.createReadStream({ start, end: last, autoClose: true }),
        range: { start, end: last },
      };
    } catch (err) {
      await fh.close();
      throw err;
    }
  }

  async head(key: string): Promise<ObjectInfo | null> {
    assertValidKey(key);
    const opened = await this.openObject(key);
    if (!opened) return null;
    await opened.fh.close();
    return opened.info;
  }

  async deleteMany(keys: readonly string[]): Promise<void> {
    for (const key of keys) assertValidKey(key);
    for (const key of new Set(keys)) {
      await this.withKeyLock(key, async () => {
        const data = this.dataPath(key);
        const st = await lstat(data).catch(() => null);
        if (st && !st.isDirectory()) await rm(data, { force: true });
        await this.removeSidecar(key);
        await this.prune(dirname(data), this.root);
        await this.prune(dirname(this.sidecarPath(key)), this.metaRoot);
      });
    }
  }

  /** Removes empty directories from `dir` up to (not including) `stop`. */
  private async prune(dir: string, stop: string): Promise<void> {
    let current = dir;
    while (current.startsWith(stop + sep)) {
      try {
        await rmdir(current);
      } catch {
        return; // not empty (or already gone, or in use by a put): stop here
      }
      current = dirname(current);
    }
  }

  async list(prefix: string, options: { cursor?: string; limit?: number } = {}): Promise<ListPage> {
    assertValidPrefix(prefix);
    const limit = normalizeListLimit(options.limit);
    const startAfter = options.cursor;
    if (startAfter !== undefined && !isValidKey(startAfter)) {
      throw new AppError('BAD_REQUEST', 'Invalid list cursor');
    }
    // Walk only the deepest directory the prefix names completely.
    const base = prefix.slice(0, prefix.lastIndexOf('/') + 1);
    const items: ListPage['items'] = [];
    for await (const item of this.walk(
      join(this.root, ...base.split('/').filter(Boolean)),
      base,
      prefix,
      startAfter,
    )) {
      items.push(item);
      if (items.length > limit) break; // one extra tells whether a next page exists
    }
    if (items.length > limit) {
      items.length = limit;
      return { items, cursor: items[limit - 1]!.key };
    }
    return { items };
  }

  /**
   * Yields the objects under `dir` in ascending key order. Directories sort as
   * `name/`, which is where their keys fall among the siblings (`a-b` < `a/x`
   * < `a0`), so a depth-first walk is already in S3's order.
   */
  private async *walk(
    dir: string,
    keyBase: string,
    prefix: string,
    startAfter: string | undefined,
  ): AsyncGenerator<ListPage['items'][number]> {
    let entries: Dirent[];
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (err) {
      const code = errCode(err);
      if (code === 'ENOENT' || code === 'ENOTDIR') return;
      throw err;
    }
    const sorted = entries
      .filter((e) => (e.isFile() || e.isDirectory()) && isValidKey(e.name)) // hides *~* names and foreign files
      .map((e) => ({
        dir: e.isDirectory(),
        name: e.name,
        sortKey: `${keyBase}${e.name}${e.isDirectory() ? '/' : ''}`,
      }))
      .sort((a, b) => (a.sortKey < b.sortKey ? -1 : a.sortKey > b.sortKey ? 1 : 0));
    for (const entry of sorted) {
      const full = entry.sortKey;
      if (entry.dir) {
        if (!full.startsWith(prefix) && !prefix.startsWith(full)) continue;
        // Every key below `full` starts with it: skip the subtree when it is wholly before the cursor.
        if (startAfter !== undefined && full < startAfter && !startAfter.startsWith(full)) continue;
        yield* this.walk(join(dir, entry.name), full, prefix, startAfter);
      } else {
        if (!full.startsWith(prefix)) continue;
        if (startAfter !== undefined && full <= startAfter) continue;
        const st = await lstat(join(dir, entry.name)).catch(() => null);
        if (!st?.isFile()) continue; // deleted since readdir
        yield { key: full, size: st.size, lastModified: st.mtime };
      }
    }
  }

  /** Changes the base of `publicUrl` (the server learns its port only once listening when PORT=0). */
  usePublicBaseUrl(url: string): void {
    this.publicBase = url.replace(/\/+$/, '');
  }

  publicUrl(key: string): string {
    assertValidKey(key);
    return `${this.publicBase}/${key}`;
  }

  async check(): Promise<void> {
    const probe = join(this.root, `.check~${randomBytes(6).toString('hex')}.tmp`);
    try {
      await mkdir(this.root, { recursive: true });
      const fh = await open(probe, 'wx');
      await fh.close();
      await rm(probe, { force: true });
    } catch (err) {
      throw new Error(
        `local object store directory ${this.root} is not writable: ${err instanceof Error ? err.message : String(err)}`,
      );
    }
  }

  /** Waits for in-flight renames and deletes; nothing else to release. */
  async close(): Promise<void> {
    await Promise.all([...this.keyLocks.values()]);
  }
}
