// The board WebSocket (/ws/board): first-message auth, the snapshot, deltas, and the alert
// commands answered by `ok` or `error`. Reconnects by itself with a growing, jittered delay
// and takes a fresh snapshot each time; a refused token stops it (retrying cannot help).

const BACKOFF_S = [1, 2, 4, 8, 15, 30];
/** A socket that opened but brought no snapshot by then is given up and retried. */
const SNAPSHOT_TIMEOUT_MS = 10000;
/** A command unanswered by then is reported as such (its outcome is unknown). */
const COMMAND_TIMEOUT_MS = 10000;

export class CommandError extends Error {
  constructor(code, message) {
    super(message);
    this.name = 'CommandError';
    this.code = code;
  }

  get plain() {
    return `${this.message} (${this.code})`;
  }
}

export class LiveConnection {
  /**
   * handlers: onSnapshot(msg), onVisit(visit), onAlert(alert),
   * onStatus({state: 'connecting'|'live'|'down'|'refused', attempt, retryAt, reason}),
   * onRefused(message): the token was refused; no more retries.
   */
  constructor(url, token, handlers) {
    this.url = url;
    this.token = token;
    this.h = handlers;
    this.ws = null;
    this.attempt = 0;
    this.retryTimer = null;
    this.snapshotTimer = null;
    this.stopped = true;
    this.live = false;
    this.pending = new Map(); // request id -> {alert, resolve, reject, timer}
    this.nextId = 1;
    this.lastError = null;
    this.onOnline = () => {
      if (!this.live && !this.stopped) this.reconnectNow();
    };
  }

  start() {
    this.stopped = false;
    window.addEventListener('online', this.onOnline);
    this.connect();
  }

  stop() {
    this.stopped = true;
    window.removeEventListener('online', this.onOnline);
    clearTimeout(this.retryTimer);
    clearTimeout(this.snapshotTimer);
    this.failPending('the board was closed');
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.onclose = null;
      ws.close(1000, 'bye');
    }
    this.live = false;
  }

  /** Drops the socket (if any) and connects at once: "Reconnect now", a new day. */
  reconnectNow() {
    if (this.stopped) return;
    clearTimeout(this.retryTimer);
    clearTimeout(this.snapshotTimer);
    this.attempt = 0;
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.onclose = null;
      ws.close(1000, 'reconnecting');
      this.failPending('the board reconnected before visitd answered; check the alert and try again');
    }
    this.connect();
  }

  connect() {
    if (this.stopped) return;
    clearTimeout(this.retryTimer);
    this.live = false;
    this.lastError = null;
    this.status({ state: 'connecting', attempt: this.attempt });
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch (e) {
      this.wentDown(`could not open ${this.url}: ${e.message}`);
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      ws.send(JSON.stringify({ type: 'auth', token: this.token }));
      this.snapshotTimer = setTimeout(() => {
        if (this.ws === ws && !this.live) ws.close(4000, 'no snapshot');
      }, SNAPSHOT_TIMEOUT_MS);
    };
    ws.onmessage = (e) => {
      if (this.ws === ws) this.onMessage(e.data);
    };
    ws.onerror = () => {
      // The close event follows with the details there are; nothing to add here.
    };
    ws.onclose = (e) => {
      if (this.ws !== ws) return;
      this.ws = null;
      clearTimeout(this.snapshotTimer);
      const refused = this.lastError && ['unauthenticated', 'forbidden'].includes(this.lastError.code);
      if (refused) {
        this.live = false;
        this.failPending('the connection was closed');
        this.status({ state: 'refused', reason: this.lastError.message });
        this.h.onRefused?.(this.lastError.message);
        this.stopped = true;
        return;
      }
      const why = e.code === 1001 ? 'visitd is restarting' : e.code === 1006 ? 'the connection dropped' : (e.reason || `closed (${e.code})`);
      this.wentDown(why);
    };
  }

  wentDown(reason) {
    this.live = false;
    this.failPending('the connection was lost before visitd answered; check the alert and try again');
    if (this.stopped) return;
    const base = BACKOFF_S[Math.min(this.attempt, BACKOFF_S.length - 1)] * 1000;
    const delay = Math.round(base * (0.8 + Math.random() * 0.4));
    this.attempt++;
    const retryAt = Date.now() + delay;
    this.status({ state: 'down', attempt: this.attempt, retryAt, reason });
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  onMessage(data) {
    let msg;
    try {
      msg = JSON.parse(data);
    } catch {
      return; // not ours to repair; visitd only sends JSON
    }
    switch (msg.type) {
      case 'snapshot':
        clearTimeout(this.snapshotTimer);
        this.live = true;
        this.attempt = 0;
        this.h.onSnapshot(msg);
        this.status({ state: 'live' });
        break;
      case 'visit':
        if (this.live) this.h.onVisit(msg.visit);
        break;
      case 'alert':
        if (this.live) this.h.onAlert(msg.alert);
        break;
      case 'ok':
        this.settle(msg, null);
        break;
      case 'error': {
        // An answer to a command goes to it; any other error (auth, expiry) is kept for the
        // close that follows, which tells a refused token from a dropped line.
        const err = new CommandError(msg.code, msg.message);
        if (!this.settle(msg, err)) this.lastError = { code: msg.code, message: msg.message };
        break;
      }
      default:
        break;
    }
  }

  /** Resolves (or rejects) the command an answer belongs to; false when none does. */
  settle(msg, error) {
    let key = null;
    if (msg.id && this.pending.has(msg.id)) {
      key = msg.id;
    } else if (!error && msg.ref) {
      for (const [k, p] of this.pending) {
        if (p.alert === msg.ref) { key = k; break; }
      }
    } else if (error && !msg.id) {
      key = this.pending.keys().next().value ?? null;
    }
    if (key === null) return false;
    const p = this.pending.get(key);
    this.pending.delete(key);
    clearTimeout(p.timer);
    if (error) p.reject(error);
    else p.resolve(msg);
    return true;
  }

  failPending(message) {
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(new CommandError('not_connected', message));
    }
    this.pending.clear();
  }

  /** ack_alert / resolve_alert; resolves with the `ok`, rejects with a CommandError. */
  command(type, alert, note) {
    if (!this.live || !this.ws || this.ws.readyState !== WebSocket.OPEN) {
      return Promise.reject(new CommandError('not_connected', 'the board is not connected to visitd; wait for it to reconnect'));
    }
    // `id` is not part of the board's contract; visitd echoes it in an error, which lets the
    // board tell which command an error answers.
    const id = `b${Date.now().toString(36)}-${this.nextId++}`;
    const message = { type, alert, id };
    if (note) message.note = note;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new CommandError('timeout', 'visitd did not answer in time; the alert may or may not have changed'));
      }, COMMAND_TIMEOUT_MS);
      this.pending.set(id, { alert, resolve, reject, timer });
      this.ws.send(JSON.stringify(message));
    });
  }

  status(s) {
    this.h.onStatus?.(s);
  }
}
