// The HTTP API with the bearer token; failures become ApiError with the server's own code
// and message (docs/protocol.md: {"error":{"code","message","details"}}).

export class ApiError extends Error {
  constructor(status, code, message, details = []) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.details = details;
  }

  /** One plain sentence for a person, with the code for whoever they call. */
  get plain() {
    const extra = this.details?.length
      ? ' ' + this.details.map((d) => (d.line ? `line ${d.line}: ` : '') + (d.message ?? '')).join('; ')
      : '';
    return `${this.message}${extra}${this.code ? ` (${this.code})` : ''}`;
  }
}

let token = null;
let onUnauthorized = () => {};

export function configure(options) {
  token = options.token;
  onUnauthorized = options.onUnauthorized ?? onUnauthorized;
}

/**
 * fetch with the token. `accept: 'text/csv'` answers a Blob (and the response's file name);
 * otherwise the parsed JSON.
 */
export async function request(method, path, { body, accept } = {}) {
  const headers = { Authorization: `Bearer ${token}` };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (accept) headers.Accept = accept;
  let res;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
      credentials: 'omit',
    });
  } catch (e) {
    throw new ApiError(0, 'network', `visitd could not be reached (${e.message})`);
  }
  if (!res.ok) {
    let code = `http_${res.status}`;
    let message = `visitd answered ${res.status} ${res.statusText}`.trim();
    let details = [];
    try {
      const doc = await res.json();
      if (doc?.error) {
        code = doc.error.code ?? code;
        message = doc.error.message ?? message;
        details = doc.error.details ?? [];
      }
    } catch {
      // not JSON: keep the status line
    }
    const err = new ApiError(res.status, code, message, details);
    if (res.status === 401) onUnauthorized(err);
    throw err;
  }
  if (accept === 'text/csv') {
    const disposition = res.headers.get('Content-Disposition') ?? '';
    const name = disposition.match(/filename="?([^";]+)"?/)?.[1] ?? null;
    return { blob: await res.blob(), name };
  }
  return res.json();
}

const enc = encodeURIComponent;

export const api = {
  branches: () => request('GET', '/api/branches'),
  visit: (id) => request('GET', `/api/visits/${enc(id)}`),
  reassign: (id, carers) => request('POST', `/api/visits/${enc(id)}/reassign`, { body: { carers } }),
  cancel: (id, reason) => request('POST', `/api/visits/${enc(id)}/cancel`, { body: { reason } }),
  alerts: (branch, state = 'all') =>
    request('GET', `/api/alerts?state=${enc(state)}${branch ? `&branch=${enc(branch)}` : ''}`),
  punctuality: (branch, date) =>
    request('GET', `/api/reports/punctuality?branch=${enc(branch)}&date=${enc(date)}`),
  punctualityCsv: (branch, date) =>
    request('GET', `/api/reports/punctuality?branch=${enc(branch)}&date=${enc(date)}`, { accept: 'text/csv' }),
};
