// Times as the office reads them: the browser's local time, 24-hour clock.

const hm = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
const hms = new Intl.DateTimeFormat(undefined, {
  hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23',
});
const dayLong = new Intl.DateTimeFormat(undefined, { weekday: 'long', day: 'numeric', month: 'long', year: 'numeric' });

function toDate(t) {
  return t instanceof Date ? t : new Date(typeof t === 'number' ? t : Date.parse(t));
}

export function clock(t) {
  if (t === null || t === undefined || t === '') return '—';
  return hm.format(toDate(t));
}

export function clockSeconds(t) {
  if (t === null || t === undefined || t === '') return '—';
  return hms.format(toDate(t));
}

export function longDay(t) {
  return dayLong.format(toDate(t));
}

/** The local calendar date as YYYY-MM-DD (what the API's `date` parameter takes). */
export function isoDate(t) {
  const d = toDate(t);
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

/** Local midnight at the start of the day holding t, in ms. */
export function startOfDay(t) {
  const d = toDate(t);
  return new Date(d.getFullYear(), d.getMonth(), d.getDate()).getTime();
}

/** The local hour (0-23) of t: what the lateness chart groups by. */
export function localHour(t) {
  return toDate(t).getHours();
}
