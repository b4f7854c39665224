// The timeline: one row per carer, the day's visits as blocks at their scheduled times,
// the actual time on site beneath each block with check-in (▼) and check-out (▲) marks,
// and a now-line. Drawn from the data each time it changes (coalesced to one frame).
// The axis and the now-line are in the board's zone; a visit's own times in its branch's.

import { h, icon, clear } from './dom.js';
import { carerRows, stateWord, UNASSIGNED, formatMinutes } from './model.js';
import { clock, startOfHour } from './time.js';
import { branchZone } from './branches.js';

const MIN = 60000;
const HOUR = 60 * MIN;
const NAME_COL_PX = 128;
const LANE_PX = 46;

/** Lanes within one carer's row so that overlapping visits do not hide each other. */
function lanes(visits) {
  const ends = [];
  const lane = new Map();
  for (const v of visits) {
    const s = Date.parse(v.start);
    let i = ends.findIndex((end) => end <= s);
    if (i === -1) {
      i = ends.length;
      ends.push(0);
    }
    ends[i] = Date.parse(v.end);
    lane.set(v.id, i);
  }
  return { lane, count: Math.max(1, ends.length) };
}

/** The span of time the timeline covers: the day's visits and now, in whole hours of the zone. */
export function timeRange(visits, now, zone) {
  let lo = now;
  let hi = now;
  for (const v of visits) {
    lo = Math.min(lo, Date.parse(v.start));
    hi = Math.max(hi, Date.parse(v.end));
    for (const r of [...v.check_ins, ...v.check_outs]) {
      const t = Date.parse(r.at);
      if (Number.isFinite(t)) {
        lo = Math.min(lo, t);
        hi = Math.max(hi, t);
      }
    }
  }
  const t0 = startOfHour(lo - 15 * MIN, zone);
  let t1 = startOfHour(hi + 15 * MIN, zone) + HOUR;
  if (t1 - t0 < 3 * HOUR) t1 = t0 + 3 * HOUR;
  return { t0, t1 };
}

/** What a screen reader says for a block, and what its tooltip shows. */
export function describeVisit(v, carer) {
  const zone = branchZone(v.branch);
  const parts = [
    `${clock(v.start, zone)} to ${clock(v.end, zone)}`,
    v.client?.name || v.client?.id,
    stateWord(v.state),
  ];
  if (v.state === 'late' || v.state === 'missed') {
    if (v.eta) parts.push(`expected ${clock(v.eta, zone)}${v.eta_reason ? ` (${v.eta_reason})` : ''}`);
  }
  if (v.check_ins.length) {
    const own = v.check_ins.find((r) => r.carer === carer) ?? v.check_ins[0];
    parts.push(`checked in ${clock(own.at, zone)}${v.late_by_s > 0 && v.flags.includes('late_arrival') ? `, ${formatMinutes(v.late_by_s)} late` : ''}`);
  }
  const out = v.check_outs.find((r) => r.carer === carer);
  if (out) parts.push(`checked out ${clock(out.at, zone)}`);
  if (v.time_critical) parts.push('time-critical');
  if (v.carers.length > 1) parts.push(`double-up with ${v.carers.filter((c) => c !== carer).join(', ')}`);
  if (v.flags.includes('outside_geofence')) parts.push('checked in outside the geofence');
  if (v.flags.includes('short')) parts.push('short');
  return parts.filter(Boolean).join(', ');
}

/** Small marks in a block's corner: time-critical, double-up, checked in away from the client. */
function badges(v) {
  const marks = [
    v.time_critical ? icon('pill', 'badge-icon') : null,
    v.carers.length > 1 ? icon('pair', 'badge-icon') : null,
    v.flags.includes('outside_geofence') || v.flags.includes('tag_mismatch') ? icon('pin', 'badge-icon flag-icon') : null,
  ].filter(Boolean);
  return marks.length ? h('span', { class: 'tl-badges' }, marks) : null;
}

export class Timeline {
  constructor(container, { onOpen }) {
    this.container = container;
    this.onOpen = onOpen;
    this.range = null;
    this.pxPerMin = 2;
    this.scroller = null;
    this.nowLine = null;
    this.nowLabel = null;
    this.ticks = []; // [{el, t}]: the axis's hour labels, some hidden under the now-label
    this.openBars = []; // [{el, from, width}]: bars of visits still open, which end at now
    this.scrolledOnce = false;
    this.pressedAt = null;
    container.addEventListener('pointerdown', () => { this.pressedAt = performance.now(); });
    for (const type of ['pointerup', 'pointercancel', 'blur']) {
      window.addEventListener(type, () => { this.pressedAt = null; });
    }
  }

  /**
   * True while a pointer is down on the timeline (a redraw then would eat the click); for a
   * second and a half at most, should the release never be seen.
   */
  get pressed() {
    return this.pressedAt !== null && performance.now() - this.pressedAt < 1500;
  }

  x(t) {
    return ((t - this.range.t0) / MIN) * this.pxPerMin;
  }

  /**
   * visits: the filtered visits to show; allVisits: the whole day (for the range, so that
   * filtering does not move the axis); zoom: 'fit' or hours visible; zone: the axis's zone
   * (undefined: the browser's).
   */
  render({ visits, allVisits, now, zoom, zone, emptyText }) {
    const focusedId = document.activeElement?.dataset?.visit;
    const focusedCarer = document.activeElement?.dataset?.carer;
    const leftTime = this.scroller && this.range ? this.range.t0 + (this.scroller.scrollLeft / this.pxPerMin) * MIN : null;
    const oldTop = this.scroller?.scrollTop ?? 0;

    this.zone = zone;
    this.range = timeRange(allVisits, now, zone);
    this.nowForBars = now;
    // A short day still fills the window it is shown in.
    if (zoom !== 'fit' && this.range.t1 - this.range.t0 < Number(zoom) * HOUR) {
      this.range.t1 = this.range.t0 + Number(zoom) * HOUR;
    }
    const available = Math.max(200, this.container.clientWidth - NAME_COL_PX - 2);
    const spanMin = (this.range.t1 - this.range.t0) / MIN;
    this.pxPerMin = zoom === 'fit' ? available / spanMin : available / (Number(zoom) * 60);
    const width = Math.ceil(spanMin * this.pxPerMin);

    const head = h('div', { class: 'tl-head', 'aria-hidden': 'true' },
      h('div', { class: 'tl-corner' }, 'Carer'));
    const ticks = h('div', { class: 'tl-ticks', style: { width: `${width}px` } });
    const hourPx = this.pxPerMin * 60;
    const labelEvery = hourPx < 40 ? 3 : hourPx < 70 ? 2 : 1;
    this.ticks = [];
    this.labelHalf = undefined; // measured again for the new axis
    for (let t = this.range.t0, i = 0; t <= this.range.t1; t += HOUR, i++) {
      const el = h('span', { class: `tl-tick${i % labelEvery ? ' minor' : ''}`, style: { left: `${this.x(t)}px` } },
        i % labelEvery ? '' : clock(t, zone));
      ticks.append(el);
      if (!(i % labelEvery)) this.ticks.push({ el, t });
    }
    head.append(ticks);

    const body = h('div', { class: 'tl-body' });
    this.openBars = [];
    const rows = carerRows(visits);
    rows.forEach((row, i) => body.append(this.row(row, width, `tl-carer-${i}`)));
    if (!rows.length) body.append(h('p', { class: 'empty tl-empty' }, emptyText));

    this.nowLine = h('div', { class: 'tl-now', 'aria-hidden': 'true' }, this.nowLabel = h('span', { class: 'tl-now-label' }));
    const grid = h('div', { class: 'tl-grid', style: { width: `${NAME_COL_PX + width}px` } }, head, body, this.nowLine);
    this.scroller = h('div', { class: 'tl-scroll', tabindex: '-1' }, grid);
    clear(this.container).append(this.scroller);
    this.moveNow(now);

    if (!this.scrolledOnce) {
      this.scrolledOnce = true;
      this.scrollToNow(now);
    } else {
      this.scroller.scrollLeft = Math.max(0, this.x(leftTime));
      this.scroller.scrollTop = oldTop;
    }
    if (focusedId) {
      const sel = `[data-visit="${CSS.escape(focusedId)}"][data-carer="${CSS.escape(focusedCarer ?? '')}"]`;
      this.container.querySelector(sel)?.focus({ preventScroll: true });
    }
  }

  row({ carer, visits }, width, nameId) {
    const { lane, count } = lanes(visits);
    const name = carer === UNASSIGNED ? 'Unassigned' : carer;
    const track = h('div', { class: 'tl-track', style: { width: `${width}px`, height: `${count * LANE_PX}px` } });
    for (const v of visits) track.append(...this.block(v, carer, lane.get(v.id)));
    return h('div', { class: 'tl-row', role: 'group', 'aria-labelledby': nameId },
      h('div', { class: 'tl-name', id: nameId }, name,
        h('span', { class: 'tl-name-count' }, `${visits.length} visit${visits.length === 1 ? '' : 's'}`)),
      track);
  }

  block(v, carer, laneIndex) {
    const s = Date.parse(v.start);
    const e = Date.parse(v.end);
    const left = this.x(s);
    const w = Math.max(6, this.x(e) - left);
    const top = laneIndex * LANE_PX;
    // Narrow blocks keep the icon (and the client when it fits); the word is in the label.
    const narrow = w < 60;
    const compact = !narrow && w < 118;
    const zone = branchZone(v.branch);
    const label = describeVisit(v, carer);
    const classes = ['tl-visit', `st-${v.state}`];
    if (narrow) classes.push('narrow');
    if (compact) classes.push('compact');
    if (v.time_critical) classes.push('critical-visit');
    const button = h('button', {
      type: 'button',
      class: classes.join(' '),
      style: { left: `${left}px`, width: `${w}px`, top: `${top + 3}px` },
      title: label,
      'aria-label': label,
      dataset: { visit: v.id, carer, state: v.state },
      onclick: () => this.onOpen(v.id),
    },
    icon(v.state, 'state-icon'),
    h('span', { class: 'tl-text' },
      h('span', { class: 'tl-state' }, stateWord(v.state)),
      h('span', { class: 'tl-client' }, v.client?.name || v.client?.id || v.id)),
    badges(v));

    const out = [button];
    // What actually happened, under the plan: on site from this carer's check-in to their
    // check-out (or to now), with the marks.
    const ci = v.check_ins.find((r) => r.carer === carer);
    const co = v.check_outs.find((r) => r.carer === carer);
    if (ci) {
      const a = Date.parse(ci.at);
      const b = co ? Date.parse(co.at) : null;
      const open = !co && ['in_progress', 'overrunning', 'no_checkout'].includes(v.state);
      const endT = b ?? (open ? Math.max(a, this.nowForBars ?? a) : a);
      const bar = h('div', {
        class: `tl-actual st-${v.state}${open ? ' open' : ''}`,
        style: { left: `${this.x(a)}px`, width: `${this.barWidth(a, endT)}px`, top: `${top + LANE_PX - 9}px` },
        'aria-hidden': 'true',
      });
      out.push(bar);
      if (open) this.openBars.push({ el: bar, from: a });
      out.push(h('div', { class: 'tl-mark in', style: { left: `${this.x(a)}px`, top: `${top}px` }, title: `${carer} checked in ${clock(ci.at, zone)}`, 'aria-hidden': 'true' }));
      if (co) out.push(h('div', { class: 'tl-mark out', style: { left: `${this.x(b)}px`, top: `${top + LANE_PX - 10}px` }, title: `${carer} checked out ${clock(co.at, zone)}`, 'aria-hidden': 'true' }));
    } else if (v.eta && (v.state === 'scheduled' || v.state === 'late' || v.state === 'missed')) {
      out.push(h('div', {
        class: 'tl-eta', style: { left: `${this.x(Date.parse(v.eta))}px`, top: `${top + 2}px`, height: `${LANE_PX - 6}px` },
        title: `Expected ${clock(v.eta, zone)}${v.eta_reason ? `: ${v.eta_reason}` : ''}`, 'aria-hidden': 'true',
      }));
    }
    return out;
  }

  barWidth(from, to) {
    return Math.max(2, this.x(to) - this.x(from));
  }

  /** Each second: the now-line, and the bars of the visits still open, which end at it. */
  moveNow(now) {
    if (!this.nowLine || !this.range) return;
    this.nowForBars = now;
    const inside = now >= this.range.t0 && now <= this.range.t1;
    this.nowLine.hidden = !inside;
    this.nowLine.style.left = `${NAME_COL_PX + this.x(now)}px`;
    this.nowLabel.textContent = `Now ${clock(now, this.zone)}`;
    // Written only when the whole-pixel width changes, and never past the timeline's end.
    const end = Math.min(now, this.range.t1);
    for (const bar of this.openBars) {
      const width = `${Math.round(this.barWidth(bar.from, Math.max(bar.from, end)))}px`;
      if (bar.width !== width) {
        bar.el.style.width = width;
        bar.width = width;
      }
    }
    this.uncoverAxis(now, inside);
  }

  /**
   * The now-label sits on the axis: an hour label it would half cover is hidden instead (the
   * label says the time itself), and shown again once the line has moved on.
   */
  uncoverAxis(now, inside) {
    // Widths are read once per render, not each second: reading them after the bars' widths
    // were written forced a layout of the whole timeline every second.
    // (A hidden element measures 0: measured again until it shows.)
    if (inside && !this.labelHalf) this.labelHalf = this.nowLabel.offsetWidth ? this.nowLabel.offsetWidth / 2 + 4 : 0;
    const half = inside ? this.labelHalf : 0;
    const nowX = this.x(now);
    for (const tick of this.ticks) {
      if (!tick.width) tick.width = tick.el.offsetWidth;
      const x = this.x(tick.t);
      tick.el.classList.toggle('under-now', inside && x < nowX + half && x + tick.width > nowX - half);
    }
  }

  scrollToNow(now) {
    if (!this.scroller || !this.range) return;
    const visible = this.scroller.clientWidth - NAME_COL_PX;
    this.scroller.scrollLeft = Math.max(0, this.x(now) - visible * 0.4);
  }
}
