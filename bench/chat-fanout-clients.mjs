/**
 * The client side of `npm run bench -- chat-fanout`, in its own process so
 * that the server under test and its audience do not share an event loop.
 * Plain JavaScript (no tsx loader) and not a benchmark of its own: bench/run.ts
 * only lists `.ts` files. The parent (bench/chat-fanout.ts) drives it over
 * the IPC channel, one command at a time, and gets one reply per command:
 *
 * - `connect {url, room, n}`: opens n WebSockets to `url` (at most 200
 *   handshakes in flight), waits for each one's `hello`, sends
 *   `join {room}` and waits for its `ok`. Replies with how many made it.
 * - `broadcast {target, url, token, room, streamId, count, rate}`: opens one
 *   publisher connection (not in the room) and sends `count` messages at
 *   `rate` per second, each carrying `performance.now()` at send time: for
 *   `ours` as a `live.chat.send` request (the gateway builds the room event),
 *   for `bare` as the finished event frame (the bare server relays it).
 *   Every member counts the `event` frames it gets and records now − the
 *   timestamp inside. Replies once everything expected arrived, or nothing
 *   arrived for 3 s: delivered, expected, latency percentiles.
 * - `close`: terminates every member socket.
 *
 * Publisher and members live in this one process, so send and receive
 * timestamps come from the same monotonic clock.
 */
import { performance } from 'node:perf_hooks';
import WebSocket from 'ws';

const CONNECT_CONCURRENCY = 200;
const IDLE_TIMEOUT_MS = 3000;
const log = (msg) => process.stderr.write(`[chat-fanout clients] ${msg}\n`);

/** @type {Set<WebSocket>} */
const members = new Set();
/** Collects event frames during a broadcast; null outside one. */
let recorder = null;

function onMemberMessage(data) {
  const rec = recorder;
  if (!rec) return;
  const now = performance.now();
  let frame;
  try {
    frame = JSON.parse(data.toString());
  } catch {
    rec.garbage++;
    return;
  }
  if (frame.t !== 'event' || frame.e !== 'chat.message') return;
  // body: `<run tag> <performance.now() at send>`
  const body = String(frame.d?.body);
  const space = body.indexOf(' ');
  const sentAt = Number(body.slice(space + 1));
  if (body.slice(0, space) !== rec.tag || !Number.isFinite(sentAt)) {
    rec.foreign++;
    return;
  }
  if (rec.delivered < rec.latencies.length) rec.latencies[rec.delivered] = now - sentAt;
  rec.delivered++;
  rec.lastAt = now;
  if (rec.delivered >= rec.expected) rec.done();
}

/** One member: connect, hello, join, ok. Resolves true when it is in the room. */
function openMember(url, room) {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    let settled = false;
    const finish = (ok) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (ok) {
        ws.removeAllListeners('message');
        ws.on('message', onMemberMessage);
        members.add(ws);
      } else ws.terminate();
      resolve(ok);
    };
    const timer = setTimeout(() => finish(false), 30_000);
    ws.on('error', () => finish(false));
    ws.on('close', () => {
      members.delete(ws);
      finish(false);
    });
    ws.on('message', (data) => {
      let frame;
      try {
        frame = JSON.parse(data.toString());
      } catch {
        return finish(false);
      }
      if (frame.t === 'hello') ws.send(JSON.stringify({ t: 'join', id: 1, d: { room } }));
      else if (frame.id === 1) finish(frame.t === 'ok');
    });
  });
}

async function connect({ url, room, n }) {
  const started = performance.now();
  let next = 0;
  let ok = 0;
  let failed = 0;
  const worker = async () => {
    while (next < n) {
      next++;
      if (await openMember(url, room)) ok++;
      else failed++;
    }
  };
  await Promise.all(Array.from({ length: Math.min(CONNECT_CONCURRENCY, n) }, worker));
  return { connected: ok, failed, ms: Math.round(performance.now() - started) };
}

function percentile(sorted, p) {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

async function openPublisher(url) {
  const ws = new WebSocket(url, { perMessageDeflate: false });
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  return ws;
}

async function broadcast({ target, url, token, room, streamId, count, rate, tag }) {
  const expected = count * members.size;
  const publisher = await openPublisher(token ? `${url}?token=${encodeURIComponent(token)}` : url);
  let replies = 0;
  const publishErrors = [];
  publisher.on('message', (data) => {
    const frame = JSON.parse(data.toString());
    if (frame.t === 'ok') replies++;
    else if (frame.t === 'error') publishErrors.push(frame.code);
  });
  // Only frames of this run count (a warm-up's stragglers carry another tag).
  const rec = {
    tag,
    expected,
    delivered: 0,
    garbage: 0,
    foreign: 0,
    lastAt: performance.now(),
    latencies: new Float64Array(expected),
    done: () => undefined,
  };
  const finished = new Promise((resolve) => {
    rec.done = resolve;
  });
  recorder = rec;
  const started = performance.now();
  const period = 1000 / rate;
  for (let i = 0; i < count; i++) {
    const due = started + i * period;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    const body = `${tag} ${performance.now().toFixed(3)}`;
    if (target === 'ours') {
      // The gateway wraps it: {t:'event', room, seq, e:'chat.message', d:{id, streamId, userId, displayName, body, sentAt}}.
      publisher.send(JSON.stringify({ t: 'live.chat.send', id: i + 1, d: { streamId, body } }));
    } else {
      // The same shape and size the gateway produces, finished here; the bare server only relays it.
      publisher.send(
        JSON.stringify({
          t: 'event',
          room,
          seq: i + 1,
          e: 'chat.message',
          d: {
            id: crypto.randomUUID(),
            streamId,
            userId: '00000000-0000-4000-8000-000000000000',
            displayName: 'Bench publisher',
            body,
            sentAt: new Date().toISOString(),
          },
        }),
      );
    }
  }
  const sentMs = performance.now() - started;
  await new Promise((resolve) => {
    const poll = setInterval(() => {
      if (performance.now() - rec.lastAt > IDLE_TIMEOUT_MS) {
        clearInterval(poll);
        resolve();
      }
    }, 100);
    void finished.then(() => {
      clearInterval(poll);
      resolve();
    });
  });
  recorder = null;
  const elapsedMs = rec.lastAt - started;
  publisher.terminate();
  const n = Math.min(rec.delivered, rec.latencies.length);
  const sorted = rec.latencies.subarray(0, n).sort();
  const round = (v) => (v === null ? null : Number(v.toFixed(2)));
  return {
    expected,
    delivered: rec.delivered,
    publishErrors: publishErrors.length,
    publishErrorCodes: [...new Set(publishErrors)],
    replies,
    foreign: rec.foreign,
    sentMs: Math.round(sentMs),
    elapsedMs: Math.round(elapsedMs),
    p50_ms: round(percentile(sorted, 50)),
    p90_ms: round(percentile(sorted, 90)),
    p99_ms: round(percentile(sorted, 99)),
    max_ms: round(n ? sorted[n - 1] : null),
  };
}

async function closeAll() {
  const n = members.size;
  for (const ws of members) ws.terminate();
  members.clear();
  return { closed: n };
}

const commands = { connect, broadcast, close: closeAll };

process.on('message', async (msg) => {
  try {
    const fn = commands[msg.cmd];
    if (!fn) throw new Error(`unknown command ${msg.cmd}`);
    process.send({ id: msg.id, ok: true, result: await fn(msg) });
  } catch (err) {
    log(`${msg.cmd} failed: ${err.stack ?? err}`);
    process.send({ id: msg.id, ok: false, error: String(err?.message ?? err) });
  }
});
process.on('disconnect', () => process.exit(0));
process.send({ ready: true });
