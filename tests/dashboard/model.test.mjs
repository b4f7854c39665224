// The board's rules that need no browser: sorting, filtering, counting, deltas, and times
// in a branch's zone.
//   node --test tests/dashboard/model.test.mjs

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  BoardState, compareAlerts, carerRows, visitMatches, alertMatches, dayCounters,
  latenessByHour, formatAge, parseCarerList, tokenClaims, UNASSIGNED, pagedBy,
} from '../../dashboard/js/model.js';
import {
  clock, clockSeconds, isoDate, startOfDay, startOfHour, localHour, boardClock,
} from '../../dashboard/js/time.js';
import {
  setBranches, branchZone, branchLabel, boardZone, zoneNote,
} from '../../dashboard/js/branches.js';

const visit = (id, extra = {}) => ({
  id, branch: 'B1', client: { id: `CL-${id}`, name: `Client ${id}` }, carers: ['C1'],
  start: '2026-11-23T09:00:00Z', end: '2026-11-23T09:30:00Z', type: 'personal_care',
  time_critical: false, state: 'scheduled', flags: [], check_ins: [], check_outs: [],
  late_by_s: 0, notes: '', eta: null, eta_reason: '', cancel_reason: '', ...extra,
});
const alert = (id, severity, raisedAt, extra = {}) => ({
  id, key: `visit/V/${id}`, kind: 'late', severity, state: 'triggered', visit: 'V1', branch: 'B1',
  carer: 'C1', client: 'CL1', raised_at: raisedAt, seq: 1, summary: `alert ${id}`, escalation_level: 0, ...extra,
});
const arrived = (at = '2026-11-23T09:01:00Z') => [{ carer: 'C1', at, received_at: at, distance_m: 5, method: 'gps' }];

test('open alerts sort by severity, then oldest first', () => {
  const sorted = [
    alert('A1', 'info', '2026-11-23T08:00:00Z'),
    alert('A2', 'warning', '2026-11-23T09:10:00Z'),
    alert('A3', 'critical', '2026-11-23T09:20:00Z'),
    alert('A4', 'warning', '2026-11-23T09:05:00Z'),
    alert('A5', 'critical', '2026-11-23T09:00:00Z'),
  ].sort(compareAlerts).map((a) => a.id);
  assert.deepEqual(sorted, ['A5', 'A3', 'A4', 'A2', 'A1']);
});

test('a double-up is drawn in each carer\'s row; unassigned visits come last', () => {
  const rows = carerRows([
    visit('V2', { carers: ['C10', 'C2'], start: '2026-11-23T10:00:00Z' }),
    visit('V1', { carers: ['C2'] }),
    visit('V3', { carers: [] }),
  ]);
  assert.deepEqual(rows.map((r) => r.carer), ['C2', 'C10', UNASSIGNED]);
  assert.deepEqual(rows[0].visits.map((v) => v.id), ['V1', 'V2'], 'in time order');
});

test('filters: branch, state, carer, and every word of the search', () => {
  const v = visit('V7', { branch: 'B2', carers: ['C3', 'C4'], notes: 'Key safe by the back door', state: 'late' });
  assert.ok(visitMatches(v, { branch: 'B2', state: 'late', carer: 'C4', search: 'BACK key' }));
  assert.ok(!visitMatches(v, { branch: 'B1' }));
  assert.ok(!visitMatches(v, { state: 'missed' }));
  assert.ok(!visitMatches(v, { carer: 'C1' }));
  assert.ok(!visitMatches(v, { search: 'front door' }));
  assert.ok(visitMatches(v, { search: '  ' }));
  const a = alert('A1', 'warning', '2026-11-23T09:00:00Z', { carer: 'C3', summary: 'C3 has not checked in at Mrs A' });
  assert.ok(alertMatches(a, { carer: 'C4' }, v), 'the other carer of the double-up');
  assert.ok(alertMatches(a, { search: 'mrs a' }, v));
  assert.ok(!alertMatches(a, { branch: 'B2' }, v));
});

test('day counters follow the punctuality report\'s rules', () => {
  const c = dayCounters([
    visit('on-time', { state: 'completed', check_ins: arrived(), check_outs: arrived() }),
    visit('late-arrival', { state: 'in_progress', check_ins: arrived(), flags: ['late_arrival'] }),
    visit('late-now', { state: 'late' }),
    visit('missed', { state: 'missed' }),
    visit('short', { state: 'completed', check_ins: arrived(), check_outs: arrived(), flags: ['short'] }),
    visit('overrun', { state: 'overrunning', check_ins: arrived() }),
    visit('pending', { state: 'scheduled' }),
    visit('cancelled', { state: 'cancelled' }),
  ]);
  assert.equal(c.visits, 7);
  assert.equal(c.on_time, 3);
  assert.equal(c.late, 2);
  assert.equal(c.missed, 1);
  assert.equal(c.pending, 1);
  assert.equal(c.completed, 2);
  assert.equal(c.in_progress, 2);
  assert.equal(c.short, 1);
  assert.equal(c.cancelled, 1);
  assert.equal(c.on_time_pct, 50);
  assert.equal(dayCounters([visit('p')]).on_time_pct, null, 'nothing due yet: no percentage');
});

test('lateness by hour groups visits by their start hour', () => {
  const hourOf = (ms) => new Date(ms).getUTCHours();
  const buckets = latenessByHour([
    visit('a', { check_ins: arrived(), late_by_s: 60 }),
    visit('b', { check_ins: arrived(), flags: ['late_arrival'], late_by_s: 1260 }),
    visit('c', { start: '2026-11-23T11:00:00Z', state: 'missed' }),
    visit('d', { start: '2026-11-23T11:30:00Z', state: 'cancelled' }),
  ], hourOf);
  assert.deepEqual(buckets.map((b) => [b.hour, b.on_time, b.late, b.missed]), [[9, 1, 1, 0], [11, 0, 0, 1]]);
  assert.equal(buckets[0].mean_late_min, 11);
});

test('deltas: an older alert seq is ignored; the server clock offsets "now"', () => {
  const s = new BoardState();
  s.applySnapshot({ server_time: '2026-11-23T09:00:10Z', visits: [visit('V1')], alerts: [alert('A1', 'warning', '2026-11-23T09:00:00Z', { seq: 5 })] },
    Date.parse('2026-11-23T09:00:00Z'));
  assert.equal(s.now(Date.parse('2026-11-23T09:00:00Z')), Date.parse('2026-11-23T09:00:10.500Z'));
  const close = new BoardState();
  close.applySnapshot({ server_time: '2026-11-23T09:00:00Z', visits: [], alerts: [] }, Date.parse('2026-11-23T09:00:00.900Z'));
  assert.equal(close.now(1000), 1000, 'within the second server_time is rounded to: no correction');
  assert.equal(s.applyAlert(alert('A1', 'warning', '2026-11-23T09:00:00Z', { seq: 4, state: 'resolved' })), false);
  assert.equal(s.alerts.get('A1').state, 'triggered');
  assert.ok(s.applyAlert(alert('A1', 'critical', '2026-11-23T09:00:00Z', { seq: 6 })));
  assert.equal(s.openAlerts()[0].severity, 'critical');
  s.applyAlert(alert('A1', 'critical', '2026-11-23T09:00:00Z', { seq: 7, state: 'resolved' }));
  assert.deepEqual(s.openAlerts(), []);
  const before = s.applyVisit(visit('V1', { state: 'late' }));
  assert.equal(before.state, 'scheduled');
  assert.equal(s.visits.get('V1').state, 'late');
});

test('a demo clock: the board\'s time runs from server_time at clock_rate', () => {
  const s = new BoardState();
  const received = Date.parse('2026-12-02T18:00:00Z');
  s.applySnapshot({ server_time: '2026-12-02T07:00:00Z', clock_rate: 60, visits: [], alerts: [] }, received);
  assert.equal(s.now(received), Date.parse('2026-12-02T07:00:00Z'));
  assert.equal(s.now(received + 15000), Date.parse('2026-12-02T07:15:00Z'), '15 real seconds are 15 demo minutes');
  s.applySnapshot({ server_time: '2026-12-02T09:00:00Z', visits: [], alerts: [] }, received);
  assert.equal(s.clockRate, 1, 'a snapshot without clock_rate runs at real time again');
});

test('the header clock: the time in the zone, tagged when it is a demo clock', () => {
  const t = Date.parse('2026-12-02T10:18:42Z');
  assert.deepEqual(boardClock(t, 1, 'Europe/London'), { time: '10:18:42', tag: '' });
  assert.deepEqual(boardClock(t, undefined, 'Asia/Kolkata'), { time: '15:48:42', tag: '' });
  // 60 demo seconds a real second: the seconds would be a blur, so minutes only.
  assert.deepEqual(boardClock(t, 60, 'Europe/London'), { time: '10:18', tag: 'demo ×60' });
  assert.deepEqual(boardClock(t, 2.5, 'Europe/London'), { time: '10:18:42', tag: 'demo ×2.5' });
  assert.deepEqual(boardClock(t, 0.5, 'America/New_York'), { time: '05:18:42', tag: 'demo ×0.5' });
  assert.equal(boardClock(t, 1 / 3, 'Europe/London').tag, 'demo ×0.333');
  // A rate that is no rate (the snapshot's rule) is real time.
  assert.equal(boardClock(t, 0, 'Europe/London').tag, '');
  assert.equal(boardClock(t, NaN, 'Europe/London').tag, '');
});

test('small formats: ages, carer lists, token claims', () => {
  assert.equal(formatAge(4200), '4s');
  assert.equal(formatAge(12 * 60000 + 3000), '12 min 03s');
  assert.equal(formatAge(65 * 60000), '1 h 05 min');
  assert.deepEqual(parseCarerList(' C1, C2;C3  C1 '), ['C1', 'C2', 'C3']);
  const payload = Buffer.from(JSON.stringify({ sub: 'zoë', role: 'office', branches: ['B1'] })).toString('base64url');
  assert.deepEqual(tokenClaims(`e30.${payload}.sig`), { sub: 'zoë', role: 'office', branches: ['B1'] });
  assert.equal(tokenClaims('garbage'), null);
});

test('who was paged: receivers in the order first paged, the last page\'s time', () => {
  assert.equal(pagedBy({ notified: [] }), null);
  assert.equal(pagedBy({}), null);
  const a = {
    notified: [
      { receiver: 'office', transition: 'triggered', level: 1, at: '2026-11-23T09:25:00Z' },
      { receiver: 'night', transition: 'escalated', level: 2, at: '2026-11-23T09:45:00Z' },
      { receiver: 'office', transition: 'escalated', level: 2, at: '2026-11-23T09:45:00Z' },
      { receiver: 'office', transition: 'acknowledged', level: 2, at: '2026-11-23T09:50:00Z' },
    ],
  };
  assert.deepEqual(pagedBy(a), { names: ['office', 'night'], last: '2026-11-23T09:45:00Z' });
});

test("times in a branch's zone: clock, date, the day's and the hour's start, DST included", () => {
  const t = Date.parse('2026-11-23T23:40:00Z');
  assert.equal(clock(t, 'Asia/Kathmandu'), '05:25'); // UTC+5:45: already the 24th there
  assert.equal(isoDate(t, 'Asia/Kathmandu'), '2026-11-24');
  assert.equal(isoDate(t, 'America/Los_Angeles'), '2026-11-23');
  assert.equal(startOfDay(t, 'Asia/Kathmandu'), Date.parse('2026-11-23T18:15:00Z'));
  assert.equal(startOfHour(t, 'Asia/Kolkata'), Date.parse('2026-11-23T23:30:00Z')); // 05:00 IST
  assert.equal(localHour(t, 'Asia/Kolkata'), 5);
  assert.equal(clock(null, 'Asia/Kolkata'), '—');
  // The day the clocks go back in London is 25 hours long; its midnight is still found.
  const autumn = Date.parse('2026-10-25T22:00:00Z');
  assert.equal(startOfDay(autumn, 'Europe/London'), Date.parse('2026-10-24T23:00:00Z'));
  assert.equal(clock(autumn, 'Europe/London'), '22:00');
  assert.equal(clockSeconds(Date.parse('2026-03-29T01:00:05Z'), 'Europe/London'), '02:00:05');
});

test("the board's zone: the branches' own when they share one, the first's when they do not", () => {
  setBranches([
    { id: 'B1', name: 'North', timezone: 'Asia/Kolkata', manage: true },
    { id: 'B2', name: 'South', timezone: 'Asia/Kolkata', manage: true },
    { id: 'B3', name: 'B3', timezone: 'America/St_Johns', manage: false },
  ]);
  try {
    assert.equal(branchZone('B3'), 'America/St_Johns');
    assert.equal(branchZone('B9'), undefined, "an unknown branch: the browser's zone");
    assert.equal(branchLabel('B1'), 'North (B1)');
    assert.equal(branchLabel('B3'), 'B3');
    assert.deepEqual(boardZone(['B1', 'B2']), { zone: 'Asia/Kolkata', mixed: false });
    assert.deepEqual(boardZone(['B3', 'B1']), { zone: 'America/St_Johns', mixed: true });
    assert.deepEqual(boardZone(['B9']), { zone: undefined, mixed: false });
    assert.equal(zoneNote(['B1', 'B3']), "Times in each branch's zone; the timeline in Asia/Kolkata");
    assert.equal(zoneNote(['B9']), '');
  } finally {
    setBranches([]);
  }
});
