// Makes docs/board.png: the board during the README's demo run, as `bash scripts/run` plays
// it. visitd runs on config/visitd.demo.toml (its demo clock from 07:00 at 60 times real
// time) with only its port (a free one), journal (a temp directory) and dashboard (this
// checkout's) changed; tools/visit-sim plays the seeded agency's day on it, as scripts/run
// does; the board watches in Chromium at 1366x768, and is captured once the simulated
// morning is busy: demo time past --at (10:30), late and missed visits, open alerts. Not a
// test; run it by hand after changing the board's looks (about four minutes):
//
//   VISITD_BINARY=build/daemon/visitd VISIT_SIM_BINARY=build/tools/visit-sim/visit-sim \
//     node tests/dashboard/screenshot.mjs [--at HH:MM] [--config FILE] [out.png] [-- visit-sim options]
//
// Or of a run already going: scripts/run prints the board's address with its token.
//
//   node tests/dashboard/screenshot.mjs --url 'http://127.0.0.1:8080/#token=...' [out.png]
//
// EXTRA=1 also takes a tablet's width, a visit's detail and the punctuality report beside it.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Daemon, launchBrowser, visitSimBinary, REPO } from './harness.mjs';

const split = process.argv.indexOf('--', 2);
const { values: opts, positionals } = parseArgs({
  args: process.argv.slice(2, split === -1 ? undefined : split),
  options: {
    url: { type: 'string' },
    at: { type: 'string', default: '10:30' },
    config: { type: 'string', default: path.join(REPO, 'config/visitd.demo.toml') },
  },
  allowPositionals: true,
});
const simArgs = split === -1 ? [] : process.argv.slice(split + 1);
const out = path.resolve(positionals[0] ?? path.join(REPO, 'docs/board.png'));
// A busy morning: these many at least, once the demo clock has passed --at.
const BUSY = { late: 1, missed: 1, alerts: 3 };
const WAIT_MS = 10 * 60000;

/** The branches' zones as visitd gives them, for the browser (the header then needs no zone note). */
async function firstZone(boardUrl, token) {
  const res = await fetch(new URL('/api/branches', boardUrl), { headers: { Authorization: `Bearer ${token}` } });
  if (!res.ok) throw new Error(`GET /api/branches answered ${res.status}: ${await res.text()}`);
  return (await res.json()).branches[0]?.timezone;
}

/** visitd on the demo config and visit-sim playing its day, as scripts/run starts them. */
async function startDemo() {
  const daemon = new Daemon({ fromConfig: path.resolve(opts.config) });
  await daemon.start();
  // The office token scripts/run prints: every branch of the config.
  const branches = [...fs.readFileSync(daemon.config, 'utf8').matchAll(/^id = "(.*)"$/gm)].map((m) => m[1]).join(',');
  const sim = spawn(visitSimBinary(), ['--config', daemon.config, '--progress', '10', ...simArgs], { stdio: ['ignore', 'inherit', 'inherit'] });
  const exited = new Promise((resolve) => sim.on('exit', (code, signal) => resolve(code ?? signal)));
  const office = daemon.token('office', 'office', branches);
  return {
    url: `${daemon.origin}/#token=${office}`,
    async stop() {
      if (sim.exitCode === null && sim.signalCode === null) sim.kill('SIGINT'); // Ctrl-C: it reports and ends
      await exited;
      await daemon.dispose();
    },
  };
}

/** Waits until the board shows a busy morning (or says why not in time). */
async function waitBusy(page) {
  const [hh, mm] = opts.at.split(':').map(Number);
  const seen = () => page.evaluate(() => ({
    clock: document.querySelector('#clock-time')?.textContent ?? '',
    late: Number(document.querySelector('.k-late .value')?.textContent),
    missed: Number(document.querySelector('.k-missed .value')?.textContent),
    alerts: document.querySelectorAll('#alerts > li').length,
  }));
  const deadline = Date.now() + WAIT_MS;
  let told = 0;
  for (;;) {
    const s = await seen();
    const [h, m] = s.clock.split(':').map(Number);
    if (h * 60 + m >= hh * 60 + mm && s.late >= BUSY.late && s.missed >= BUSY.missed && s.alerts >= BUSY.alerts) return s;
    if (Date.now() > deadline) throw new Error(`the board was not busy in time: ${JSON.stringify(s)}`);
    if (Date.now() - told > 30000) {
      told = Date.now();
      console.log(`screenshot: waiting for ${opts.at} and a busy board: ${JSON.stringify(s)}`);
    }
    await page.waitForTimeout(1000);
  }
}

async function extras(page) {
  await page.setViewportSize({ width: 820, height: 1180 });
  await page.waitForTimeout(400);
  await page.screenshot({ path: out.replace(/\.png$/, '-tablet.png') });
  await page.setViewportSize({ width: 1366, height: 768 });
  await page.locator('.tl-visit[data-state="missed"], .tl-visit[data-state="late"]').first().click();
  await page.waitForTimeout(300);
  await page.screenshot({ path: out.replace(/\.png$/, '-detail.png') });
  await page.keyboard.press('Escape');
  await page.click('#report-open');
  await page.waitForSelector('.report-table');
  await page.screenshot({ path: out.replace(/\.png$/, '-report.png') });
}

const demo = opts.url ? null : await startDemo();
try {
  const url = opts.url ?? demo.url;
  const token = new URL(url).hash.match(/token=([^&]+)/)?.[1];
  if (!token) throw new Error(`no #token=... in ${url}`);
  const browser = await launchBrowser({ timezoneId: await firstZone(url, token) });
  try {
    const page = await browser.newPage();
    const problems = [];
    page.on('console', (msg) => { if (msg.type() === 'error') problems.push(msg.text()); });
    page.on('pageerror', (err) => problems.push(err.message));
    await page.goto(url);
    await page.waitForSelector('#conn-status[data-state="live"]', { timeout: 15000 });
    const busy = await waitBusy(page);
    // The timeline was scrolled to now when the board opened; now has moved on since.
    await page.click('#to-now');
    await page.mouse.move(0, 0);
    await page.waitForTimeout(1200);
    await page.screenshot({ path: out });
    console.log(`screenshot: ${out} at ${busy.clock} (late ${busy.late}, missed ${busy.missed}, ${busy.alerts} open alerts)`);
    if (process.env.EXTRA) await extras(page);
    if (problems.length) throw new Error(`the board logged errors:\n${problems.join('\n')}`);
  } finally {
    await browser.close();
  }
} finally {
  await demo?.stop();
}
