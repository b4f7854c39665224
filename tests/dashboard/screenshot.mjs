// Makes docs/board.png: the real daemon, a realistic agency day up to now (carers' phones
// replaying the morning's check-ins and check-outs with their device times), and the board
// in Chromium at 1366x768. Not a test; run it by hand after changing the board's looks:
//
//   VISITD_BINARY=build/daemon/visitd node tests/dashboard/screenshot.mjs [out.png]
//
// The day is placed in a time zone where it is early afternoon now, so that the picture
// shows a day in progress whenever it is taken.

import path from 'node:path';
import { Daemon, launchBrowser, localDate, REPO } from './harness.mjs';

const MIN = 60000;
const out = process.argv[2] ?? path.join(REPO, 'docs/board.png');

/** A zone where the local time now is between 13:30 and 14:30 (whole-hour offsets). */
function afternoonZone(now) {
  const d = new Date(now);
  const target = d.getUTCMinutes() >= 30 ? 13 : 14;
  const offset = ((target - d.getUTCHours() + 36) % 24) - 12; // hours east of UTC, -12..11
  // Etc/GMT signs are inverted: Etc/GMT-2 is UTC+2.
  return offset === 0 ? 'Etc/UTC' : `Etc/GMT${offset > 0 ? '-' : '+'}${Math.abs(offset)}`;
}

const now = Date.now();
const zone = process.env.ZONE ?? afternoonZone(now);
const localNow = new Date(new Date(now).toLocaleString('en-US', { timeZone: zone }));
/** ms of today's local HH:MM in `zone`. */
const at = (hhmm) => {
  const [hh, mm] = hhmm.split(':').map(Number);
  const minutesNow = localNow.getHours() * 60 + localNow.getMinutes() + localNow.getSeconds() / 60;
  return Math.round(now + (hh * 60 + mm - minutesNow) * MIN);
};

const town = { lat: 53.9921, lon: -1.5418 };
const clients = [
  ['CL01', 'Mrs E. Patel'], ['CL02', 'Mr J. Hughes'], ['CL03', 'Mrs D. Okafor'], ['CL04', 'Mr R. Lindqvist'],
  ['CL05', 'Mrs M. Byrne'], ['CL06', 'Mr T. Adeyemi'], ['CL07', 'Miss K. Walsh'], ['CL08', 'Mr S. Novak'],
  ['CL09', 'Mrs A. Rahman'], ['CL10', 'Mr P. Quinn'], ['CL11', 'Mrs G. Fischer'], ['CL12', 'Mr L. Moreau'],
  ['CL13', 'Mrs H. Kowalski'], ['CL14', 'Mr F. Brennan'], ['CL15', 'Mrs I. Costa'], ['CL16', 'Mr W. Thompson'],
].map(([id, name], i) => ({ id, name, lat: town.lat + Math.sin(i * 1.7) * 0.02, lon: town.lon + Math.cos(i * 2.3) * 0.03 }));
const client = (id) => clients.find((c) => c.id === id);

// [visit, client, carers, start, end, type, time_critical, what happened]
// what: on_time | late:N (minutes) | missed | short | geo (outside geofence) | overrun |
//       running_late | cancelled | in (checked in, still there) | nothing (future)
const plan = [
  ['V101', 'CL01', ['Amira'], '07:30', '08:15', 'personal_care', 1, 'on_time'],
  ['V102', 'CL02', ['Amira'], '08:30', '09:00', 'medication', 1, 'on_time'],
  ['V103', 'CL03', ['Amira'], '09:30', '10:30', 'personal_care', 0, 'late:22'],
  ['V104', 'CL04', ['Amira'], '11:00', '11:45', 'domestic', 0, 'on_time'],
  ['V105', 'CL05', ['Amira'], '12:30', '13:15', 'meal', 0, 'overrun'],
  ['V106', 'CL06', ['Amira'], '14:00', '14:30', 'medication', 1, 'nothing'],
  ['V107', 'CL07', ['Amira'], '16:30', '17:15', 'personal_care', 0, 'nothing'],
  ['V111', 'CL08', ['Ben'], '07:45', '08:30', 'personal_care', 0, 'on_time'],
  ['V112', 'CL09', ['Ben', 'Chloe'], '09:00', '10:00', 'personal_care', 0, 'on_time'],
  ['V113', 'CL10', ['Ben'], '10:30', '11:00', 'meal', 0, 'short'],
  ['V114', 'CL11', ['Ben'], '12:15', '13:00', 'personal_care', 0, 'missed'],
  ['V115', 'CL12', ['Ben'], '13:30', '14:15', 'personal_care', 0, 'in'],
  ['V116', 'CL13', ['Ben'], '15:00', '15:45', 'domestic', 0, 'nothing'],
  ['V117', 'CL14', ['Ben', 'Daniel'], '18:00', '18:45', 'personal_care', 0, 'nothing'],
  ['V121', 'CL15', ['Chloe'], '07:30', '08:00', 'medication', 1, 'on_time'],
  ['V122', 'CL16', ['Chloe'], '10:30', '11:30', 'personal_care', 0, 'geo'],
  ['V123', 'CL01', ['Chloe'], '12:00', '12:30', 'meal', 0, 'late:9'],
  ['V124', 'CL02', ['Chloe'], '13:10', '13:40', 'medication', 1, 'running_late'],
  ['V125', 'CL03', ['Chloe'], '15:30', '16:15', 'personal_care', 0, 'nothing'],
  ['V126', 'CL04', ['Chloe'], '19:00', '19:30', 'meal', 0, 'nothing'],
  ['V131', 'CL05', ['Daniel'], '08:00', '09:00', 'personal_care', 0, 'on_time'],
  ['V132', 'CL06', ['Daniel'], '09:30', '10:15', 'domestic', 0, 'on_time'],
  ['V133', 'CL07', ['Daniel'], '11:00', '11:30', 'medication', 1, 'on_time'],
  ['V134', 'CL08', ['Daniel'], '12:30', '13:30', 'personal_care', 0, 'in'],
  ['V135', 'CL09', ['Daniel'], '14:30', '15:00', 'meal', 0, 'cancelled'],
  ['V136', 'CL10', ['Daniel'], '16:00', '16:45', 'personal_care', 0, 'nothing'],
  ['V141', 'CL11', ['Esther'], '07:00', '07:45', 'personal_care', 0, 'on_time'],
  ['V142', 'CL12', ['Esther'], '08:15', '09:00', 'personal_care', 0, 'late:17'],
  ['V143', 'CL13', ['Esther'], '09:45', '10:30', 'domestic', 0, 'on_time'],
  ['V144', 'CL14', ['Esther'], '11:15', '12:00', 'meal', 0, 'on_time'],
  ['V145', 'CL15', ['Esther'], '13:00', '13:30', 'medication', 1, 'late_now'],
  ['V146', 'CL16', ['Esther'], '17:00', '17:45', 'personal_care', 0, 'nothing'],
  ['V151', 'CL02', ['Farah'], '08:00', '08:30', 'medication', 1, 'on_time'],
  ['V152', 'CL04', ['Farah'], '10:00', '11:00', 'personal_care', 0, 'on_time'],
  ['V153', 'CL06', ['Farah'], '11:30', '12:15', 'domestic', 0, 'on_time'],
  ['V154', 'CL08', ['Farah'], '13:20', '14:00', 'personal_care', 0, 'in'],
  ['V155', 'CL10', ['Farah'], '15:00', '15:30', 'meal', 0, 'nothing'],
  ['V156', 'CL12', ['Farah'], '20:00', '20:45', 'personal_care', 0, 'nothing'],
  ['V161', 'CL13', ['Grace'], '08:30', '09:15', 'personal_care', 0, 'on_time'],
  ['V162', 'CL15', ['Grace'], '10:00', '10:30', 'medication', 1, 'on_time'],
  ['V163', 'CL01', ['Grace'], '11:45', '12:30', 'personal_care', 0, 'late:12'],
  ['V164', 'CL03', ['Grace'], '13:45', '14:30', 'meal', 0, 'in'],
  ['V165', 'CL05', ['Grace'], '16:00', '16:30', 'medication', 1, 'nothing'],
  ['V171', 'CL07', ['Hassan'], '07:15', '08:00', 'personal_care', 0, 'on_time'],
  ['V172', 'CL09', ['Hassan'], '09:15', '10:00', 'domestic', 0, 'on_time'],
  ['V173', 'CL11', ['Hassan'], '12:00', '12:45', 'personal_care', 0, 'on_time'],
  ['V174', 'CL13', ['Hassan'], '14:15', '15:00', 'personal_care', 0, 'nothing'],
  ['V175', 'CL15', ['Hassan'], '17:30', '18:15', 'meal', 0, 'nothing'],
  ['V181', 'CL16', ['Iwona'], '08:00', '08:45', 'personal_care', 0, 'on_time'],
  ['V182', 'CL14', ['Iwona'], '11:30', '12:15', 'personal_care', 0, 'on_time'],
  ['V183', 'CL12', ['Iwona'], '13:15', '13:45', 'meal', 0, 'on_time'],
  ['V184', 'CL10', ['Iwona'], '15:15', '16:00', 'personal_care', 0, 'nothing'],
];

const notes = {
  V102: 'Blister pack in the kitchen drawer. Record on the MAR chart.',
  V105: 'Likes tea before lunch. Check fridge dates.',
  V113: 'Client may be at day centre until 10:45.',
  V124: 'Insulin: must be given by 13:40.',
  V145: 'Time-critical medication; key safe code with the office.',
};

const daemon = new Daemon({
  thresholds: 'late_after = "15m"\nmissed_after = "60m"\n\n[thresholds.time_critical]\nlate_after = "5m"\nmissed_after = "30m"',
  branches: [{ id: 'B1', name: 'North', timezone: zone }],
});

try {
  await daemon.start();
  const admin = daemon.token('admin', 'root');
  const office = daemon.token('office', 'sam.office', 'B1');
  const rows = plan.map(([id, cl, carers, s, e, type, tc]) => {
    const c = client(cl);
    return { visit_id: id, client_id: c.id, client_name: c.name, lat: c.lat, lon: c.lon, carers, start: at(s), end: at(e), type, time_critical: tc ? 'true' : 'false', notes: notes[id] ?? '' };
  });
  await daemon.importRota(admin, 'B1', localDate(now, zone), rows);

  const phones = new Map();
  const phone = async (carer) => {
    if (!phones.has(carer)) phones.set(carer, await daemon.carer(daemon.token('carer', carer)));
    return phones.get(carer);
  };
  const near = (c, metres = 12) => ({ lat: c.lat + metres / 111000, lon: c.lon, accuracy: 10, method: 'gps' });
  const send = async (carer, event) => {
    const ack = await (await phone(carer)).send(event);
    if (ack.type !== 'ack') throw new Error(`${carer} ${event.type} ${event.visit}: ${ack.code} ${ack.message}`);
  };
  for (const [id, cl, carers, s, e, , , what] of plan) {
    const c = client(cl);
    const start = at(s);
    const end = at(e);
    const [kind, arg] = what.split(':');
    const inAt = kind === 'late' ? start + Number(arg) * MIN : start - 2 * MIN;
    const checkIn = (carer, t, where = near(c)) => send(carer, { type: 'check_in', visit: id, at: new Date(t).toISOString(), ...where });
    const checkOut = (carer, t, note) => send(carer, { type: 'check_out', visit: id, at: new Date(t).toISOString(), ...near(c), note });
    switch (kind) {
      case 'on_time':
      case 'late':
        for (const carer of carers) await checkIn(carer, inAt + (carer === carers[0] ? 0 : 3 * MIN));
        for (const carer of carers) await checkOut(carer, end + (kind === 'late' ? Number(arg) : 1) * MIN, 'All well. Meds taken, lunch eaten.');
        break;
      case 'short':
        await checkIn(carers[0], start);
        await checkOut(carers[0], start + 11 * MIN, 'Client at day centre, only time for meds.');
        break;
      case 'geo':
        await checkIn(carers[0], start - MIN, near(c, 420));
        await checkOut(carers[0], end, 'Parked two streets away; checked in from the car.');
        break;
      case 'overrun':
        await checkIn(carers[0], start - MIN);
        break;
      case 'in':
        await checkIn(carers[0], Math.min(now - MIN, start + 2 * MIN));
        break;
      case 'running_late':
        await send(carers[0], { type: 'running_late', visit: id, eta: new Date(now + 9 * MIN).toISOString(), reason: 'Previous client unwell, waiting for the GP' });
        break;
      case 'cancelled': {
        const r = await daemon.http('POST', `/api/visits/${id}/cancel`, office, { body: JSON.stringify({ reason: 'Client in hospital since last night' }), contentType: 'application/json' });
        if (r.status !== 200) throw new Error(`cancel ${id}: ${r.text}`);
        break;
      }
      default:
        break;
    }
  }
  // The office has seen the missed visit and is phoning round.
  const alerts = (await daemon.http('GET', '/api/alerts?state=open', office)).json.alerts;
  const missed = alerts.find((a) => a.visit === 'V114');
  if (missed) {
    await daemon.http('POST', `/api/alerts/${missed.id}/ack`, office, { body: JSON.stringify({ note: 'Calling Ben and the family' }), contentType: 'application/json' });
  }
  for (const p of phones.values()) p.close();

  const browser = await launchBrowser({ timezoneId: zone });
  try {
    const page = await browser.newPage();
    await page.goto(`${daemon.origin}/#token=${office}`);
    await page.waitForSelector('#conn-status[data-state="live"]');
    await page.waitForTimeout(600);
    await page.screenshot({ path: out });
    console.log(`board.png: ${out} (zone ${zone}, ${plan.length} visits, ${alerts.length} open alerts)`);
    if (process.env.EXTRA) {
      await page.setViewportSize({ width: 820, height: 1180 });
      await page.waitForTimeout(400);
      await page.screenshot({ path: out.replace(/\.png$/, '-tablet.png'), fullPage: false });
      await page.setViewportSize({ width: 1366, height: 768 });
      await page.click('[data-visit="V122"]');
      await page.waitForTimeout(300);
      await page.screenshot({ path: out.replace(/\.png$/, '-detail.png') });
      await page.keyboard.press('Escape');
      await page.click('#report-open');
      await page.waitForSelector('.report-table');
      await page.screenshot({ path: out.replace(/\.png$/, '-report.png') });
    }
  } finally {
    await browser.close();
  }
} finally {
  await daemon.dispose();
}
