/**
 * The streamer's studio (`/studio`), built only on the client SDK: schedule
 * a stream, copy the OBS settings, watch status and viewers, pin products,
 * start flash sales, moderate chat, see sales, end the show, open replays.
 */
import {
  isErrorCode,
  type LiveChatMessage,
  type LiveRoom,
  type Product,
  type Stream,
} from '../../client-sdk/src/index.js';
import { $, explain as explainCommon, type Me, money, notice, sdk, signIn } from '../common.js';

let me: Me | null = null;
let current: Stream | null = null;
let room: LiveRoom | null = null;
const unsubscribers: Array<() => void> = [];
let products: Product[] = [];
/** Per minute of the session: viewers seen and chat messages, for the chart. */
const minutes: Array<{ viewers: number; chat: number }> = [];

const explain = (err: unknown) =>
  explainCommon(err, (e) =>
    isErrorCode(e, 'FORBIDDEN') ? 'Your account cannot do that (streamers and admins can).' : undefined,
  );

async function act(what: () => Promise<unknown>): Promise<void> {
  try {
    notice('');
    await what();
  } catch (err) {
    notice(explain(err));
  }
}

function bucket(): { viewers: number; chat: number } {
  const index = Math.floor(performance.now() / 60_000);
  while (minutes.length <= index) minutes.push({ viewers: minutes.at(-1)?.viewers ?? 0, chat: 0 });
  return minutes[index] as { viewers: number; chat: number };
}

/** A polyline of `values` (one per minute) scaled into a 300×60 SVG. */
function polyline(values: number[], color: string, title: string): string {
  const max = Math.max(1, ...values);
  const points = values
    .map((v, i) => `${(i / Math.max(1, values.length - 1)) * 300},${60 - (v / max) * 55}`)
    .join(' ');
  return `<polyline fill="none" stroke="${color}" stroke-width="2" points="${points}"><title>${title}</title></polyline>`;
}

async function showReport(stream: Stream): Promise<void> {
  const report = await sdk.streams.analytics(stream.id);
  $('streams').hidden = true;
  $('report').hidden = false;
  $('report-title').textContent = `Analytics: ${stream.title}`;
  const revenue = Object.entries(report.commerce.revenueMinor)
    .map(([currency, minor]) => money(minor, currency))
    .join(' + ');
  const figures: Array<[string, string]> = [
    ['Duration', `${Math.round(report.durationSeconds / 60)} min`],
    ['Peak viewers', String(report.viewers.peak)],
    ['Unique viewers', String(report.viewers.unique)],
    ['Average view', `${report.watch.averageViewSeconds} s`],
    ['Likes', String(report.likes)],
    ['Chat messages', String(report.chatMessages)],
    ['Paid orders', String(report.commerce.orders.paid)],
    ['Revenue', revenue || '–'],
  ];
  const list = $('report-figures');
  list.replaceChildren();
  for (const [label, value] of figures) {
    const dt = document.createElement('dt');
    dt.textContent = label;
    const dd = document.createElement('dd');
    dd.textContent = value;
    list.append(dt, dd);
  }
  const perMinute: number[] = [];
  for (const { minute, viewers } of report.watch.retention) perMinute[minute] = viewers;
  ($('retention') as unknown as SVGSVGElement).innerHTML = polyline(
    Array.from(perMinute, (v) => v ?? 0),
    '#e0245e',
    'viewers per minute',
  );
}

function drawChart(): void {
  const last = minutes.slice(-30);
  ($('chart') as unknown as SVGSVGElement).innerHTML =
    polyline(
      last.map((m) => m.viewers),
      '#e0245e',
      'viewers',
    ) +
    polyline(
      last.map((m) => m.chat),
      '#3b82f6',
      'chat messages',
    );
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
        const report = document.createElement('button');
        report.type = 'button';
        report.className = 'secondary';
        report.textContent = 'Analytics';
        report.setAttribute('aria-label', `Analytics of ${stream.title}`);
        report.addEventListener('click', () => void act(() => showReport(stream)));
        item.append(replay, report);
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
  $('report-back').addEventListener(
    'click',
    () =>
      void act(async () => {
        $('report').hidden = true;
        await showStreams();
      }),
  );

  me = await signIn((err) => notice(explain(err)));
  if (!me) return;
  $('me').textContent = `${me.displayName} (${me.roles.join(', ')})`;
  await sdk.realtime.connect();
  await showStreams();
}

main().catch((err: unknown) => notice(explain(err)));
