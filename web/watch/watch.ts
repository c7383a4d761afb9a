/**
 * The watch-and-buy page (`/watch/<streamId>`), built only on the client
 * SDK: the video, live chat, viewer count, the pinned product card shown
 * when the video reaches the pin, the flash-sale card with countdown and
 * live stock, one-tap buying, and a video call with a support agent that
 * carries what the viewer was looking at.
 */
import {
  type FlashSale,
  isErrorCode,
  type LiveChatMessage,
  LivePlayer,
  type StreamPage,
  type StreamPin,
} from '../../client-sdk/src/index.js';
import { CallPanel } from '../call-panel.js';
import { $, explain as explainCommon, money, notice, sdk, signIn } from '../common.js';

const streamId = decodeURIComponent(location.pathname.split('/').filter(Boolean)[1] ?? '');
const room = sdk.liveRoom(streamId);
let player: LivePlayer | null = null;
let sale: FlashSale | null = null;
/** A coupon code the viewer applied: used when buying the pinned product. */
let coupon: string | null = null;
/** Pins heard on the room, waiting for the video to reach them. */
const pins = new Map<string, StreamPin>();

const explain = (err: unknown) =>
  explainCommon(err, (e) => {
    if (isErrorCode(e, 'FLASH_SOLD_OUT')) return 'Sold out, sorry!';
    if (isErrorCode(e, 'FLASH_LIMIT_REACHED')) return 'You already have the most this sale allows.';
    if (isErrorCode(e, 'FLASH_NOT_STARTED')) return 'The sale has not started yet.';
    if (isErrorCode(e, 'FLASH_ENDED')) return 'The sale has ended.';
    if (isErrorCode(e, 'CHAT_MUTED', 'CHAT_SLOW_MODE')) return 'Slow down a little.';
    if (isErrorCode(e, 'CHAT_BANNED')) return 'You cannot chat in this stream.';
    if (isErrorCode(e, 'COUPON_NOT_FOUND')) return 'No such coupon.';
    if (isErrorCode(e, 'COUPON_EXPIRED', 'COUPON_NOT_STARTED', 'COUPON_INACTIVE'))
      return 'This coupon is not valid now.';
    if (isErrorCode(e, 'COUPON_LIMIT_REACHED', 'COUPON_USER_LIMIT_REACHED')) return 'This coupon is used up.';
    if (isErrorCode(e, 'COUPON_MIN_NOT_MET')) return 'The order is below this coupon’s minimum.';
    if (isErrorCode(e, 'COUPON_NOT_APPLICABLE', 'COUPON_STREAM_MISMATCH', 'COUPON_CURRENCY_MISMATCH'))
      return 'This coupon does not apply to this product.';
    return undefined;
  });
const report = (err: unknown) => notice(explain(err));
const callPanel = new CallPanel($('call'), report);

function showPin(pin: StreamPin): void {
  const card = $('pin');
  if (!pin.product) {
    $('pin-title').textContent = `Coupon ${pin.couponCode ?? ''}`;
    $('pin-price').textContent = 'For the pinned product';
    $('pin-buy').textContent = 'Use code';
    card.dataset.couponCode = pin.couponCode ?? '';
  } else {
    $('pin-title').textContent = pin.product.title;
    $('pin-price').textContent = money(pin.product.minPriceMinor, pin.product.currency);
    $('pin-buy').textContent = 'Buy';
    card.dataset.productId = pin.product.id;
    delete card.dataset.couponCode;
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

/** The line a tap on the pinned product's Buy would order: its first SKU in stock. */
async function pinnedLine(): Promise<{ skuId: string; quantity: number } | null> {
  const productId = $('pin').dataset.productId;
  if (!productId) return null;
  const product = await sdk.commerce.product(productId);
  const sku = product.skus.find((s) => s.active && s.stock > 0);
  return sku ? { skuId: sku.id, quantity: 1 } : null;
}

async function buyPinned(): Promise<void> {
  const code = $('pin').dataset.couponCode;
  if (code) {
    $<HTMLInputElement>('coupon').value = code;
    await applyCoupon();
    return;
  }
  try {
    const line = await pinnedLine();
    if (!line) {
      notice('Out of stock.');
      return;
    }
    await payFor({ items: [line], ...(coupon ? { couponCode: coupon } : {}) });
  } catch (err) {
    notice(explain(err));
  }
}

/** Checks the code against the pinned product and says what it gives, or why it does not apply. */
async function applyCoupon(): Promise<void> {
  const code = $<HTMLInputElement>('coupon').value.trim();
  coupon = null;
  $('coupon-status').textContent = '';
  if (!code) return;
  try {
    const line = await pinnedLine();
    if (!line) {
      $('coupon-status').textContent = 'Applies when a product is pinned.';
      return;
    }
    const quote = await sdk.commerce.validateCoupon(code, [line], streamId);
    coupon = quote.code;
    const saving = quote.freeShipping ? 'free shipping' : `−${money(quote.discountMinor, quote.currency)}`;
    $('coupon-status').textContent = `${quote.code}: ${saving} on the pinned product`;
  } catch (err) {
    $('coupon-status').textContent = explain(err);
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
  player.on('watched', ({ seconds, quality }) => {
    room.reportWatch(seconds, quality).catch(() => undefined);
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
    room.like(count).catch(report);
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

/** "Talk to an agent": a support call with the stream and the pinned product attached. */
async function callAgent(): Promise<void> {
  if (callPanel.active) return;
  const productId = $('pin').hidden ? undefined : $('pin').dataset.productId;
  const session = await sdk.calls.start({ type: 'support', context: { streamId, productId } });
  $('call-agent').hidden = true;
  callPanel.show(session, () => {
    $('call-agent').hidden = false;
  });
}

async function main(): Promise<void> {
  const signedIn = signIn(report);
  $('call-agent').addEventListener('click', () => {
    notice('');
    callAgent().catch(report);
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
  $('coupon-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    void applyCoupon();
  });
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
  const me = await signedIn;
  if (me) {
    $('me').textContent = `Signed in as ${me.displayName}`;
    $('me').hidden = false;
  }
  $('call-agent').hidden = me === null;
}

main().catch(report);
