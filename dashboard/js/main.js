// The live board: wires the token, the board WebSocket, the state and the panels together.

import * as auth from './auth.js';
import { configure as configureApi, api } from './api.js';
import { LiveConnection } from './live.js';
import {
  BoardState, VISIT_STATES, visitMatches, alertMatches, dayCounters, latenessByHour,
  tokenClaims, isOpen, stateWord,
} from './model.js';
import { Timeline } from './timeline.js';
import { AlertPanel } from './alerts.js';
import { VisitDetail } from './detail.js';
import { ReportPanel } from './report.js';
import { renderChart } from './chart.js';
import { h, icon, clear, announce } from './dom.js';
import {
  longDay, isoDate, startOfDay, localHour, clock, boardClock,
} from './time.js';
import {
  setBranches, knownBranchIds, branchZone, branchLabel, boardZone, zoneNote,
} from './branches.js';

const $ = (id) => document.getElementById(id);

const state = new BoardState();
const filters = { branch: '', state: '', carer: '', search: '' };
// Six hours across a laptop's timeline, four on a tablet: a half-hour visit keeps its name.
let zoom = window.innerWidth < 1000 ? '4' : '6';
let live = null;
let claims = null;
let shownDays = null; // each branch's date when the snapshot came (see dayKey)
let branchesLoading = null; // the first GET /api/branches of a sign-in, while it runs
let branchesAt = 0; // when the branches were last asked for (performance.now())
let renderQueued = false;
let resolvedSince = new Map(); // alert id -> the alert as resolved, until the next render
let connStatus = { state: 'connecting' };

const timeline = new Timeline($('timeline'), { onOpen: (id) => detail.open(id) });
const alertPanel = new AlertPanel($('alerts'), $('alerts-empty'), $('alert-count'), {
  send: (type, id, note) => live.command(type, id, note),
  openVisit: (id) => detail.open(id),
  isLive: () => Boolean(live?.live),
  visitOf: (id) => state.visits.get(id),
});
// Whether this sign-in may change a visit (visitd decides; this only spares a refusal).
const mayManage = (v) => {
  if (!claims || claims.role === 'carer') return false;
  const branches = Array.isArray(claims.branches) ? claims.branches : null;
  return !branches || branches.includes('*') || branches.includes(v.branch);
};
const detail = new VisitDetail($('visit-dialog'), { state, canAct: mayManage });
detail.onChanged = () => scheduleRender();
const report = new ReportPanel($('report-dialog'), {
  branches: () => knownBranches(),
  today: () => state.now(),
});

// ---------------------------------------------------------------------------------------
// Sign-in

function showSignIn(message) {
  $('board').hidden = true;
  $('sign-out').hidden = true;
  $('report-open').hidden = true;
  $('banner').hidden = true;
  $('board-clock').hidden = true;
  $('signin').hidden = false;
  const err = $('signin-error');
  err.textContent = message ?? '';
  err.hidden = !message;
  setConn({ state: 'signed-out' });
  $('signin-token').focus();
}

$('signin-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const token = auth.cleanPasted($('signin-token').value);
  if (!token) return;
  const c = tokenClaims(token);
  if (!c) {
    showSignIn('That does not look like an access token: it should be three parts joined by dots, starting with eyJ.');
    return;
  }
  if (c.role === 'carer') {
    showSignIn('This is a carer token; the board needs an office, coordinator or admin token.');
    return;
  }
  $('signin-token').value = '';
  auth.save(token);
  start(token);
});

$('sign-out').addEventListener('click', () => {
  live?.stop();
  live = null;
  auth.forget();
  setBranches([]);
  state.applySnapshot({ visits: [], alerts: [], server_time: new Date().toISOString() });
  showSignIn();
});

function start(token) {
  claims = tokenClaims(token) ?? {};
  setBranches([]); // another sign-in may see other branches: asked for with its first snapshot
  if (claims.exp && claims.exp * 1000 < Date.now()) {
    auth.forget();
    showSignIn(`This token expired at ${new Date(claims.exp * 1000).toLocaleString()}. Ask for a new one.`);
    return;
  }
  configureApi({
    token,
    onUnauthorized: (err) => {
      live?.stop();
      live = null;
      auth.forget();
      showSignIn(`visitd refused the token: ${err.message}`);
    },
  });
  $('signin').hidden = true;
  $('board').hidden = false;
  $('sign-out').hidden = false;
  $('report-open').hidden = false;
  $('sign-out').textContent = `Sign out${claims.name || claims.sub ? ` (${claims.name || claims.sub})` : ''}`;
  live?.stop();
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  live = new LiveConnection(`${scheme}//${location.host}/ws/board`, token, {
    onSnapshot,
    onVisit,
    onAlert,
    onStatus: setConn,
    onRefused: (message) => {
      live?.stop();
      live = null;
      auth.forget();
      showSignIn(`visitd refused the token: ${message}`);
    },
  });
  live.start();
}

// ---------------------------------------------------------------------------------------
// Live data

/**
 * The branches' names and zones (GET /api/branches): asked for once the snapshot shows the
 * token is good (a refused token then never costs a 401), again after each reconnection (a
 * reload may have changed them). The first answer is waited for before drawing, so that no
 * time is ever shown in the wrong zone; without an answer the browser's zone stands in.
 */
function loadBranches() {
  branchesAt = performance.now();
  const first = !knownBranchIds().length;
  const loading = api.branches()
    .then(({ branches }) => setBranches(branches))
    .catch(() => { /* shown in the browser's zone; the next snapshot asks again */ })
    .finally(() => {
      if (branchesLoading === loading) branchesLoading = null;
      shownDays = dayKey(state.now());
      scheduleRender();
      detail.refresh();
    });
  if (first) {
    branchesLoading = loading;
    // A slow answer holds the board back a moment, never for good.
    setTimeout(() => {
      if (branchesLoading !== loading) return;
      branchesLoading = null;
      scheduleRender();
    }, 3000);
  }
}

/** Each branch's date now, in its zone: when one changes, its new day needs a snapshot. */
function dayKey(now) {
  const zones = new Set(knownBranchIds().map(branchZone));
  if (!zones.size) zones.add(undefined);
  return [...zones].map((z) => isoDate(now, z)).join(' ');
}

function onSnapshot(msg) {
  state.applySnapshot(msg);
  resolvedSince = new Map();
  if (!knownBranchIds().length || performance.now() - branchesAt > 5000) loadBranches();
  else shownDays = dayKey(state.now());
  scheduleRender();
  detail.refresh();
  announce(`Board up to date: ${msg.visits.length} visits, ${state.openAlerts().length} open alerts`);
}

function onVisit(v) {
  // Today's visits only, today in the visit's branch's zone (the snapshot's rule); a visit
  // already shown is always updated.
  const known = state.visits.has(v.id);
  if (!known) {
    const zone = branchZone(v.branch);
    const today = startOfDay(state.now(), zone);
    const tomorrow = startOfDay(today + 36 * 3600000, zone);
    if (Date.parse(v.end) < today || Date.parse(v.start) >= tomorrow) return;
  }
  state.applyVisit(v);
  scheduleRender();
  if (detail.openId === v.id) detail.refresh();
}

function onAlert(a) {
  const before = state.alerts.get(a.id);
  if (!state.applyAlert(a)) return;
  if (!isOpen(a) && (!before || isOpen(before))) resolvedSince.set(a.id, a);
  if (isOpen(a) && !before) announce(`New ${a.severity} alert: ${a.summary}`);
  scheduleRender();
  if (detail.openId === a.visit) detail.renderAlerts();
}

function setConn(s) {
  connStatus = s;
  const el = $('conn-status');
  el.dataset.state = s.state;
  const text = el.querySelector('.conn-text');
  const banner = $('banner');
  document.body.classList.toggle('stale', s.state === 'down' || (s.state === 'connecting' && state.snapshotAt !== null));
  switch (s.state) {
    case 'live':
      text.textContent = 'Live';
      banner.hidden = true;
      break;
    case 'connecting':
      text.textContent = 'Connecting…';
      break;
    case 'down':
      text.textContent = 'Disconnected';
      banner.hidden = false;
      updateBanner();
      break;
    case 'refused':
      text.textContent = 'Signed out';
      banner.hidden = true;
      break;
    default:
      text.textContent = 'Not connected';
      banner.hidden = true;
  }
  alertPanel.syncDisabled();
}

function updateBanner() {
  if (connStatus.state !== 'down') return;
  const secs = Math.max(0, Math.ceil((connStatus.retryAt - Date.now()) / 1000));
  const since = state.snapshotAt !== null ? ' What you see is as of the last update; it refreshes when visitd answers.' : '';
  // The alert region says what happened once; the countdown beside it is not read out each second.
  const text = `Disconnected from visitd (${connStatus.reason}).${since}`;
  if ($('banner-text').textContent !== text) $('banner-text').textContent = text;
  $('banner-countdown').textContent = `Reconnecting ${secs > 0 ? `in ${secs} s` : 'now'} (attempt ${connStatus.attempt}).`;
}

$('banner-retry').addEventListener('click', () => live?.reconnectNow());

// ---------------------------------------------------------------------------------------
// Rendering

// Redraws are coalesced, at most four a second: a busy day sends many deltas, and a person
// reads nothing faster. A press on a visit block is never redrawn away under the pointer.
const RENDER_EVERY_MS = 250;
let lastRender = 0;
function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  const wait = Math.max(0, lastRender + RENDER_EVERY_MS - performance.now());
  setTimeout(() => requestAnimationFrame(() => {
    renderQueued = false;
    if (branchesLoading) return; // drawn when the zones are known (loadBranches)
    if (timeline.pressed) {
      scheduleRender();
      return;
    }
    lastRender = performance.now();
    render();
  }), wait);
}

function knownBranches() {
  const set = new Set([...knownBranchIds(), ...state.branches()]);
  for (const b of claims?.branches ?? []) if (b !== '*') set.add(b);
  return [...set].sort();
}

/** The branches the board shows: the branch filter's, else every branch of the sign-in. */
function shownBranches() {
  return filters.branch ? [filters.branch] : knownBranches();
}

/**
 * The header's clock, each second: the board's time (the demo clock's, when visitd runs
 * one) in the zone of the header's day, tagged "demo ×60" when it is not the time of day.
 * Nothing until the first snapshot has said which clock visitd runs on and the branches'
 * zones are known.
 */
function renderClock(now) {
  // Not on the sign-in screen: a refused or signed-out board keeps its last snapshot.
  if (state.snapshotAt === null || branchesLoading || $('board').hidden) return;
  const { time, tag } = boardClock(now, state.clockRate, boardZone(shownBranches()).zone);
  const el = $('clock-time');
  if (el.textContent !== time) el.textContent = time;
  el.dateTime = new Date(now).toISOString();
  const demo = $('clock-demo');
  demo.textContent = tag;
  demo.title = tag ? `visitd runs on a demo clock, ${+state.clockRate.toFixed(2)} times as fast as real time` : '';
  demo.hidden = !tag;
  $('board-clock').hidden = false;
}

function render() {
  const now = state.now();
  const day = [...state.visits.values()];
  const visible = day.filter((v) => visitMatches(v, filters));
  const branchDay = day.filter((v) => !filters.branch || v.branch === filters.branch);
  // The day, the clock, the axis and the now-line in the zone of the branches shown.
  const shown = shownBranches();
  const { zone } = boardZone(shown);

  $('day-label').textContent = longDay(now, zone);
  renderClock(now);
  const note = zoneNote(shown);
  $('zone-label').textContent = note;
  $('zone-label').hidden = !note;
  renderFilters(day);
  renderCounters(dayCounters(branchDay));
  renderChart($('chart-svg'), latenessByHour(branchDay, (t, v) => localHour(t, branchZone(v.branch))));
  $('visit-count').textContent = `(${visible.length} of ${day.length})`;
  timeline.render({
    visits: visible,
    allVisits: day,
    now,
    zoom,
    zone,
    emptyText: day.length ? 'No visit matches the filters.' : 'No visits today yet. A rota imported for today appears here at once.',
  });
  const alerts = state.openAlerts().filter((a) => alertMatches(a, filters, state.visits.get(a.visit)));
  alertPanel.render(alerts, now, resolvedSince);
  resolvedSince = new Map();
}

function renderCounters(c) {
  const items = [
    ['on-time', 'On time', c.on_time_pct === null ? '—' : `${c.on_time_pct}%`, `${c.on_time} of ${c.on_time + c.late + c.missed} due so far`],
    ['late', 'Late', c.late, 'arrived late or overdue'],
    ['missed', 'Missed', c.missed, ''],
    ['in_progress', 'In progress', c.in_progress, ''],
    ['completed', 'Completed', c.completed, `of ${c.visits} visits`],
    ['short', 'Short', c.short, 'shorter than planned'],
  ];
  clear($('counters')).append(...items.map(([key, term, value, hint]) => h('div', { class: `counter k-${key}` },
    h('dt', {}, term), h('dd', {}, h('span', { class: 'value' }, String(value)), hint ? h('span', { class: 'hint', title: hint }, hint) : null))));
}

function setOptions(select, values, allLabel, label = (v) => v) {
  const current = select.value;
  const wanted = ['', ...values];
  const have = [...select.options].map((o) => o.value);
  if (have.length === wanted.length && have.every((v, i) => v === wanted[i])) return;
  clear(select).append(h('option', { value: '' }, allLabel), ...values.map((v) => h('option', { value: v }, label(v))));
  select.value = wanted.includes(current) ? current : '';
}

function renderFilters(day) {
  setOptions($('f-branch'), knownBranches(), 'All branches', branchLabel);
  const carers = [...new Set(day.flatMap((v) => v.carers))].sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
  setOptions($('f-carer'), carers, 'All carers');
}

function renderLegend() {
  clear($('legend')).append(...VISIT_STATES.map(([key, word]) => h('li', { class: `legend-item st-${key}` }, icon(key, 'state-icon'), word)));
  clear($('f-state')).append(h('option', { value: '' }, 'All states'), ...VISIT_STATES.map(([key]) => h('option', { value: key }, stateWord(key))));
}

// ---------------------------------------------------------------------------------------
// Controls

$('filters').addEventListener('submit', (e) => e.preventDefault());
for (const [id, key] of [['f-branch', 'branch'], ['f-state', 'state'], ['f-carer', 'carer']]) {
  $(id).addEventListener('change', (e) => {
    filters[key] = e.target.value;
    scheduleRender();
  });
}
$('f-search').addEventListener('input', (e) => {
  filters.search = e.target.value;
  scheduleRender();
});
$('f-zoom').addEventListener('change', (e) => {
  zoom = e.target.value;
  render();
  timeline.scrollToNow(state.now());
});
$('to-now').addEventListener('click', () => timeline.scrollToNow(state.now()));
$('report-open').addEventListener('click', () => {
  if (!live) return;
  report.open(filters.branch || knownBranches()[0]);
});
window.addEventListener('resize', () => scheduleRender());

// Every second: the clock and ages tick, the now-line and open visits' bars move, the banner
// counts down; at a branch's midnight the board asks for the new day's snapshot.
setInterval(() => {
  if (!live) return;
  const now = state.now();
  renderClock(now);
  alertPanel.tick(now);
  timeline.moveNow(now);
  updateBanner();
  if (shownDays !== null && live.live && dayKey(now) !== shownDays) {
    shownDays = dayKey(now);
    live.reconnectNow();
  }
}, 1000);
// The timeline's span follows now (open visits' bars follow it each second, in moveNow):
// redraw now and then even when nothing arrives.
setInterval(() => { if (live?.live) scheduleRender(); }, 30000);

// ---------------------------------------------------------------------------------------

renderLegend();
$('f-zoom').value = zoom;
const token = auth.initialToken();
if (token) start(token);
else showSignIn();

// For the browser tests and for people at the console: what the board holds, read-only.
window.visitdBoard = Object.freeze({
  get live() { return Boolean(live?.live); },
  get visits() { return state.visits.size; },
  get openAlerts() { return state.openAlerts().length; },
  get status() { return connStatus.state; },
  clock,
  isoDate,
});
