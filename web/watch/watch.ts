/**
 * The watch-and-buy page (`/watch/<streamId>`), built only on the client
 * SDK: the video, live chat, viewer count, the pinned product card shown
 * when the video reaches the pin, the flash-sale card with countdown and
 * live stock, and one-tap buying.
 */
import {
  type FlashSale,
  isErrorCode,
  type LiveChatMessage,
  LiveCommerce,
  LiveCommerceError,
  LivePlayer,
  type StreamPage,
  type StreamPin,
} from '../../client-sdk/src/index.js';

const TOKEN_KEY = 'lc.token';
const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;

const streamId = decodeURIComponent(location.pathname.split('/').filter(Boolean)[1] ?? '');
const sdk = new LiveCommerce({ token: () => localStorage.getItem(TOKEN_KEY) });
const room = sdk.liveRoom(streamId);
let player: LivePlayer | null = null;
let sale: FlashSale | null = null;
/** Pins heard on the room, waiting for the video to reach them. */
const pins = new Map<string, StreamPin>();

const money = (minor: number | null, currency: string) =>
  minor === null ? '' : new Intl.NumberFormat(undefined, { style: 'currency', currency }).format(minor / 100);

function notice(text: string): void {
  $('notice').textContent = text;
}

function explain(err: unknown): string {
  if (isErrorCode(err, 'FLASH_SOLD_OUT')) return 'Sold out, sorry!';
  if (isErrorCode(err, 'FLASH_LIMIT_REACHED')) return 'You already have the most this sale allows.';
  if (isErrorCode(err, 'FLASH_NOT_STARTED')) return 'The sale has not started yet.';
  if (isErrorCode(err, 'FLASH_ENDED')) return 'The sale has ended.';
  if (isErrorCode(err, 'UNAUTHENTICATED', 'TOKEN_EXPIRED', 'TOKEN_INVALID')) return 'Sign in first.';
  if (isErrorCode(err, 'CHAT_MUTED', 'CHAT_SLOW_MODE')) return 'Slow down a little.';
  if (isErrorCode(err, 'CHAT_BANNED')) return 'You cannot chat in this stream.';
  if (err instanceof LiveCommerceError) return `${err.message} (${err.code})`;
  return 'Something went wrong.';
}

function showPin(pin: StreamPin): void {
  const card = $('pin');
  if (!pin.product) {
    $('pin-title').textContent = `Coupon ${pin.couponCode ?? ''}`;
    $('pin-price').textContent = 'Use it at checkout';
    $<HTMLButtonElement>('pin-buy').hidden = true;
  } else {
    $('pin-title').textContent = pin.product.title;
    $('pin-price').textContent = money(pin.product.minPriceMinor, pin.product.currency);
    $<HTMLButtonElement>('pin-buy').hidden = false;
    card.dataset.productId = pin.product.id;
  }
  card.dataset.pinId = pin.id;
  card.hidden = false;
}

function showSale(next: FlashSale): void {
  sale = next;
  $('sale-price').textContent = money(next.salePriceMinor, next.currency);
  $('sale-stock').textContent = String(next.remaining);
  $('sale').hidden = false;
  tickCountdown();
}

function tickCountdown(): void {
  if (!sale) return;
  const now = Date.now();
  const starts = Date.parse(sale.startsAt);
  const ends = Date.parse(sale.endsAt);
  const button = $<HTMLButtonElement>('sale-buy');
  const fmt = (ms: number) => {
    const s = Math.max(0, Math.ceil(ms / 1000));
    return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
  };
  if (now < starts) {
    $('sale-countdown').textContent = `starts in ${fmt(starts - now)}`;
    button.disabled = true;
  } else if (now < ends && sale.remaining > 0) {
    $('sale-countdown').textContent = `ends in ${fmt(ends - now)}`;
    button.disabled = false;
  } else {
    $('sale-countdown').textContent = sale.remaining > 0 ? 'ended' : 'sold out';
    button.disabled = true;
  }
}

function addChat(message: LiveChatMessage): void {
  const item = document.createElement('li');
  item.dataset.id = message.id;
  const name = document.createElement('b');
  name.textContent = message.displayName;
  item.append(name, document.createTextNode(message.body));
  const list = $('chat');
  list.append(item);
  list.scrollTop = list.scrollHeight;
}

async function payFor(input: Parameters<typeof sdk.commerce.checkout>[0]): Promise<void> {
  const order = await sdk.commerce.checkout({ ...input, streamId });
  const paid = await sdk.commerce.pay(order.id, 'test_card_ok');
  notice(
    `Order ${paid.id.slice(0, 8)} ${paid.status === 'paid' ? 'paid' : paid.status}: ${money(paid.totalMinor, paid.currency)}`,
  );
}

async function buySale(): Promise<void> {
  if (!sale) return;
  const button = $<HTMLButtonElement>('sale-buy');
  button.disabled = true;
  try {
    const reservation = await sdk.commerce.buyFlash(sale.id);
    await payFor({ reservations: [reservation.reservationId] });
  } catch (err) {
    notice(explain(err));
  } finally {
    tickCountdown();
  }
}

async function buyPinned(): Promise<void> {
  const productId = $('pin').dataset.productId;
  if (!productId) return;
  try {
    const product = await sdk.commerce.product(productId);
    const sku = product.skus.find((s) => s.active && s.stock > 0);
    if (!sku) {
      notice('Out of stock.');
      return;
    }
    await payFor({ items: [{ skuId: sku.id, quantity: 1 }] });
  } catch (err) {
    notice(explain(err));
  }
}

function play(src: string): void {
  player?.close();
  player = new LivePlayer($<HTMLVideoElement>('video'), { src });
  player.on('metadata', (cue) => {
    if (cue.class !== 'com.livecommerce.pin') return;
    const pin = pins.get(cue.id.replace(/^pin-/, ''));
    if (pin) showPin(pin);
  });
  player.on('fatal', ({ details }) => notice(`Playback problem: ${details}`));
  player.on('watched', ({ seconds }) => {
    room.reportWatch(seconds).catch(() => undefined);
  });
  player.play().catch(() => undefined);
}

let pendingLikes = 0;
let likeTimer: ReturnType<typeof setTimeout> | null = null;

/** Taps are batched: one `live.like` with the count every half second at most. */
function tapLike(): void {
  pendingLikes += 1;
  $('likes').textContent = String(Number($('likes').textContent) + 1);
  if (likeTimer !== null) return;
  likeTimer = setTimeout(() => {
    const count = Math.min(50, pendingLikes);
    pendingLikes = 0;
    likeTimer = null;
    room.like(count).catch((err: unknown) => notice(explain(err)));
  }, 500);
}

function render(page: StreamPage): void {
  $('likes').textContent = String(page.audience.likes);
  if (page.status === 'live') $('viewers').textContent = `${page.audience.current} watching`;
  document.title = page.stream.title;
  $('title').textContent = page.stream.title;
  const status =
    page.status === 'live'
      ? 'LIVE'
      : page.status === 'ended'
        ? page.replayUrl
          ? 'REPLAY'
          : 'ENDED'
        : 'SOON';
  $('status').textContent = status;
  const src = page.hlsUrl ?? page.replayUrl;
  if (src) play(src);
  if (page.currentPin) {
    pins.set(page.currentPin.id, page.currentPin);
    showPin(page.currentPin);
  }
  if (page.activeFlashSale) showSale(page.activeFlashSale);
}

async function main(): Promise<void> {
  const token = localStorage.getItem(TOKEN_KEY);
  $('login').hidden = Boolean(token);
  $('login').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      const session = await sdk.login(
        $<HTMLInputElement>('email').value,
        $<HTMLInputElement>('password').value,
      );
      localStorage.setItem(TOKEN_KEY, session.token);
      location.reload();
    } catch (err) {
      notice(explain(err));
    }
  });
  $('chat-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const input = $<HTMLInputElement>('chat-input');
    const body = input.value.trim();
    if (!body) return;
    try {
      await room.send(body);
      input.value = '';
    } catch (err) {
      notice(explain(err));
    }
  });
  $('sale-buy').addEventListener('click', () => void buySale());
  $('pin-buy').addEventListener('click', () => void buyPinned());
  $('like').addEventListener('click', tapLike);
  room.on('stream.likes', ({ total }) => {
    $('likes').textContent = String(Math.max(total, Number($('likes').textContent)));
  });
  setInterval(tickCountdown, 1000);

  room.on('chat.message', addChat);
  room.on('chat.message_deleted', ({ messageId }) =>
    document.querySelector(`#chat li[data-id="${CSS.escape(messageId)}"]`)?.remove(),
  );
  // A pin is shown when the video reaches it (its EXT-X-DATERANGE); players without timed metadata show it after a while.
  room.on('stream.pin', (pin) => {
    pins.set(pin.id, pin);
    setTimeout(() => {
      if ($('pin').dataset.pinId !== pin.id && pins.has(pin.id)) showPin(pin);
    }, 15_000);
  });
  room.on('stream.unpin', ({ pinId }) => {
    pins.delete(pinId);
    if ($('pin').dataset.pinId === pinId) $('pin').hidden = true;
  });
  room.on('flash.sale', ({ sale: next }) => showSale(next));
  room.on('flash.stock', ({ saleId, remaining }) => {
    if (sale?.id !== saleId) return;
    sale = { ...sale, remaining };
    $('sale-stock').textContent = String(remaining);
    tickCountdown();
  });
  room.on('stream.viewers', ({ current }) => {
    $('viewers').textContent = `${current} watching`;
  });
  room.on('stream.playable', ({ hlsUrl }) => {
    $('status').textContent = 'LIVE';
    if (!player) play(hlsUrl);
  });
  room.on('stream.status', async ({ status }) => {
    if (status === 'live') render(await sdk.commerce.streamPage(streamId));
    else $('status').textContent = 'ENDED';
  });
  sdk.realtime.onState((state) => {
    document.body.dataset.realtime = state;
  });

  render(await sdk.commerce.streamPage(streamId));
  await sdk.realtime.connect();
  await room.join();
  if (token) {
    const me = await sdk.http.request<{ displayName: string }>('GET', '/v1/auth/me').catch(() => null);
    if (me) {
      $('me').textContent = `Signed in as ${me.displayName}`;
      $('me').hidden = false;
    } else {
      localStorage.removeItem(TOKEN_KEY);
      $('login').hidden = false;
    }
  }
}

main().catch((err: unknown) => notice(explain(err)));
