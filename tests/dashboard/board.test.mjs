// The live board in Debian's Chromium against the real visitd: a rota imported over HTTP
// with thresholds in seconds so that visits turn late while the test watches, a carer's
// phone on /ws/carer, the office acting from the board, a daemon killed and restarted.
//
//   VISITD_BINARY=build/daemon/visitd node --test tests/dashboard/board.test.mjs
//
// Screenshots go to tests/dashboard/artifacts/ (not committed).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import {
  Daemon, launchBrowser, daytimeZone, localDate, until, collectConsoleErrors, ARTIFACTS,
} from './harness.mjs';

const MIN = 60000;
const zone = daytimeZone();
const T0 = Date.now();
const date = localDate(T0, zone);
const OFFICE = 'office-sam';

const home = { lat: 51.5014, lon: -0.1419 };
const client = (i) => ({ client_id: `CL${i}`, client_name: `Client ${i}`, lat: home.lat + i * 0.01, lon: home.lon });
const baseRows = [
  // Due long ago, never visited: missed at import (an alert already open in the snapshot).
  { visit_id: 'V-EARLY', ...client(1), carers: ['C1'], start: T0 - 50 * MIN, end: T0 - 20 * MIN, type: 'personal_care', notes: '' },
  // Checked in and out by the phone later in the test: completed.
  { visit_id: 'V-DONE', ...client(2), carers: ['C2'], start: T0 - 40 * MIN, end: T0 - 10 * MIN, type: 'meal', notes: '' },
  // The phone checks in to this one: in progress.
  { visit_id: 'V-IN', ...client(3), carers: ['C2'], start: T0 + 2 * MIN, end: T0 + 40 * MIN, type: 'medication', time_critical: 'true', notes: 'Key safe 4321. Insulin in the fridge.' },
  { visit_id: 'V-CANCEL', ...client(4), carers: ['C3'], start: T0 + 60 * MIN, end: T0 + 90 * MIN, type: 'domestic', notes: '' },
  { visit_id: 'V-DOUBLE', ...client(5), carers: ['C3', 'C4'], start: T0 + 120 * MIN, end: T0 + 150 * MIN, type: 'personal_care', notes: 'Hoist transfer: two carers.' },
];
let lateRow = null; // imported once the board is live, due a few seconds later

let daemon;
let admin;
let office;
let browser;
let page;
let lateAlertId = null;
const consoleProblems = [];
let outage = false;

function shot(name) {
  return page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`) });
}

async function apiAlert(id) {
  const { json } = await daemon.http('GET', '/api/alerts?state=all', office);
  return json.alerts.find((a) => a.id === id);
}

async function apiVisit(id) {
  return (await daemon.http('GET', `/api/visits/${id}`, office)).json;
}

function watchConsole(p) {
  collectConsoleErrors(p, consoleProblems, (text, url) =>
    // While visitd is down, Chromium itself reports each refused reconnection attempt.
    (outage && /WebSocket connection to|ERR_CONNECTION_REFUSED|Failed to load resource/.test(text))
    // The one refusal the test provokes on purpose (cancelling a completed visit): Chromium
    // reports every 4xx answer.
    || (/status of 409/.test(text) && url.endsWith('/api/visits/V-DONE/cancel')));
}

before(async () => {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  daemon = new Daemon({
    thresholds: 'late_after = "3s"\nmissed_after = "30s"\n\n[thresholds.time_critical]\nlate_after = "3s"\nmissed_after = "30s"',
    branches: [{ id: 'B1', name: 'North', timezone: zone }, { id: 'B2', name: 'South', timezone: zone }],
  });
  await daemon.start();
  admin = daemon.token('admin', 'root');
  office = daemon.token('office', OFFICE, 'B1');
  await daemon.importRota(admin, 'B1', date, baseRows);
  await daemon.importRota(admin, 'B2', date, [
    { visit_id: 'V-OTHER-BRANCH', ...client(9), carers: ['C9'], start: T0 + 5 * MIN, end: T0 + 35 * MIN, type: 'meal', notes: '' },
  ]);
  browser = await launchBrowser({ timezoneId: zone });
  page = await browser.newPage();
  watchConsole(page);
});

after(async () => {
  if (page && !page.isClosed()) await shot('99-last').catch(() => {});
  await browser?.close();
  await daemon?.dispose();
});

test('the board loads with the token from the fragment and shows the snapshot', async () => {
  await page.goto(`${daemon.origin}/#token=${office}`);
  await page.waitForSelector('#conn-status[data-state="live"]', { timeout: 10000 });
  assert.ok(!page.url().includes('token'), `the token left the address bar: ${page.url()}`);
  assert.equal(await page.evaluate(() => sessionStorage.getItem('visitd.token')), office);

  const { json } = await daemon.http('GET', '/api/visits', office);
  const ids = json.visits.map((v) => v.id).sort();
  assert.deepEqual(ids, baseRows.map((r) => r.visit_id).sort());
  for (const v of json.visits) {
    // One block per assigned carer, in that carer's row, in the visit's state.
    const blocks = page.locator(`.tl-visit[data-visit="${v.id}"]`);
    assert.equal(await blocks.count(), v.carers.length, `blocks of ${v.id}`);
    for (const carer of v.carers) {
      const block = page.locator(`.tl-visit[data-visit="${v.id}"][data-carer="${carer}"]`);
      assert.equal(await block.getAttribute('data-state'), v.state, `${v.id} state`);
    }
  }
  assert.equal(await page.locator('[data-visit="V-OTHER-BRANCH"]').count(), 0, 'another branch leaks onto the board');
  // The state is in words too, not colour alone.
  assert.match(await page.locator('.tl-visit[data-visit="V-EARLY"]').getAttribute('aria-label'), /Missed/);
  assert.match(await page.locator('#counters').innerText(), /On time[\s\S]*Late[\s\S]*Missed[\s\S]*In progress[\s\S]*Completed[\s\S]*Short/);
  assert.equal(await page.locator('.counter.k-missed .value').innerText(), '2'); // V-EARLY, V-DONE
  // Each counter's hint is read whole at a laptop's 1366 px (it wraps rather than being cut).
  const cut = await page.locator('.counter .hint').evaluateAll((els) => els
    .filter((e) => e.scrollHeight > e.clientHeight || e.scrollWidth > e.clientWidth)
    .map((e) => e.textContent));
  assert.deepEqual(cut, [], 'counter hints cut off');
  // The header's clock is the time of day in the branches' zone, to the second: no demo tag.
  const header = await page.locator('#clock-time').innerText();
  assert.match(header, /^\d\d:\d\d:\d\d$/);
  const wall = (t) => new Intl.DateTimeFormat('en-GB', { timeZone: zone, hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' }).format(t);
  const secs = (hms) => hms.split(':').reduce((acc, n) => acc * 60 + Number(n), 0);
  const apart = Math.abs(secs(header) - secs(wall(Date.now())));
  assert.ok(Math.min(apart, 86400 - apart) <= 3, `the header says ${header} at ${wall(Date.now())}`);
  assert.equal(await page.locator('#clock-demo').isVisible(), false, 'a demo tag on a daemon with no demo clock');
  // V-EARLY's alert was already open: it is in the panel from the snapshot.
  await page.locator('#alerts li', { hasText: 'Visit V-EARLY' }).waitFor();
  await shot('01-loaded');
});

test('a visit nobody checks in to turns late on the board within seconds, and its alert appears', async () => {
  const start = Date.now() + 4000;
  lateRow = { visit_id: 'V-LATE', ...client(6), carers: ['C1'], start, end: start + 30 * MIN, type: 'personal_care', notes: 'Ring twice.' };
  const counts = await daemon.importRota(admin, 'B1', date, [...baseRows, lateRow]);
  assert.equal(counts.imported, 1);

  const block = page.locator('.tl-visit[data-visit="V-LATE"]');
  await block.waitFor({ timeout: 5000 });
  await page.waitForSelector('.tl-visit[data-visit="V-LATE"][data-state="late"]', { timeout: 15000 });
  const lateAt = Date.now();
  assert.ok(lateAt - (start + 3000) < 5000, `late shown ${lateAt - (start + 3000)} ms after the threshold`);
  assert.match(await block.getAttribute('aria-label'), /Late/);

  const item = page.locator('#alerts li', { hasText: 'Visit V-LATE' });
  await item.waitFor({ timeout: 5000 });
  const text = await item.innerText();
  assert.match(text, /Warning/);
  assert.match(text, /C1 has not checked in at Client 6/);
  assert.match(text, /not escalated/);
  lateAlertId = await item.getAttribute('data-alert');
  assert.ok(lateAlertId);
  // The age ticks.
  const age1 = await item.locator('.age').innerText();
  await until('the age to tick', async () => (await item.locator('.age').innerText()) !== age1, 3000);
  await shot('02-late');
});

test('acknowledging the alert from the board is reflected in /api/alerts', async () => {
  const item = page.locator(`#alerts li[data-alert="${lateAlertId}"]`);
  await item.getByRole('button', { name: 'Acknowledge', exact: true }).click();
  await item.getByLabel(/Note/).fill('Phoning C1 now');
  await item.getByRole('button', { name: 'Send acknowledgement' }).click();
  const acked = await until('the alert acknowledged in the API', async () => {
    const a = await apiAlert(lateAlertId);
    return a?.state === 'acknowledged' ? a : null;
  }, 5000);
  assert.equal(acked.acked_by, OFFICE);
  await item.getByText(`Acknowledged by ${OFFICE}`).waitFor({ timeout: 5000 });
  assert.equal(await item.getByRole('button', { name: 'Acknowledge', exact: true }).count(), 0);
  await shot('03-acknowledged');
});

test("a carer's check-in over /ws/carer shows the visit in progress, with its detail", async () => {
  const phone = await daemon.carer(daemon.token('carer', 'C2'));
  try {
    const c3 = client(3);
    const ack = await phone.send({ type: 'check_in', visit: 'V-IN', at: new Date().toISOString(), lat: c3.lat + 0.0001, lon: c3.lon, accuracy: 8, method: 'gps' });
    assert.equal(ack.type, 'ack', JSON.stringify(ack));
    assert.equal(ack.state, 'in_progress');
    await page.waitForSelector('.tl-visit[data-visit="V-IN"][data-state="in_progress"]', { timeout: 5000 });
    assert.equal(await page.locator('.counter.k-in_progress .value').innerText(), '1');

    // The morning's visit, replayed from the phone with its device times: completed.
    const c2 = client(2);
    const at = (t) => new Date(t).toISOString();
    const fix = { lat: c2.lat, lon: c2.lon, accuracy: 10, method: 'gps' };
    assert.equal((await phone.send({ type: 'check_in', visit: 'V-DONE', at: at(T0 - 41 * MIN), ...fix })).type, 'ack');
    assert.equal((await phone.send({ type: 'check_out', visit: 'V-DONE', at: at(T0 - 11 * MIN), ...fix, note: 'Lunch eaten' })).type, 'ack');
    await page.waitForSelector('.tl-visit[data-visit="V-DONE"][data-state="completed"]', { timeout: 5000 });
    assert.equal(await page.locator('.counter.k-completed .value').innerText(), '1');
    await page.locator('.tl-visit[data-visit="V-DONE"] ~ .tl-mark.in').first().waitFor({ state: 'attached' });
  } finally {
    phone.close();
  }

  // Keyboard: the block is a button; Enter opens the detail.
  await page.focus('.tl-visit[data-visit="V-IN"]');
  await page.keyboard.press('Enter');
  const dialog = page.locator('#visit-dialog');
  await dialog.waitFor();
  const text = await dialog.innerText();
  assert.match(text, /Client 3/);
  assert.match(text, /In progress/);
  assert.match(text, /C2/);
  assert.match(text, /Key safe 4321/);
  assert.match(text, /Time-critical/);
  assert.match(text, /\d+ m \(±8 m\)/, 'distance at check-in');
  await shot('04-detail');
  await page.keyboard.press('Escape');
  await dialog.waitFor({ state: 'hidden' });
  assert.equal(await page.evaluate(() => document.activeElement?.dataset?.visit), 'V-IN', 'focus returns to the block');
});

test('cancel and reassign from the visit detail use the API, and a refusal is shown plainly', async () => {
  const dialog = page.locator('#visit-dialog');
  await page.locator('.tl-visit[data-visit="V-CANCEL"]').click();
  await dialog.getByLabel(/Reason/).fill('Client in hospital');
  await dialog.getByRole('button', { name: 'Cancel this visit' }).click();
  await dialog.getByText('The visit is cancelled').waitFor({ timeout: 5000 });
  const cancelled = await apiVisit('V-CANCEL');
  assert.equal(cancelled.state, 'cancelled');
  assert.equal(cancelled.cancel_reason, 'Client in hospital');
  await page.waitForSelector('.tl-visit[data-visit="V-CANCEL"][data-state="cancelled"]');
  await page.keyboard.press('Escape');

  await page.locator('.tl-visit[data-visit="V-DOUBLE"][data-carer="C4"]').click();
  const carers = dialog.getByLabel(/Carer ids/);
  assert.equal(await carers.inputValue(), 'C3, C4');
  await carers.fill('C5, C6');
  await dialog.getByRole('button', { name: 'Reassign' }).click();
  await dialog.getByText('Reassigned to C5, C6').waitFor({ timeout: 5000 });
  assert.deepEqual((await apiVisit('V-DOUBLE')).carers, ['C5', 'C6']);
  await page.waitForSelector('.tl-visit[data-visit="V-DOUBLE"][data-carer="C6"]');
  assert.equal(await page.locator('.tl-visit[data-visit="V-DOUBLE"][data-carer="C4"]').count(), 0);
  await page.keyboard.press('Escape');

  await page.locator('.tl-visit[data-visit="V-DONE"]').click();
  await dialog.getByLabel(/Reason/).fill('too late for that');
  await dialog.getByRole('button', { name: 'Cancel this visit' }).click();
  const refusal = dialog.locator('.form-msg.error');
  await refusal.waitFor({ timeout: 5000 });
  assert.match(await refusal.innerText(), /^Not done: .+\(conflict\)$/);
  assert.equal((await apiVisit('V-DONE')).state, 'completed');
  await shot('05-refused');
  await page.keyboard.press('Escape');
});

test('resolving an alert with a note from the board: it fades out of the panel', async () => {
  const item = page.locator(`#alerts li[data-alert="${lateAlertId}"]`);
  await item.getByRole('button', { name: 'Resolve', exact: true }).click();
  await item.getByLabel(/Note/).fill('C1 was off sick; V-LATE covered by phone call');
  await item.getByRole('button', { name: 'Resolve alert' }).click();
  await page.waitForSelector(`#alerts li[data-alert="${lateAlertId}"].fading`, { timeout: 5000 });
  assert.match(await item.locator('.alert-state').innerText(), /Resolved: resolved by the office/);
  await item.waitFor({ state: 'detached', timeout: 5000 });
  const a = await apiAlert(lateAlertId);
  assert.equal(a.state, 'resolved');
  assert.equal(a.resolution, 'user');
});

test('a dropped connection shows the banner, and the board recovers with a fresh snapshot', async () => {
  outage = true;
  await daemon.stop('SIGKILL');
  const banner = page.locator('#banner');
  await banner.waitFor({ state: 'visible', timeout: 5000 });
  assert.match(await banner.innerText(), /Disconnected from visitd/);
  assert.equal(await page.locator('#conn-status').getAttribute('data-state'), 'down');
  // Nothing can be sent while down: the alert buttons say so by being disabled.
  const early = page.locator('#alerts li', { hasText: 'Visit V-EARLY' });
  assert.ok(await early.getByRole('button', { name: 'Acknowledge', exact: true }).isDisabled());
  await shot('06-disconnected');

  await page.waitForTimeout(1500); // a reconnection attempt or two fails meanwhile
  await daemon.restart();
  // Something changes as soon as visitd is back: the board must show it, whether it comes
  // in the new snapshot or as a delta after it.
  const phone = await daemon.carer(daemon.token('carer', 'C2'));
  const c3 = client(3);
  const out = await phone.send({ type: 'check_out', visit: 'V-IN', at: new Date().toISOString(), lat: c3.lat, lon: c3.lon, accuracy: 8, method: 'gps', note: 'Insulin given' });
  phone.close();
  assert.equal(out.type, 'ack', JSON.stringify(out));

  await page.waitForSelector('#conn-status[data-state="live"]', { timeout: 20000 });
  await banner.waitFor({ state: 'hidden' });
  outage = false;
  await page.waitForSelector('.tl-visit[data-visit="V-IN"][data-state="completed"]', { timeout: 5000 });
  const { json } = await daemon.http('GET', '/api/visits', office);
  for (const v of json.visits) {
    const shown = await page.locator(`.tl-visit[data-visit="${v.id}"]`).first().getAttribute('data-state');
    assert.equal(shown, v.state, `${v.id} after the reconnection`);
  }
  assert.ok(await early.getByRole('button', { name: 'Acknowledge', exact: true }).isEnabled());
  await shot('07-recovered');
});

test('filters narrow the timeline and the alerts', async () => {
  await page.locator('#f-state').selectOption('completed');
  await until('only completed visits', async () => {
    const states = await page.locator('.tl-visit').evaluateAll((els) => els.map((e) => e.dataset.state));
    return states.length === 2 && states.every((s) => s === 'completed');
  }, 3000);
  await page.locator('#f-state').selectOption('');
  await page.getByRole('searchbox', { name: 'Search' }).fill('ring TWICE');
  await until('the search matches one visit', async () => (await page.locator('.tl-visit').count()) === 1, 3000);
  assert.equal(await page.locator('.tl-visit').getAttribute('data-visit'), 'V-LATE');
  await page.getByRole('searchbox', { name: 'Search' }).fill('');
  await page.locator('#f-carer').selectOption('C2');
  await until('only C2\'s row', async () => {
    const carers = await page.locator('.tl-visit').evaluateAll((els) => [...new Set(els.map((e) => e.dataset.carer))]);
    return carers.length === 1 && carers[0] === 'C2';
  }, 3000);
  await page.locator('#f-carer').selectOption('');
});

test('the punctuality report shows the day and downloads it as CSV', async () => {
  await page.getByRole('button', { name: 'Punctuality report' }).click();
  const dialog = page.locator('#report-dialog');
  await dialog.locator('.report-table').waitFor({ timeout: 5000 });
  const table = await dialog.locator('.report-table').innerText();
  assert.match(table, /C2/);
  const report = (await daemon.http('GET', `/api/reports/punctuality?branch=B1&date=${date}`, office)).json;
  assert.match(await dialog.locator('.report-summary').innerText(), new RegExp(`${report.on_time_pct}%`));
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    dialog.getByRole('button', { name: 'Download CSV' }).click(),
  ]);
  assert.equal(download.suggestedFilename(), `punctuality-B1-${date}.csv`);
  const csv = fs.readFileSync(await download.path(), 'utf8');
  assert.match(csv, /^carer,visits,on_time,late,missed,pending,on_time_pct,mean_late_s\r\n/);
  assert.match(csv, /\r\ntotal,/);
  await shot('08-report');
  await page.keyboard.press('Escape');
});

test('works at tablet width: nothing overflows sideways and the alerts go under the timeline', async () => {
  await page.setViewportSize({ width: 820, height: 1180 });
  await page.waitForTimeout(300);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.ok(overflow <= 0, `the page is ${overflow}px wider than a tablet`);
  const timeline = await page.locator('.timeline-pane').boundingBox();
  const alerts = await page.locator('.alerts-pane').boundingBox();
  assert.ok(alerts.y >= timeline.y + timeline.height, 'alerts under the timeline');
  await shot('09-tablet');
  await page.setViewportSize({ width: 1366, height: 768 });
});

test('every control is labelled, every button named, and focus is visible', async () => {
  const unlabelled = await page.evaluate(() => [...document.querySelectorAll('input, select, textarea, button')]
    .filter((el) => {
      if (el.closest('[hidden]') || el.type === 'hidden') return false;
      if (el.tagName === 'BUTTON') return !(el.getAttribute('aria-label') || el.textContent.trim());
      return !(el.labels?.length || el.getAttribute('aria-label'));
    })
    .map((el) => el.outerHTML.slice(0, 120)));
  assert.deepEqual(unlabelled, []);
  await page.locator('#f-search').focus();
  await page.keyboard.press('Tab'); // to the zoom select, by keyboard
  const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
  assert.notEqual(outline, 'none', 'keyboard focus shows');
});

test('without a token the board asks for one, and refuses a bad one plainly', async () => {
  const p = await browser.newPage(); // a new tab: its own, empty sessionStorage
  watchConsole(p);
  try {
    await p.goto(`${daemon.origin}/`);
    await p.getByLabel('Access token').waitFor();
    assert.ok(await p.locator('#board').isHidden());
    await p.getByLabel('Access token').fill('not a token');
    await p.getByRole('button', { name: 'Sign in' }).click();
    await p.getByText('does not look like an access token').waitFor();

    const forged = office.replace(/\.[^.]+$/, '.AAAA'); // signature broken
    await p.getByLabel('Access token').fill(forged);
    await p.getByRole('button', { name: 'Sign in' }).click();
    await p.getByText('visitd refused the token').waitFor({ timeout: 5000 });
    assert.equal(await p.evaluate(() => sessionStorage.getItem('visitd.token')), null);

    await p.getByLabel('Access token').fill(`Bearer ${office}`);
    await p.getByRole('button', { name: 'Sign in' }).click();
    await p.waitForSelector('#conn-status[data-state="live"]', { timeout: 10000 });
    await p.locator('.tl-visit[data-visit="V-IN"]').waitFor();
  } finally {
    await p.close();
  }
});

test('no console errors', () => {
  assert.deepEqual(consoleProblems, []);
});
