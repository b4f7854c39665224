// Times as the office reads them: 24-hour clock, in a branch's IANA time zone (from
// GET /api/branches), so that a board opened in another zone still shows the times the
// carers and clients live by. A `zone` left undefined means the browser's own zone.

const formats = new Map(); // options key + zone -> Intl.DateTimeFormat (they are costly to make)

function format(key, options, zone) {
  const k = `${key}|${zone ?? ''}`;
  let f = formats.get(k);
  if (!f) {
    f = new Intl.DateTimeFormat(key === 'parts' ? 'en-US' : undefined, { ...options, timeZone: zone || undefined });
    formats.set(k, f);
  }
  return f;
}

const HM = { hour: '2-digit', minute: '2-digit', hourCycle: 'h23' };
const HMS = { ...HM, second: '2-digit' };
const DAY_LONG = { weekday: 'long', day: 'numeric', month: 'long', year: 'numeric' };
const PARTS = { year: 'numeric', month: 'numeric', day: 'numeric', ...HMS };

function toDate(t) {
  return t instanceof Date ? t : new Date(typeof t === 'number' ? t : Date.parse(t));
}

const missing = (t) => t === null || t === undefined || t === '';

export function clock(t, zone) {
  return missing(t) ? '—' : format('hm', HM, zone).format(toDate(t));
}

export function clockSeconds(t, zone) {
  return missing(t) ? '—' : format('hms', HMS, zone).format(toDate(t));
}

/**
 * The header's clock: the board's time in the zone and, on a demo clock (a snapshot's
 * `clock_rate` other than 1), a tag saying so, so that nobody takes the demo's 10:40 for the
 * time of day. Seconds only while they can be read: on a fast demo clock they would blur.
 */
export function boardClock(t, rate = 1, zone) {
  const demo = Number.isFinite(rate) && rate > 0 && rate !== 1;
  return {
    time: demo && rate >= 10 ? clock(t, zone) : clockSeconds(t, zone),
    tag: demo ? `demo ×${Number(rate.toPrecision(3))}` : '',
  };
}

export function longDay(t, zone) {
  return format('day', DAY_LONG, zone).format(toDate(t));
}

/** The wall-clock fields of t in the zone: {year, month (1-12), day, hour, minute, second}. */
export function wallTime(t, zone) {
  const out = {};
  for (const p of format('parts', PARTS, zone).formatToParts(toDate(t))) {
    if (p.type !== 'literal') out[p.type] = Number(p.value);
  }
  out.hour %= 24; // some engines say 24 for midnight even with h23
  return out;
}

/** How far the zone's wall clock is ahead of UTC at t, in ms. */
function offsetMs(t, zone) {
  const w = wallTime(t, zone);
  const asUtc = Date.UTC(w.year, w.month - 1, w.day, w.hour, w.minute, w.second);
  return asUtc - Math.floor(toDate(t).getTime() / 1000) * 1000;
}

/** The calendar date of t in the zone as YYYY-MM-DD (what the API's `date` parameter takes). */
export function isoDate(t, zone) {
  const w = wallTime(t, zone);
  const pad = (n) => String(n).padStart(2, '0');
  return `${w.year}-${pad(w.month)}-${pad(w.day)}`;
}

/** Midnight at the start of the zone's day holding t, in ms. */
export function startOfDay(t, zone) {
  const w = wallTime(t, zone);
  const midnight = Date.UTC(w.year, w.month - 1, w.day);
  // The offset at t may not be the offset at midnight (a DST change in between): ask again.
  const guess = midnight - offsetMs(t, zone);
  return midnight - offsetMs(guess, zone);
}

/** The start of the zone's hour holding t, in ms (zones a half hour off UTC included). */
export function startOfHour(t, zone) {
  const ms = toDate(t).getTime();
  const w = wallTime(ms, zone);
  return Math.floor(ms / 1000) * 1000 - (w.minute * 60 + w.second) * 1000;
}

/** The hour (0-23) of t in the zone: what the lateness chart groups by. */
export function localHour(t, zone) {
  return wallTime(t, zone).hour;
}

/** The browser's own zone, to tell whether a branch's differs. */
export function browserZone() {
  return new Intl.DateTimeFormat().resolvedOptions().timeZone;
}
