// The board's state and every rule about it that is not drawing: which visits and alerts
// there are, how they sort, filter and count. Pure functions and one small store; no DOM,
// so that node can test them too (tests/dashboard/model.test.mjs).

/** Visit states in the order of a day, with the word the board shows beside the icon. */
export const VISIT_STATES = [
  ['scheduled', 'Scheduled'],
  ['late', 'Late'],
  ['missed', 'Missed'],
  ['in_progress', 'In progress'],
  ['overrunning', 'Overrunning'],
  ['completed', 'Completed'],
  ['no_checkout', 'No check-out'],
  ['cancelled', 'Cancelled'],
];
const STATE_WORDS = new Map(VISIT_STATES);

export function stateWord(state) {
  return STATE_WORDS.get(state) ?? String(state);
}

const SEVERITY_RANK = { critical: 0, warning: 1, info: 2 };
export const SEVERITY_WORDS = { critical: 'Critical', warning: 'Warning', info: 'Info' };

export const ALERT_KIND_WORDS = {
  at_risk: 'At risk',
  late: 'Late',
  missed: 'Missed',
  overrunning: 'Overrunning',
  no_checkout: 'No check-out',
  short_visit: 'Short visit',
  outside_geofence: 'Outside geofence',
  double_up_incomplete: 'Double-up incomplete',
};

export const FLAG_WORDS = {
  outside_geofence: 'Checked in outside the geofence',
  short: 'Short visit',
  late_arrival: 'Arrived late',
  device_time_skew: "Phone's clock was off",
  manual: 'Times entered by the office',
  double_up_incomplete: 'Double-up incomplete',
  tag_mismatch: 'Tag did not match the client',
};

export const LATE_CAUSE_WORDS = {
  previous_overrun: 'still at (or late from) the previous visit',
  running_late: 'the carer said they are running late',
};

export const RESOLUTION_WORDS = {
  checked_in: 'carer checked in',
  checked_out: 'carer checked out',
  synced_late: 'phone synced late; carer was on time',
  cancelled: 'visit cancelled',
  reassigned: 'visit reassigned',
  rescheduled: 'visit rescheduled',
  on_track: 'carer back on time',
  user: 'resolved by the office',
};

export function isOpen(alert) {
  return alert.state === 'triggered' || alert.state === 'acknowledged';
}

/** Open alerts first by severity (critical, warning, info), then oldest first, then id. */
export function compareAlerts(a, b) {
  const s = (SEVERITY_RANK[a.severity] ?? 9) - (SEVERITY_RANK[b.severity] ?? 9);
  if (s !== 0) return s;
  const t = Date.parse(a.raised_at) - Date.parse(b.raised_at);
  if (t !== 0) return t;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

export function compareVisits(a, b) {
  const t = Date.parse(a.start) - Date.parse(b.start);
  if (t !== 0) return t;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/** The carers' rows of the timeline, sorted; visits nobody is assigned to get their own row. */
export const UNASSIGNED = '';
export function carerRows(visits) {
  const rows = new Map();
  for (const v of visits) {
    const carers = v.carers.length ? v.carers : [UNASSIGNED];
    for (const c of carers) {
      if (!rows.has(c)) rows.set(c, []);
      rows.get(c).push(v);
    }
  }
  const ids = [...rows.keys()].sort((a, b) => {
    if (a === UNASSIGNED) return 1;
    if (b === UNASSIGNED) return -1;
    return a.localeCompare(b, undefined, { numeric: true });
  });
  return ids.map((id) => ({ carer: id, visits: rows.get(id).sort(compareVisits) }));
}

/**
 * Filters: branch ('' all), state ('' all), carer ('' all), and a search text matched
 * (case-insensitively) against the client, the carers, the visit id, the type and the notes.
 */
export function visitMatches(v, f) {
  if (f.branch && v.branch !== f.branch) return false;
  if (f.state && v.state !== f.state) return false;
  if (f.carer && !v.carers.includes(f.carer)) return false;
  const q = (f.search ?? '').trim().toLowerCase();
  if (!q) return true;
  const hay = [v.id, v.client?.name, v.client?.id, v.type, v.notes, ...v.carers]
    .filter(Boolean)
    .join('\n')
    .toLowerCase();
  return q.split(/\s+/).every((word) => hay.includes(word));
}

/** Alerts follow the same branch and carer filters, and the search over their text. */
export function alertMatches(a, f, visit) {
  if (f.branch && a.branch !== f.branch) return false;
  if (f.carer && a.carer !== f.carer && !(visit?.carers ?? []).includes(f.carer)) return false;
  const q = (f.search ?? '').trim().toLowerCase();
  if (!q) return true;
  const hay = [a.id, a.visit, a.carer, a.client, a.summary, a.kind, visit?.client?.name]
    .filter(Boolean)
    .join('\n')
    .toLowerCase();
  return q.split(/\s+/).every((word) => hay.includes(word));
}

/**
 * The day's headline counts, by the punctuality report's rules (docs/protocol.md): a visit
 * checked in is on time or late by its `late_arrival` flag; one not checked in is missed,
 * late or still pending by its state. Cancelled visits count for nothing but themselves.
 */
export function dayCounters(visits) {
  const c = {
    visits: 0, on_time: 0, late: 0, missed: 0, pending: 0, cancelled: 0,
    in_progress: 0, completed: 0, short: 0, on_time_pct: null,
  };
  for (const v of visits) {
    if (v.state === 'cancelled') {
      c.cancelled++;
      continue;
    }
    c.visits++;
    if (v.check_ins.length) {
      if (v.flags.includes('late_arrival')) c.late++;
      else c.on_time++;
    } else if (v.state === 'missed') {
      c.missed++;
    } else if (v.state === 'late') {
      c.late++;
    } else {
      c.pending++;
    }
    if (v.state === 'completed') c.completed++;
    if (v.state === 'in_progress' || v.state === 'overrunning' || v.state === 'no_checkout') {
      c.in_progress++;
    }
    if (v.flags.includes('short')) c.short++;
  }
  const decided = c.on_time + c.late + c.missed;
  c.on_time_pct = decided ? Math.round((1000 * c.on_time) / decided) / 10 : null;
  return c;
}

/**
 * Lateness through the day: for each hour of scheduled starts (local time: hourOf(ms, visit)
 * says which), how many visits were on time, late or missed so far, and the mean minutes
 * late of those that arrived.
 */
export function latenessByHour(visits, hourOf) {
  const hours = new Map();
  for (const v of visits) {
    if (v.state === 'cancelled') continue;
    const h = hourOf(Date.parse(v.start), v);
    if (!hours.has(h)) hours.set(h, { hour: h, on_time: 0, late: 0, missed: 0, pending: 0, late_s: 0, arrived: 0 });
    const b = hours.get(h);
    if (v.check_ins.length) {
      b.arrived++;
      b.late_s += v.late_by_s ?? 0;
      if (v.flags.includes('late_arrival')) b.late++;
      else b.on_time++;
    } else if (v.state === 'missed') b.missed++;
    else if (v.state === 'late') b.late++;
    else b.pending++;
  }
  return [...hours.values()]
    .sort((a, b) => a.hour - b.hour)
    .map((b) => ({ ...b, mean_late_min: b.arrived ? b.late_s / b.arrived / 60 : null }));
}

/**
 * The board's data: visits and alerts by id, replaced by a snapshot and changed by deltas.
 * A delta older than what is held (by `seq` for alerts) is ignored: after a reconnect the
 * snapshot is the truth.
 */
export class BoardState {
  constructor() {
    this.visits = new Map();
    this.alerts = new Map();
    this.serverOffsetMs = 0;
    this.snapshotAt = null;
    // A daemon on a demo clock says how fast it runs (`clock_rate`, demo seconds per real
    // second); the board's time then runs from the snapshot's server_time at that rate.
    this.clockRate = 1;
    this.anchor = null;
  }

  applySnapshot(msg, receivedAtMs = Date.now()) {
    this.visits = new Map(msg.visits.map((v) => [v.id, v]));
    this.alerts = new Map(msg.alerts.map((a) => [a.id, a]));
    // server_time has whole seconds: it says the server's clock was in [t, t + 1 s). Only a
    // difference beyond that (a machine with a wrong clock) is corrected.
    const server = Date.parse(msg.server_time);
    const offset = Number.isFinite(server) ? server + 500 - receivedAtMs : 0;
    this.serverOffsetMs = Math.abs(offset) < 1500 ? 0 : offset;
    this.snapshotAt = server;
    const rate = Number(msg.clock_rate);
    this.clockRate = Number.isFinite(rate) && rate > 0 ? rate : 1;
    this.anchor = this.clockRate !== 1 && Number.isFinite(server) ? { server, real: receivedAtMs } : null;
  }

  /** Returns the visit as it was before (undefined when new). */
  applyVisit(v) {
    const before = this.visits.get(v.id);
    this.visits.set(v.id, v);
    return before;
  }

  /** Returns false when the delta is older than the alert held, and is ignored. */
  applyAlert(a) {
    const held = this.alerts.get(a.id);
    if (held && typeof held.seq === 'number' && typeof a.seq === 'number' && a.seq < held.seq) {
      return false;
    }
    this.alerts.set(a.id, a);
    return true;
  }

  now(realNowMs = Date.now()) {
    if (this.anchor) return this.anchor.server + (realNowMs - this.anchor.real) * this.clockRate;
    return realNowMs + this.serverOffsetMs;
  }

  openAlerts() {
    return [...this.alerts.values()].filter(isOpen).sort(compareAlerts);
  }

  alertsOfVisit(visitId) {
    return [...this.alerts.values()].filter((a) => a.visit === visitId);
  }

  branches() {
    const set = new Set();
    for (const v of this.visits.values()) set.add(v.branch);
    for (const a of this.alerts.values()) set.add(a.branch);
    return [...set].sort();
  }
}

/**
 * Who was paged about an alert (its `notified` list, pages only): the receivers in the order
 * first paged, and when the last page went out; null when nobody was.
 */
export function pagedBy(alert) {
  const pages = (alert.notified ?? []).filter((n) => n.transition === 'triggered' || n.transition === 'escalated');
  if (!pages.length) return null;
  const names = [...new Set(pages.map((n) => n.receiver))];
  return { names, last: pages[pages.length - 1].at };
}

/** "4s", "12 min", "1 h 05 min": an alert's age, to the second while it is young. */
export function formatAge(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${String(s % 60).padStart(2, '0')}s`;
  const h = Math.floor(m / 60);
  return `${h} h ${String(m % 60).padStart(2, '0')} min`;
}

/** Minutes for people: "on time", "3 min", "1 h 20 min". */
export function formatMinutes(seconds) {
  const m = Math.round(seconds / 60);
  if (m < 60) return `${m} min`;
  return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, '0')} min`;
}

/** Carer ids typed by a person: separated by commas, semicolons or spaces, no duplicates. */
export function parseCarerList(text) {
  const out = [];
  for (const id of String(text).split(/[\s,;]+/)) {
    if (id && !out.includes(id)) out.push(id);
  }
  return out;
}

/** The claims of a JWT, unverified (the server verifies; the board only shows them). */
export function tokenClaims(token) {
  try {
    const part = String(token).split('.')[1];
    const b64 = part.replace(/-/g, '+').replace(/_/g, '/');
    const json = decodeURIComponent(
      Array.from(atob(b64), (ch) => '%' + ch.charCodeAt(0).toString(16).padStart(2, '0')).join(''),
    );
    const claims = JSON.parse(json);
    return claims && typeof claims === 'object' ? claims : null;
  } catch {
    return null;
  }
}
