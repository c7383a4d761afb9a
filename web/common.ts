/**
 * What every web app shares: the SDK set up with the stored sign-in, the
 * sign-in form, notices, and error wording by the server's stable codes.
 */
import { isErrorCode, LiveCommerce, LiveCommerceError } from '../client-sdk/src/index.js';

export interface Me {
  id: string;
  displayName: string;
  roles: string[];
}

const TOKEN_KEY = 'lc.token';

export const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;

export const sdk = new LiveCommerce({ token: () => localStorage.getItem(TOKEN_KEY) });

export const money = (minor: number | null, currency: string) =>
  minor === null ? '' : new Intl.NumberFormat(undefined, { style: 'currency', currency }).format(minor / 100);

/** Shows `text` in the page's `#notice` (an ARIA alert). */
export function notice(text: string): void {
  $('notice').textContent = text;
}

/** Words for an error: `specific` first (an app's own codes), then the ones every app meets. */
export function explain(err: unknown, specific?: (err: unknown) => string | undefined): string {
  const own = specific?.(err);
  if (own) return own;
  if (isErrorCode(err, 'UNAUTHENTICATED', 'TOKEN_EXPIRED', 'TOKEN_INVALID')) return 'Sign in first.';
  if (isErrorCode(err, 'MEDIA_DEVICE'))
    return 'No camera or microphone (or not allowed): the call goes on without them.';
  if (isErrorCode(err, 'CALLS_DISABLED')) return 'Video calls are not available right now.';
  if (err instanceof LiveCommerceError) return `${err.message} (${err.code})`;
  return 'Something went wrong.';
}

/**
 * Fills and wires the page's `#login` form (`#email`, `#password`) and resolves with the signed-in user, or
 * null when nobody is (the form stays visible; signing in reloads the page).
 */
export async function signIn(onError: (err: unknown) => void): Promise<Me | null> {
  $('login').innerHTML = `
    <input id="email" type="email" autocomplete="email" placeholder="Email" aria-label="Email" required />
    <input id="password" type="password" autocomplete="current-password" placeholder="Password" aria-label="Password" required />
    <button type="submit">Sign in</button>`;
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
      onError(err);
    }
  });
  const me = localStorage.getItem(TOKEN_KEY)
    ? await sdk.http.request<Me>('GET', '/v1/auth/me').catch(() => null)
    : null;
  if (!me) localStorage.removeItem(TOKEN_KEY);
  $('login').hidden = me !== null;
  return me;
}
