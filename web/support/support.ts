/**
 * The support desk (`/support`), built only on the client SDK: an agent
 * signs in, goes online or away, sees the line of waiting calls, answers a
 * ringing call with video, sees what the caller was looking at (stream,
 * product, cart), ends the call and sees their recent calls.
 */
import { type Call, type CallContext, isErrorCode } from '../../client-sdk/src/index.js';
import { CallPanel } from '../call-panel.js';
import { $, explain as explainCommon, type Me, money, notice, sdk, signIn } from '../common.js';

const QUEUE_REFRESH_MS = 5000;

const explain = (err: unknown) =>
  explainCommon(err, (e) => {
    if (isErrorCode(e, 'FORBIDDEN')) return 'This account is not a support agent.';
    if (isErrorCode(e, 'CALL_STATE_INVALID')) return 'That call is no longer ringing.';
    return undefined;
  });
const report = (err: unknown) => notice(explain(err));

let me: Me | null = null;
let ringing: Call | null = null;
const panel = new CallPanel($('call'), report);

const duration = (ms: number | null) =>
  ms === null ? '' : `${Math.floor(ms / 60_000)}:${String(Math.round(ms / 1000) % 60).padStart(2, '0')}`;

function entry(list: HTMLElement, term: string, value: string): void {
  const dt = document.createElement('dt');
  dt.textContent = term;
  const dd = document.createElement('dd');
  dd.textContent = value;
  list.append(dt, dd);
}

/** The caller's context in words: which stream, which product, what is in the cart. */
async function renderContext(list: HTMLElement, call: Call): Promise<void> {
  const context: CallContext = call.context;
  list.replaceChildren();
  entry(list, 'Type', call.type);
  if (call.record) entry(list, 'Recording', 'yes (the caller asked for it)');
  if (context.streamId) {
    const page = await sdk.commerce.streamPage(context.streamId).catch(() => null);
    entry(list, 'Stream', page ? `${page.stream.title} (${page.status})` : context.streamId);
  }
  if (context.productId) {
    const product = await sdk.commerce.product(context.productId).catch(() => null);
    entry(
      list,
      'Product',
      product
        ? `${product.title} ${money(product.skus[0]?.priceMinor ?? null, product.currency)}`
        : context.productId,
    );
  }
  if (context.cart?.length) {
    const units = context.cart.reduce((n, line) => n + line.quantity, 0);
    entry(
      list,
      'Cart',
      `${units} item${units === 1 ? '' : 's'} (${context.cart.length} line${context.cart.length === 1 ? '' : 's'})`,
    );
  }
  if (!context.streamId && !context.productId && !context.cart?.length) entry(list, 'Context', 'none');
}

async function showAvailability(status?: string): Promise<void> {
  $('availability').textContent = status ?? (await sdk.calls.availability());
}

async function refreshQueue(): Promise<void> {
  const line = await sdk.calls.queue();
  $('queue-count').textContent = String(line.length);
  $('queue').replaceChildren(
    ...line.map(({ call, position }) => {
      const item = document.createElement('li');
      const waited = Math.round((Date.now() - Date.parse(call.createdAt)) / 1000);
      item.textContent = `#${position} ${call.type} call, waiting ${waited} s${call.context.streamId ? ' (from a live stream)' : ''}`;
      return item;
    }),
  );
}

async function refreshHistory(): Promise<void> {
  const calls = await sdk.calls.history({ limit: 20 });
  $('history').replaceChildren(
    ...calls.map((call) => {
      const row = document.createElement('tr');
      const outcome = call.status === 'ended' ? `ended (${call.endReason ?? ''})` : call.status;
      for (const text of [
        new Date(call.createdAt).toLocaleString(),
        call.type,
        outcome,
        duration(call.durationMs),
      ]) {
        const cell = document.createElement('td');
        cell.textContent = text;
        row.append(cell);
      }
      return row;
    }),
  );
}

function showRinging(call: Call | null): void {
  ringing = call;
  $('ringing').hidden = call === null;
  if (call) void renderContext($('ringing-context'), call).catch(report);
}

async function answer(): Promise<void> {
  const call = ringing;
  if (!call) return;
  showRinging(null);
  const session = await sdk.calls.answer(call.id);
  $('call-context-panel').hidden = false;
  await renderContext($('call-context'), session.call);
  panel.show(session, () => {
    void Promise.all([refreshHistory(), showAvailability(), refreshQueue()]).catch(report);
  });
}

async function main(): Promise<void> {
  me = await signIn(report);
  if (!me) return;
  $('me').textContent = `${me.displayName} (${me.roles.join(', ')})`;
  $('desk').hidden = false;
  $('go-online').addEventListener('click', () => {
    sdk.calls.setAvailability('online').then(showAvailability, report);
  });
  $('go-away').addEventListener('click', () => {
    sdk.calls.setAvailability('away').then(showAvailability, report);
  });
  $('answer').addEventListener('click', () => {
    notice('');
    answer().catch(report);
  });
  $('reject').addEventListener('click', () => {
    const call = ringing;
    showRinging(null);
    if (call) sdk.calls.reject(call.id).then(refreshHistory, report);
  });

  await sdk.calls.watchIncoming(me.id, ({ type, call }) => {
    if (type === 'ringing' && !panel.active) showRinging(call);
    else if (ringing?.id === call.id && call.status !== 'ringing') showRinging(null);
    void Promise.all([refreshQueue(), showAvailability()]).catch(report);
  });
  // A call that started ringing while this page was loading.
  const recent = await sdk.calls.history({ limit: 5 });
  const waiting = recent.find((c) => c.status === 'ringing' && c.agentId === me?.id);
  if (waiting && !ringing) showRinging(waiting);
  await Promise.all([showAvailability(), refreshQueue(), refreshHistory()]);
  setInterval(() => void refreshQueue().catch(() => undefined), QUEUE_REFRESH_MS);
}

main().catch(report);
