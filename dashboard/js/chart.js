// Lateness through the day as a small inline SVG: for each hour of scheduled starts, a bar
// of the visits on time, late and missed so far (stacked in that order, bottom up), with a
// text version for screen readers. No library.

import { s, h, clear } from './dom.js';

const W = 300;
const H = 78;
const PAD_L = 4;
const PAD_B = 16;
const PAD_T = 6;

export function renderChart(container, buckets) {
  clear(container);
  const decided = buckets.filter((b) => b.on_time + b.late + b.missed > 0);
  if (!buckets.length) {
    container.append(h('p', { class: 'muted small' }, 'No visits yet.'));
    return;
  }
  const first = buckets[0].hour;
  const last = buckets[buckets.length - 1].hour;
  const span = last - first + 1;
  const max = Math.max(1, ...buckets.map((b) => b.on_time + b.late + b.missed + b.pending));
  const slot = (W - PAD_L) / Math.max(span, 6);
  const barW = Math.max(4, slot * 0.7);
  const y = (n) => ((H - PAD_B - PAD_T) * n) / max;

  const label = decided.length
    ? `Arrivals by hour: ${decided.map((b) => `${String(b.hour).padStart(2, '0')}:00 ${b.on_time} on time, ${b.late} late, ${b.missed} missed`).join('; ')}`
    : 'No visit has been due yet.';
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart-svg', role: 'img', 'aria-label': label });
  svg.append(s('title', {}, label));
  svg.append(s('line', { x1: 0, x2: W, y1: H - PAD_B + 0.5, y2: H - PAD_B + 0.5, class: 'axis' }));
  for (const b of buckets) {
    const x = PAD_L + (b.hour - first) * slot + (slot - barW) / 2;
    let base = H - PAD_B;
    for (const [key, cls] of [['on_time', 'c-on-time'], ['late', 'c-late'], ['missed', 'c-missed'], ['pending', 'c-pending']]) {
      const n = b[key];
      if (!n) continue;
      const hgt = y(n);
      base -= hgt;
      const r = s('rect', { x, y: base, width: barW, height: Math.max(1, hgt - 0.5), class: cls });
      r.append(s('title', {}, `${String(b.hour).padStart(2, '0')}:00 — ${n} ${key.replace('_', ' ')}${key === 'late' && b.mean_late_min ? ` (mean ${Math.round(b.mean_late_min)} min after start)` : ''}`));
      svg.append(r);
    }
    if ((b.hour - first) % Math.ceil(span / 6) === 0) {
      svg.append(s('text', { x: x + barW / 2, y: H - 4, class: 'tick', 'text-anchor': 'middle' }, `${String(b.hour).padStart(2, '0')}`));
    }
  }
  container.append(svg,
    h('p', { class: 'chart-key', 'aria-hidden': 'true' },
      h('span', { class: 'key c-on-time' }), 'on time ',
      h('span', { class: 'key c-late' }), 'late ',
      h('span', { class: 'key c-missed' }), 'missed ',
      h('span', { class: 'key c-pending' }), 'not yet due'));
}
