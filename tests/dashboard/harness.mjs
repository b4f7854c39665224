// The real visitd binary for the browser tests: a temp config and journal, a port picked
// here (the board's Origin must be in allowed_origins before the daemon starts), tokens
// minted by `visitd token`, the HTTP API, and carers over /ws/carer (the `ws` package:
// Node 20 has no global WebSocket). Also Chromium through playwright-core, never downloaded:
// Debian's /usr/bin/chromium.

import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(here, '../..');
export const DASHBOARD = path.join(REPO, 'dashboard');
/** Screenshots: VISITD_ARTIFACTS (CTest points it into the build directory), else here. */
export const ARTIFACTS = path.resolve(process.env.VISITD_ARTIFACTS ?? path.join(here, 'artifacts'));

/** Imports that need `npm ci` first fail with what to do, not a stack trace. */
export async function need(name) {
  try {
    return await import(name);
  } catch (e) {
    throw new Error(`${name} is not installed: run \`npm ci\` in tests/dashboard (${e.message})`);
  }
}

/** A program of the build: the path in env `variable` (CTest sets it), else build/`fallback`. */
function builtBinary(variable, fallback) {
  const candidates = [process.env[variable], path.join(REPO, 'build', fallback)].filter(Boolean);
  for (const c of candidates) if (fs.existsSync(c)) return path.resolve(c);
  throw new Error(`no ${path.basename(fallback)} binary: set ${variable} (tried ${candidates.join(', ')})`);
}

export const visitdBinary = () => builtBinary('VISITD_BINARY', 'daemon/visitd');
export const visitSimBinary = () => builtBinary('VISIT_SIM_BINARY', 'tools/visit-sim/visit-sim');

/** A free loopback port: bound and released here, then given to visitd. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/**
 * A zone where it is day now (04:00-20:00), so that a rota "around now" never straddles
 * the branch's midnight, whatever time the tests run. The browser uses the same zone.
 */
export function daytimeZone(now = new Date()) {
  const zones = ['Europe/London', 'America/New_York', 'America/Los_Angeles', 'Pacific/Auckland', 'Asia/Tokyo', 'Asia/Kolkata'];
  for (const zone of zones) {
    const hour = Number(new Intl.DateTimeFormat('en-GB', { timeZone: zone, hour: '2-digit', hourCycle: 'h23' }).format(now));
    if (hour >= 4 && hour < 20) return zone;
  }
  return 'Europe/London';
}

/** Polls fn until it answers something truthy, and answers that; fails after ms. */
export async function until(what, fn, ms = 10000, every = 100) {
  const deadline = Date.now() + ms;
  let last;
  while (Date.now() < deadline) {
    last = await fn();
    if (last) return last;
    await new Promise((r) => setTimeout(r, every));
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what} (last: ${JSON.stringify(last)})`);
}

/**
 * Collects the page's console errors and uncaught exceptions into `problems`, but those
 * `expected(text, url)` says the test provokes on purpose.
 */
export function collectConsoleErrors(page, problems, expected = () => false) {
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const text = msg.text();
    const url = msg.location()?.url ?? '';
    if (!expected(text, url)) problems.push(`${text} (${url})`);
  });
  page.on('pageerror', (err) => problems.push(`uncaught: ${err.message}`));
  return problems;
}

export function localDate(t, zone) {
  return new Intl.DateTimeFormat('en-CA', { timeZone: zone, year: 'numeric', month: '2-digit', day: '2-digit' }).format(t);
}

export function rfc3339(ms) {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

export function rotaCsv(rows) {
  const cols = ['visit_id', 'client_id', 'client_name', 'lat', 'lon', 'carers', 'start', 'end', 'type', 'time_critical', 'notes'];
  const field = (v) => {
    const s = String(v ?? '');
    return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  };
  return [cols.join(','), ...rows.map((r) => cols.map((c) => field(c === 'carers' ? r.carers.join(';') : c === 'start' || c === 'end' ? rfc3339(r[c]) : r[c])).join(','))].join('\r\n') + '\r\n';
}

/**
 * A config of the repository (config/visitd.demo.toml, say) made fit to run here: the same
 * text but for the keys given, per section ({server: {listen: ...}, store: {dir: ...}}),
 * which replace the file's own or are added under the section's header.
 */
export function adaptConfig(text, changes) {
  for (const name of Object.keys(changes)) {
    if (!text.match(new RegExp(`^\\s*\\[${name}\\]`, 'm'))) throw new Error(`the config has no [${name}] section`);
  }
  let section = null;
  const out = [];
  for (const line of text.split('\n')) {
    const head = line.match(/^\s*\[\[?([A-Za-z_.]+)\]\]?\s*(#.*)?$/);
    if (head) {
      section = head[1];
      out.push(line, ...Object.entries(changes[section] ?? {}).map(([k, v]) => `${k} = ${JSON.stringify(v)}`));
      continue;
    }
    const key = line.match(/^\s*([A-Za-z_]+)\s*=/)?.[1];
    if (!(key && changes[section] && key in changes[section])) out.push(line);
  }
  return out.join('\n');
}

export class Daemon {
  /**
   * options: thresholds (TOML lines for [thresholds]), branches [{id, name, timezone}],
   * clock {start, rate}: a demo clock (docs/operations.md, `[clock]`). Or fromConfig: a
   * config file to run as it is, but for where it listens, its journal and the dashboard
   * (this run's: a free port, the temp directory, this checkout's).
   */
  constructor(options = {}) {
    this.binary = visitdBinary();
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'visitd-board-'));
    this.options = options;
    this.proc = null;
    this.port = null;
    this.log = '';
  }

  get origin() {
    return `http://127.0.0.1:${this.port}`;
  }

  writeConfig() {
    this.config = path.join(this.dir, 'visitd.toml');
    if (this.options.fromConfig) {
      fs.writeFileSync(this.config, adaptConfig(fs.readFileSync(this.options.fromConfig, 'utf8'), {
        server: { listen: `127.0.0.1:${this.port}`, allowed_origins: [this.origin], dashboard: DASHBOARD },
        store: { dir: path.join(this.dir, 'data') },
      }));
      return;
    }
    const branches = (this.options.branches ?? [{ id: 'B1', name: 'North', timezone: 'Europe/London' }])
      .map((b) => `[[branches]]\nid = "${b.id}"\nname = "${b.name ?? b.id}"\ntimezone = "${b.timezone}"\n`).join('\n');
    const c = this.options.clock;
    const clock = c ? `\n[clock]\nstart = ${JSON.stringify(c.start)}\nrate = ${c.rate}\n` : '';
    fs.writeFileSync(this.config, `[server]
listen = "127.0.0.1:${this.port}"
allowed_origins = ["${this.origin}"]
dashboard = ${JSON.stringify(DASHBOARD)}

[store]
kind = "journal"
dir = ${JSON.stringify(path.join(this.dir, 'data'))}

[auth]
secret = "board-test-secret-0123456789abcdef"

[thresholds]
${this.options.thresholds ?? 'late_after = "3s"\nmissed_after = "30s"'}
${clock}
${branches}`);
  }

  async start() {
    for (let tries = 0; ; tries++) {
      if (this.port === null || tries > 0) this.port = await freePort();
      this.writeConfig();
      try {
        await this.spawn();
        return this;
      } catch (e) {
        // Another process took the port between our probe and visitd's bind: pick another.
        if (tries < 3 && /address already in use|bind/i.test(this.log)) continue;
        throw e;
      }
    }
  }

  /** Starts visitd again on the same port and journal (after stop or kill). */
  async restart() {
    await this.spawn();
    return this;
  }

  spawn() {
    this.log = '';
    this.spawnedAt = Date.now();
    const proc = spawn(this.binary, ['run', '--config', this.config], { cwd: this.dir, stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc = proc;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`visitd did not start listening within 10 s:\n${this.log}`)), 10000);
      const onData = (chunk) => {
        this.log += chunk.toString();
        const m = this.log.match(/listening addr=\S+:(\d+)/);
        if (m) {
          clearTimeout(timer);
          if (Number(m[1]) !== this.port) reject(new Error(`visitd listens on ${m[1]}, not ${this.port}`));
          else resolve();
        }
      };
      proc.stdout.on('data', onData);
      proc.stderr.on('data', onData);
      proc.on('exit', (code, signal) => {
        if (this.proc === proc) this.proc = null;
        clearTimeout(timer);
        reject(new Error(`visitd exited (${code ?? signal}) before listening:\n${this.log}`));
      });
    });
  }

  /**
   * The demo clock ([clock]) as visitd logged it at start: demo time `start` (ms) was real
   * time `real` (when the process was spawned; its clock starts a few ms later), running
   * `rate` times as fast. realAt(demo) is when a demo time comes, in real ms.
   */
  demoClock() {
    const m = this.log.match(/demo_clock start=(\S+) rate=([\d.]+)/);
    if (!m) throw new Error(`visitd logged no demo_clock line:\n${this.log}`);
    const clock = { start: Date.parse(m[1]), rate: Number(m[2]), real: this.spawnedAt };
    clock.realAt = (demo) => clock.real + (demo - clock.start) / clock.rate;
    return clock;
  }

  /** SIGKILL (a crash) or SIGTERM (a graceful stop); resolves when the process is gone. */
  stop(signal = 'SIGTERM') {
    const proc = this.proc;
    if (!proc) return Promise.resolve();
    return new Promise((resolve) => {
      proc.once('exit', () => resolve());
      proc.kill(signal);
    });
  }

  async dispose() {
    await this.stop('SIGTERM');
    if (!process.env.KEEP_TEMP) fs.rmSync(this.dir, { recursive: true, force: true });
  }

  token(role, sub, branches) {
    const args = ['token', '--config', this.config, '--role', role, '--sub', sub, '--ttl', '2h'];
    if (branches) args.push('--branches', branches);
    return execFileSync(this.binary, args, { encoding: 'utf8' }).trim();
  }

  async http(method, target, token, { body, contentType, accept } = {}) {
    const headers = { Authorization: `Bearer ${token}` };
    if (contentType) headers['Content-Type'] = contentType;
    if (accept) headers.Accept = accept;
    const res = await fetch(`${this.origin}${target}`, { method, headers, body });
    const text = await res.text();
    let json = null;
    try { json = JSON.parse(text); } catch { /* CSV or empty */ }
    return { status: res.status, json, text, headers: res.headers };
  }

  async importRota(token, branch, date, rows) {
    const r = await this.http('PUT', `/api/rota?branch=${branch}&date=${date}`, token, { body: rotaCsv(rows), contentType: 'text/csv' });
    if (r.status !== 200) throw new Error(`rota import answered ${r.status}: ${r.text}`);
    return r.json;
  }

  /** A carer's phone on /ws/carer: resolves once the rota has arrived. */
  async carer(token) {
    const { default: WebSocket } = await need('ws');
    const ws = new WebSocket(`ws://127.0.0.1:${this.port}/ws/carer`, { headers: { Authorization: `Bearer ${token}` } });
    const phone = { ws, messages: [], waiters: [] };
    ws.on('message', (data) => {
      const msg = JSON.parse(data.toString());
      phone.messages.push(msg);
      phone.waiters = phone.waiters.filter((w) => !(w.match(msg) && (w.resolve(msg), true)));
    });
    phone.next = (match, ms = 5000) => {
      const seen = phone.messages.find(match);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('the phone got no matching message in time')), ms);
        phone.waiters.push({ match, resolve: (m) => { clearTimeout(timer); resolve(m); } });
      });
    };
    let n = 0;
    /** Sends an event and resolves with its ack (or error). */
    phone.send = (event) => {
      const id = event.id ?? `ev-${Date.now()}-${n++}`;
      ws.send(JSON.stringify({ ...event, id }));
      return phone.next((m) => (m.type === 'ack' || m.type === 'error') && m.id === id);
    };
    phone.close = () => ws.close();
    await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
    await phone.next((m) => m.type === 'rota');
    return phone;
  }
}

export const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

/**
 * Debian's Chromium with a fresh profile; the caller closes the context. `timezoneId` is
 * emulated by the page; `env` (e.g. {TZ}) is the browser process's own environment.
 */
export async function launchBrowser({ timezoneId, env, viewport = { width: 1366, height: 768 } } = {}) {
  const { chromium } = await need('playwright-core');
  const executablePath = process.env.CHROMIUM ?? '/usr/bin/chromium';
  if (!fs.existsSync(executablePath)) {
    throw new Error(`${executablePath} is missing: apt-get install chromium (or set CHROMIUM)`);
  }
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'visitd-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport,
    timezoneId,
    env: env ? { ...process.env, ...env } : undefined,
    locale: 'en-GB',
    acceptDownloads: true,
  });
  const close = context.close.bind(context);
  context.close = async () => {
    await close();
    fs.rmSync(profile, { recursive: true, force: true });
  };
  return context;
}
