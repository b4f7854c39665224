// The board shows each branch's local times, whatever zone the browser runs in: two
// branches in zones of their own, and Chromium started with TZ set to a third.
//
//   VISITD_BINARY=build/daemon/visitd node --test tests/dashboard/zones.test.mjs

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Daemon, launchBrowser, localDate, collectConsoleErrors, ARTIFACTS } from './harness.mjs';

const MIN = 60000;
const OFFICE = 'office-ngozi';
// Zones a half or three quarters of an hour off UTC first: a board that only shifts whole
// hours gets their minutes wrong.
const ZONES = [
  'Asia/Kathmandu', 'Asia/Kolkata', 'America/St_Johns', 'Australia/Adelaide', 'Europe/London',
  'America/New_York', 'America/Los_Angeles', 'Asia/Tokyo', 'Pacific/Auckland', 'Pacific/Honolulu',
  'Europe/Helsinki', 'America/Sao_Paulo',
];

const T0 = Math.floor(Date.now() / MIN) * MIN;
const hm = (t, zone) => new Intl.DateTimeFormat('en-GB', { timeZone: zone, hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }).format(t);
const hour = (t, zone) => Number(hm(t, zone).slice(0, 2));
/** Minutes the zone is ahead of UTC now. */
function offsetMin(zone) {
  const p = Object.fromEntries(new Intl.DateTimeFormat('en-US', { timeZone: zone, hourCycle: 'h23', year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric' })
    .formatToParts(T0).map((x) => [x.type, Number(x.value)]));
  return Math.round((Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute) - T0) / MIN);
}

// Two branches where it is daytime (their visits from 90 minutes ago to 70 minutes ahead
// all fall today), with different offsets; the browser in a zone different from both.
const daytime = ZONES.filter((z) => hour(T0, z) >= 3 && hour(T0, z) < 21);
const north = daytime[0];
const south = daytime.find((z) => offsetMin(z) !== offsetMin(north));
const browserTz = ZONES.find((z) => ![offsetMin(north), offsetMin(south)].includes(offsetMin(z)));
const zoneOf = { B1: north, B2: south };

const rows = (branch) => {
  const c = (i) => ({ client_id: `${branch}-CL${i}`, client_name: `Client ${branch}-${i}`, lat: 51.5 + i * 0.01, lon: -0.14 });
  return [
    // Due long ago and never visited: missed at import, its alert open in the snapshot.
    { visit_id: `${branch}-V1`, ...c(1), carers: [`${branch}-C1`], start: T0 - 90 * MIN, end: T0 - 61 * MIN, type: 'personal_care', notes: '' },
    { visit_id: `${branch}-V2`, ...c(2), carers: [`${branch}-C2`], start: T0 + 40 * MIN, end: T0 + 70 * MIN, type: 'meal', notes: '' },
  ];
};

let daemon;
let office;
let browser;
let page;
const consoleProblems = [];

before(async () => {
  assert.ok(north && south && browserTz, `no zones to test with now: ${north} ${south} ${browserTz}`);
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  daemon = new Daemon({ branches: [{ id: 'B1', name: 'North', timezone: north }, { id: 'B2', name: 'South', timezone: south }] });
  await daemon.start();
  const admin = daemon.token('admin', 'root');
  office = daemon.token('office', OFFICE, 'B1,B2');
  for (const b of ['B1', 'B2']) await daemon.importRota(admin, b, localDate(T0, zoneOf[b]), rows(b));
  browser = await launchBrowser({ env: { TZ: browserTz } });
  page = await browser.newPage();
  collectConsoleErrors(page, consoleProblems);
  await page.goto(`${daemon.origin}/#token=${office}`);
  await page.waitForSelector('#conn-status[data-state="live"]', { timeout: 10000 });
});

after(async () => {
  await browser?.close();
  await daemon?.dispose();
});

test(`the browser runs in its own zone (TZ=${browserTz}), not the branches'`, async () => {
  // By the time it reads, not its name: Chromium's ICU may give a zone's older alias
  // (Asia/Katmandu for Asia/Kathmandu).
  const own = await page.evaluate(() => Intl.DateTimeFormat().resolvedOptions().timeZone);
  assert.equal(hm(T0, own), hm(T0, browserTz), `the browser runs in ${own}, not ${browserTz}`);
  assert.equal(offsetMin(own), offsetMin(browserTz), `the browser runs in ${own}, not ${browserTz}`);
  for (const z of [north, south]) assert.notEqual(hm(T0, browserTz), hm(T0, z), `${browserTz} reads the same as ${z}`);
});

test("each visit's block shows its times in its branch's zone", async () => {
  for (const b of ['B1', 'B2']) {
    for (const r of rows(b)) {
      const block = page.locator(`.tl-visit[data-visit="${r.visit_id}"]`);
      await block.waitFor();
      const label = await block.getAttribute('aria-label');
      assert.ok(label.startsWith(`${hm(r.start, zoneOf[b])} to ${hm(r.end, zoneOf[b])}, `),
        `${r.visit_id} (${zoneOf[b]}) reads "${label}"`);
    }
  }
  assert.match(await page.locator('#zone-label').innerText(), new RegExp(`Times in each branch's zone; the timeline in (${north}|${south})`));
});

test("one branch's board: its day, axis and now-line in its zone", async () => {
  for (const b of ['B1', 'B2']) {
    const zone = zoneOf[b];
    await page.locator('#f-branch').selectOption(b);
    await page.getByText(`Times in ${zone}`).waitFor({ timeout: 3000 });
    const day = new Intl.DateTimeFormat('en-GB', { timeZone: zone, weekday: 'long', day: 'numeric', month: 'long', year: 'numeric' }).format(Date.now());
    assert.equal(await page.locator('#day-label').innerText(), day);
    const now = await page.locator('.tl-now-label').innerText();
    const expected = [Date.now() - MIN, Date.now(), Date.now() + MIN].map((t) => `Now ${hm(t, zone)}`);
    assert.ok(expected.includes(now), `${b}: the now-line says "${now}", expected ${expected[1]}`);
    // The axis marks the branch's whole hours, from the one before its first visit.
    const ticks = (await page.locator('.tl-tick:not(.minor)').allInnerTexts()).filter(Boolean);
    assert.ok(ticks.length >= 2 && ticks.every((t) => /^\d\d:00$/.test(t)), `${b} axis: ${ticks.join(' ')}`);
    assert.equal(ticks[0], `${hm(rows(b)[0].start - 15 * MIN, zone).slice(0, 2)}:00`, `${b} axis: ${ticks.join(' ')}`);
    await page.screenshot({ path: path.join(ARTIFACTS, `zones-${b}.png`) });
  }
  await page.locator('#f-branch').selectOption('');
});

test("the visit detail and the alert panel give the branch's local times", async () => {
  const r = rows('B2')[1];
  await page.locator(`.tl-visit[data-visit="${r.visit_id}"]`).click();
  const dialog = page.locator('#visit-dialog');
  await dialog.waitFor();
  assert.equal(await page.locator('#visit-title').innerText(), `${r.client_name} · ${hm(r.start, south)}–${hm(r.end, south)}`);
  assert.match(await dialog.innerText(), new RegExp(`${hm(r.start, south)} to ${hm(r.end, south)} \\(30 min\\), ${south} time`));
  await page.keyboard.press('Escape');

  // The missed visit's alert, acknowledged elsewhere: the panel says when, in B2's zone.
  const { json } = await daemon.http('GET', '/api/alerts?state=open&branch=B2', office);
  const alert = json.alerts.find((a) => a.visit === 'B2-V1');
  assert.ok(alert, JSON.stringify(json));
  const ack = await daemon.http('POST', `/api/alerts/${alert.id}/ack`, office, { body: JSON.stringify({ note: 'on it' }), contentType: 'application/json' });
  assert.equal(ack.status, 200, ack.text);
  const acked = (await daemon.http('GET', '/api/alerts?state=all&branch=B2', office)).json.alerts.find((a) => a.id === alert.id);
  await page.locator(`#alerts li[data-alert="${alert.id}"]`).getByText(`Acknowledged by ${OFFICE} at ${hm(Date.parse(acked.acked_at), south)}`).waitFor({ timeout: 5000 });
});

test("the punctuality report opens on the branch's today, as of its local time", async () => {
  await page.locator('#f-branch').selectOption('B1');
  await page.getByRole('button', { name: 'Punctuality report' }).click();
  const dialog = page.locator('#report-dialog');
  await dialog.locator('.report-table').waitFor({ timeout: 5000 });
  assert.equal(await page.locator('#report-date').inputValue(), localDate(Date.now(), north));
  const caption = await dialog.locator('caption').innerText();
  const expected = [Date.now() - MIN, Date.now()].map((t) => `as of ${hm(t, north)}`);
  assert.ok(expected.some((e) => caption.endsWith(e)), `caption "${caption}", expected ${expected[1]}`);
  assert.match(caption, /^Branch North \(B1\), /);
  await page.keyboard.press('Escape');
  await page.locator('#f-branch').selectOption('');
});

test('no console errors', () => {
  assert.deepEqual(consoleProblems, []);
});
