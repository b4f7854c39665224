// The punctuality report for a branch and a date, from /api/reports/punctuality, and the
// same report as a CSV file (fetched with the token, saved from a blob: a plain link could
// not carry the Authorization header).

import { h, clear, announce } from './dom.js';
import { api } from './api.js';
import { isoDate, clock } from './time.js';
import { branchZone, branchLabel } from './branches.js';
import { formatMinutes } from './model.js';

export class ReportPanel {
  constructor(dialog, { branches, today }) {
    this.dialog = dialog;
    this.branches = branches;
    this.today = today;
    this.form = dialog.querySelector('#report-form');
    this.branch = dialog.querySelector('#report-branch');
    this.date = dialog.querySelector('#report-date');
    this.body = dialog.querySelector('#report-body');
    this.error = dialog.querySelector('#report-error');
    this.csv = dialog.querySelector('#report-csv');
    this.form.addEventListener('submit', (e) => {
      e.preventDefault();
      this.show();
    });
    this.csv.addEventListener('click', () => this.download());
    dialog.addEventListener('click', (e) => {
      if (e.target === dialog || e.target.closest('[data-close]')) dialog.close();
    });
  }

  open(preferredBranch) {
    const list = this.branches();
    const current = this.branch.value || preferredBranch;
    clear(this.branch).append(...list.map((b) => h('option', { value: b }, branchLabel(b))));
    if (list.includes(current)) this.branch.value = current;
    else if (list.includes(preferredBranch)) this.branch.value = preferredBranch;
    // Today is the branch's today, which need not be the browser's.
    if (!this.date.value) this.date.value = isoDate(this.today(), branchZone(this.branch.value));
    this.error.hidden = true;
    if (!this.dialog.open) this.dialog.showModal();
    if (list.length) this.show();
    else this.fail('No branch to report on: none is visible to your sign-in yet.');
  }

  fail(text) {
    this.error.textContent = text;
    this.error.hidden = false;
  }

  async show() {
    const branch = this.branch.value;
    const date = this.date.value;
    if (!branch || !date) return this.fail('Choose a branch and a date.');
    this.error.hidden = true;
    this.body.setAttribute('aria-busy', 'true');
    try {
      const r = await api.punctuality(branch, date);
      clear(this.body).append(...this.table(r));
    } catch (e) {
      clear(this.body);
      this.fail(`The report could not be loaded: ${e.plain ?? e.message}`);
    } finally {
      this.body.removeAttribute('aria-busy');
    }
  }

  table(r) {
    const pct = (x) => (x === null || x === undefined ? '—' : `${x}%`);
    const late = (x) => (x === null || x === undefined ? '—' : x < 60 ? `${Math.round(x)} s` : formatMinutes(x));
    const summary = h('dl', { class: 'report-summary' },
      ...[
        ['On time', pct(r.on_time_pct)], ['Visits', r.visits], ['On time', r.on_time], ['Late', r.late],
        ['Missed', r.missed], ['Not yet due', r.pending], ['In progress', r.in_progress],
        ['Completed', r.completed], ['Short', r.short], ['Cancelled', r.cancelled], ['Mean lateness', late(r.mean_late_s)],
      ].map(([k, v], i) => h('div', { class: i === 0 ? 'big' : '' }, h('dt', {}, k), h('dd', {}, String(v)))));
    const head = ['Carer', 'Visits', 'On time', 'Late', 'Missed', 'Not yet due', 'On time %', 'Mean lateness'];
    const rows = r.carers.map((c) => h('tr', {},
      h('th', { scope: 'row' }, c.carer), h('td', {}, c.visits), h('td', {}, c.on_time), h('td', {}, c.late),
      h('td', {}, c.missed), h('td', {}, c.pending), h('td', {}, pct(c.on_time_pct)), h('td', {}, late(c.mean_late_s))));
    const caption = `Branch ${branchLabel(r.branch)}, ${r.date}, as of ${clock(r.as_of, branchZone(r.branch))}`;
    return [summary, h('table', { class: 'table report-table' }, h('caption', {}, caption),
      h('thead', {}, h('tr', {}, head.map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, rows.length ? rows : h('tr', {}, h('td', { colspan: String(head.length) }, 'No visits that day.'))))];
  }

  async download() {
    const branch = this.branch.value;
    const date = this.date.value;
    if (!branch || !date) return this.fail('Choose a branch and a date.');
    this.error.hidden = true;
    this.csv.disabled = true;
    try {
      const { blob, name } = await api.punctualityCsv(branch, date);
      const url = URL.createObjectURL(blob);
      const a = h('a', { href: url, download: name ?? `punctuality-${branch}-${date}.csv`, hidden: true });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
      announce(`Downloaded ${a.download}`);
    } catch (e) {
      this.fail(`The CSV could not be downloaded: ${e.plain ?? e.message}`);
    } finally {
      this.csv.disabled = false;
    }
  }
}
