// The access token: from the address's fragment (#token=..., which browsers never send to
// the server, so it is never logged), else from this tab's sessionStorage, else the sign-in
// box. Kept in sessionStorage only: closing the tab forgets it.

const KEY = 'visitd.token';

/** The token to start with, moving one found in the fragment into sessionStorage. */
export function initialToken() {
  const fragment = new URLSearchParams(location.hash.replace(/^#/, ''));
  const fromUrl = fragment.get('token');
  if (fromUrl) {
    save(fromUrl.trim());
    fragment.delete('token');
    const rest = fragment.toString();
    // The token leaves the address bar (and the history entry), so that it is not shared
    // by copying the address or left in the browser's history.
    history.replaceState(history.state, '', location.pathname + location.search + (rest ? `#${rest}` : ''));
  }
  try {
    return sessionStorage.getItem(KEY) || null;
  } catch {
    return fromUrl || null;
  }
}

export function save(token) {
  try {
    sessionStorage.setItem(KEY, token);
  } catch {
    // Storage disabled: the token lives as long as the page.
  }
}

export function forget() {
  try {
    sessionStorage.removeItem(KEY);
  } catch {
    // nothing kept
  }
}

/** A pasted token, tidied: whitespace, a "Bearer " prefix or a whole #token=... fragment. */
export function cleanPasted(text) {
  let t = String(text).trim();
  const m = t.match(/[#&]token=([^&\s]+)/);
  if (m) t = decodeURIComponent(m[1]);
  t = t.replace(/^Bearer\s+/i, '').replace(/\s+/g, '');
  return t;
}
