/**
 * The streamer's studio (`/studio`), built only on the client SDK: schedule
 * a stream, copy the OBS settings, watch status and viewers, pin products,
 * start flash sales, moderate chat, see sales, end the show, open replays.
 */
import {
  isErrorCode,
  type LiveChatMessage,
  LiveCommerce,
  LiveCommerceError,
  type LiveRoom,
  type Product,
  type Stream,
} from '../../client-sdk/src/index.js';

const TOKEN_KEY = 'lc.token';
const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;
const sdk = new LiveCommerce({ token: () => localStorage.getItem(TOKEN_KEY) });

let me: { id: string; displayName: string; roles: string[] } | null = null;
let current: Stream | null = null;
let room: LiveRoom | null = null;
const unsubscribers: Array<() => void> = [];
let products: Product[] = [];
/** Per minute of the session: viewers seen and chat messages, for the chart. */
const minutes: Array<{ viewers: number; chat: number }> = [];

function notice(text: string): void {
  $('notice').textContent = text;
}

function explain(err: unknown): string {
  if (isErrorCode(err, 'UNAUTHENTICATED', 'TOKEN_EXPIRED', 'TOKEN_INVALID')) return 'Sign in again.';
  if (isErrorCode(err, 'FORBIDDEN')) return 'Your account cannot do that (streamers and admins can).';
  if (err instanceof LiveCommerceError) return `${err.message} (${err.code})`;
  return 'Something went wrong.';
}

async function act(what: () => Promise<unknown>): Promise<void> {
  try {
    notice('');
    await what();
  } catch (err) {
    notice(explain(err));
  }
}

const money = (minor: number, currency: string) =>
  new Intl.NumberFormat(undefined, { style: 'currency', currency }).format(minor / 100);

function bucket(): { viewers: number; chat: number } {
  const index = Math.floor(performance.now() / 60_000);
  while (minutes.length <= index) minutes.push({ viewers: minutes.at(-1)?.viewers ?? 0, chat: 0 });
  return minutes[index] as { viewers: number; chat: number };
}

function drawChart(): void {
  const svg = $('chart') as unknown as SVGSVGElement;
  const last = minutes.slice(-30);
  const max = Math.max(1, ...last.map((m) => Math.max(m.viewers, m.chat)));
  const line = (pick: (m: { viewers: number; chat: number }) => number) =>
    last.map((m, i) => `${(i / Math.max(1, last.length - 1)) * 300},${60 - (pick(m) / max) * 55}`).join(' ');
  svg.innerHTML = `<polyline fill="none" stroke="#e0245e" stroke-width="2" points="${line((m) => m.viewers)}"><title>viewers</title></polyline><polyline fill="none" stroke="#3b82f6" stroke-width="2" points="${line((m) => m.chat)}"><title>chat messages</title></polyline>`;
}

async function showStreams(): Promise<void> {
  if (!me) return;
  $('console').hidden = true;
  $('streams').hidden = false;
  const list = $('stream-list');
  list.replaceChildren();
  for (const status of ['live', 'scheduled', 'ended'] as const) {
    const page = await sdk.streams.list({ ownerId: me.id, status, limit: 20 });
    for (const stream of page.items) {
      const item = document.createElement('li');
      const label = document.createElement('span');
      label.textContent = `${stream.title} · ${stream.status}`;
      item.append(label);
      if (stream.status !== 'ended') {
        const open = document.createElement('button');
        open.type = 'button';
        open.textContent = 'Open';
        open.setAttribute('aria-label', `Open ${stream.title}`);
        open.addEventListener('click', () => void act(() => openConsole(stream)));
        item.append(open);
      } else {
        const replay = document.createElement('a');
        replay.href = `/watch/${encodeURIComponent(stream.id)}`;
        replay.textContent = 'Replay';
        item.append(replay);
      }
      list.append(item);
    }
  }
}

async function openConsole(stream: Stream, key?: { rtmpUrl: string; streamKey: string }): Promise<void> {
  for (const off of unsubscribers.splice(0)) off();
  await room?.leave().catch(() => undefined);
  current = stream;
  $('streams').hidden = true;
  $('console').hidden = false;
  $('console-title').textContent = stream.title;
  $('console-status').textContent = stream.status;
  $<HTMLInputElement>('obs-server').value = key?.rtmpUrl ?? stream.ingest?.rtmpUrl ?? '';
  $<HTMLInputElement>('obs-key').value = key?.streamKey ?? '';
  $<HTMLAnchorElement>('watch-link').href = `/watch/${encodeURIComponent(stream.id)}`;
  $('chat').replaceChildren();

  products = (await sdk.commerce.products({ sellerId: me?.id, limit: 50 })).items;
  const list = $('products');
  list.replaceChildren();
  const select = $<HTMLSelectElement>('sale-sku');
  select.replaceChildren();
  for (const product of products) {
    const item = document.createElement('li');
    const label = document.createElement('span');
    label.textContent = product.title;
    const pin = document.createElement('button');
    pin.type = 'button';
    pin.textContent = 'Pin';
    pin.setAttribute('aria-label', `Pin ${product.title}`);
    pin.addEventListener(
      'click',
      () =>
        void act(async () => {
          await sdk.streams.pinProduct(stream.id, product.id);
          notice(`Pinned ${product.title}`);
        }),
    );
    item.append(label, pin);
    list.append(item);
    for (const sku of product.skus) {
      const option = document.createElement('option');
      option.value = sku.id;
      option.textContent = `${product.title} (${sku.name}) · ${money(sku.priceMinor, product.currency)}`;
      select.append(option);
    }
  }

  room = sdk.liveRoom(stream.id);
  const r = room;
  unsubscribers.push(
    r.on('chat.message', (m) => {
      addChat(m);
      bucket().chat += 1;
      drawChart();
    }),
    r.on('chat.message_deleted', ({ messageId }) =>
      document.querySelector(`#chat li[data-id="${CSS.escape(messageId)}"]`)?.remove(),
    ),
    r.on('stream.status', ({ status }) => {
      $('console-status').textContent = status;
    }),
    r.on('stream.playable', () => {
      $('console-status').textContent = 'live';
    }),
    r.on('stream.viewers', ({ current: viewers }) => {
      $('console-viewers').textContent = `${viewers} watching`;
      bucket().viewers = viewers;
      drawChart();
    }),
    r.on('flash.stock', () => void refreshSales()),
  );
  await r.join();
  await refreshSales();
}

function addChat(message: LiveChatMessage): void {
  const item = document.createElement('li');
  item.dataset.id = message.id;
  const text = document.createElement('span');
  const name = document.createElement('b');
  name.textContent = `${message.displayName} `;
  text.append(name, document.createTextNode(message.body));
  const remove = document.createElement('button');
  remove.type = 'button';
  remove.className = 'secondary';
  remove.textContent = 'Delete';
  remove.setAttribute('aria-label', `Delete message from ${message.displayName}`);
  remove.addEventListener('click', () => void act(() => (room as LiveRoom).deleteMessage(message.id)));
  const mute = document.createElement('button');
  mute.type = 'button';
  mute.className = 'secondary';
  mute.textContent = 'Mute 5 min';
  mute.setAttribute('aria-label', `Mute ${message.displayName} for 5 minutes`);
  mute.addEventListener('click', () => void act(() => (room as LiveRoom).mute(message.userId, 300)));
  item.append(text, remove, mute);
  $('chat').append(item);
}

async function refreshSales(): Promise<void> {
  if (!current) return;
  const figures = await sdk.streams.commerce(current.id);
  const revenue = Object.entries(figures.revenueMinor)
    .map(([currency, minor]) => money(minor, currency))
    .join(' + ');
  $('sales').textContent =
    `${figures.orders.paid} paid orders · ${figures.unitsSold} units · ${revenue || money(0, 'USD')}`;
}

async function main(): Promise<void> {
  $('login').addEventListener('submit', (ev) => {
    ev.preventDefault();
    void act(async () => {
      const session = await sdk.login(
        $<HTMLInputElement>('email').value,
        $<HTMLInputElement>('password').value,
      );
      localStorage.setItem(TOKEN_KEY, session.token);
      location.reload();
    });
  });
  $('create').addEventListener('submit', (ev) => {
    ev.preventDefault();
    void act(async () => {
      const when = $<HTMLInputElement>('new-when').value;
      const created = await sdk.streams.create({
        title: $<HTMLInputElement>('new-title').value,
        ...(when ? { scheduledAt: new Date(when).toISOString() } : {}),
      });
      $<HTMLInputElement>('new-title').value = '';
      await openConsole(created.stream, created);
    });
  });
  $('rotate').addEventListener(
    'click',
    () =>
      void act(async () => {
        if (!current) return;
        const rotated = await sdk.streams.rotateKey(current.id);
        $<HTMLInputElement>('obs-key').value = rotated.streamKey;
        notice('New key: the old one no longer works.');
      }),
  );
  for (const button of document.querySelectorAll<HTMLButtonElement>('[data-copy]'))
    button.addEventListener(
      'click',
      () =>
        void act(async () => {
          await navigator.clipboard.writeText($<HTMLInputElement>(button.dataset.copy as string).value);
          notice('Copied.');
        }),
    );
  $('sale').addEventListener('submit', (ev) => {
    ev.preventDefault();
    void act(async () => {
      if (!current) return;
      const startsAt = new Date();
      const minutesLong = Number($<HTMLInputElement>('sale-minutes').value);
      await sdk.streams.startFlashSale({
        skuId: $<HTMLSelectElement>('sale-sku').value,
        salePriceMinor: Math.round(Number($<HTMLInputElement>('sale-price').value) * 100),
        quantity: Number($<HTMLInputElement>('sale-qty').value),
        perUserLimit: 1,
        reservationTtlSeconds: 300,
        startsAt: startsAt.toISOString(),
        endsAt: new Date(startsAt.getTime() + minutesLong * 60_000).toISOString(),
        streamId: current.id,
      });
      notice('Flash sale started.');
    });
  });
  $('end').addEventListener(
    'click',
    () =>
      void act(async () => {
        if (!current) return;
        const ended = await sdk.streams.end(current.id);
        $('console-status').textContent = ended.status;
        notice('Stream ended. The replay appears in the list once the recording is written.');
      }),
  );
  $('back').addEventListener('click', () => void act(showStreams));

  if (!localStorage.getItem(TOKEN_KEY)) return;
  me = await sdk.http
    .request<{ id: string; displayName: string; roles: string[] }>('GET', '/v1/auth/me')
    .catch(() => null);
  if (!me) {
    localStorage.removeItem(TOKEN_KEY);
    return;
  }
  $('login').hidden = true;
  $('me').textContent = `${me.displayName} (${me.roles.join(', ')})`;
  await sdk.realtime.connect();
  await showStreams();
}

main().catch((err: unknown) => notice(explain(err)));
