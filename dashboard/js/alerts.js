// The alert panel: open alerts by severity then age, ages ticking, escalation level, and
// Acknowledge / Resolve with a note sent over the board WebSocket. Items are kept by id
// across updates (a half-typed note survives a delta); a resolved alert fades out.

import { h, icon, clear, announce } from './dom.js';
import { ALERT_KIND_WORDS, SEVERITY_WORDS, RESOLUTION_WORDS, formatAge, pagedBy } from './model.js';
import { clock } from './time.js';
import { branchZone, branchLabel } from './branches.js';

const FADE_MS = 1800;

export class AlertPanel {
  /**
   * send(type, alertId, note) -> Promise; openVisit(visitId); isLive() -> bool;
   * visitOf(visitId) -> visit or undefined (for the client's name).
   */
  constructor(list, empty, count, { send, openVisit, isLive, visitOf }) {
    this.list = list;
    this.empty = empty;
    this.count = count;
    this.send = send;
    this.openVisit = openVisit;
    this.isLive = isLive;
    this.visitOf = visitOf;
    this.items = new Map(); // alert id -> {li, alert, parts}
    this.fading = new Map(); // alert id -> timer
  }

  /** alerts: the open alerts to show, sorted; resolvedNow: id -> alert, resolved since the last call. */
  render(alerts, now, resolvedNow = new Map()) {
    const keep = new Set(alerts.map((a) => a.id));
    for (const [id, item] of this.items) {
      if (keep.has(id)) continue;
      if (resolvedNow.has(id) && !this.fading.has(id)) {
        this.fadeOut(id, item, resolvedNow.get(id));
      } else if (!this.fading.has(id)) {
        item.li.remove();
        this.items.delete(id);
      }
    }
    let prev = null;
    for (const a of alerts) {
      let item = this.items.get(a.id);
      if (!item) {
        item = this.create(a);
        this.items.set(a.id, item);
      } else if (this.fading.has(a.id)) {
        clearTimeout(this.fading.get(a.id));
        this.fading.delete(a.id);
        item.li.classList.remove('fading');
      }
      this.update(item, a, now);
      // Moves only what is out of place, so that focus stays where it was.
      const want = prev ? prev.nextElementSibling : this.list.firstElementChild;
      if (want !== item.li) {
        const focused = item.li.contains(document.activeElement) ? document.activeElement : null;
        if (prev) prev.after(item.li);
        else this.list.prepend(item.li);
        focused?.focus({ preventScroll: true });
      }
      prev = item.li;
    }
    this.count.textContent = `(${alerts.length})`;
    this.empty.hidden = alerts.length > 0;
    this.syncDisabled();
  }

  fadeOut(id, item, resolved) {
    const a = resolved ?? item.alert;
    item.li.classList.add('fading');
    item.state.textContent = `Resolved${a.resolution ? `: ${RESOLUTION_WORDS[a.resolution] ?? a.resolution}` : ''}`;
    // Focus must not vanish with the item: it goes to the panel's heading.
    if (item.li.contains(document.activeElement)) document.getElementById('alerts-heading')?.focus();
    for (const b of item.li.querySelectorAll('button, textarea')) b.disabled = true;
    this.fading.set(id, setTimeout(() => {
      this.fading.delete(id);
      item.li.remove();
      this.items.delete(id);
    }, FADE_MS));
  }

  /** Ticks the ages (every second). */
  tick(now) {
    for (const item of this.items.values()) {
      item.age.textContent = formatAge(now - Date.parse(item.alert.raised_at));
    }
  }

  syncDisabled() {
    const live = this.isLive();
    for (const item of this.items.values()) {
      if (this.fading.has(item.alert.id)) continue;
      for (const b of item.li.querySelectorAll('button.needs-live')) {
        b.disabled = !live || item.busy;
      }
    }
  }

  create(a) {
    const item = { alert: a, busy: false };
    const headId = `alert-${a.id}-head`.replace(/[^\w-]/g, '_');
    item.sev = h('span', { class: 'sev' });
    item.kind = h('span', { class: 'kind' });
    item.age = h('span', { class: 'age' });
    item.summary = h('p', { class: 'summary' });
    item.meta = h('p', { class: 'meta' });
    item.state = h('p', { class: 'alert-state' });
    item.error = h('p', { class: 'error', role: 'alert', hidden: true });
    item.ackBtn = h('button', { type: 'button', class: 'btn btn-small needs-live', onclick: () => this.openNote(item, 'ack') }, 'Acknowledge');
    item.resolveBtn = h('button', { type: 'button', class: 'btn btn-small needs-live', onclick: () => this.openNote(item, 'resolve') }, 'Resolve');
    const visitBtn = h('button', { type: 'button', class: 'btn btn-small btn-quiet', onclick: () => this.openVisit(item.alert.visit) }, 'Visit details');

    item.noteLabel = h('label', { for: `${headId}-note` });
    item.note = h('textarea', { id: `${headId}-note`, rows: '2', maxlength: '4096' });
    item.submit = h('button', { type: 'submit', class: 'btn btn-small btn-primary needs-live' });
    item.form = h('form', { class: 'note-form', hidden: true, onsubmit: (e) => { e.preventDefault(); this.submit(item); } },
      item.noteLabel, item.note,
      h('div', { class: 'row' }, item.submit,
        h('button', { type: 'button', class: 'btn btn-small btn-quiet', onclick: () => this.closeNote(item, true) }, 'Back')));
    item.form.addEventListener('keydown', (e) => {
      if (e.key === 'Escape') { e.preventDefault(); this.closeNote(item, true); }
    });

    item.li = h('li', { class: 'alert', 'aria-labelledby': headId, dataset: { alert: a.id } },
      h('div', { class: 'alert-head', id: headId }, item.sev, item.kind, h('span', { class: 'age-wrap' }, 'raised ', item.age, ' ago')),
      item.summary, item.meta, item.state,
      h('div', { class: 'actions' }, item.ackBtn, item.resolveBtn, visitBtn),
      item.form, item.error);
    return item;
  }

  update(item, a, now) {
    item.alert = a;
    item.li.className = `alert sev-${a.severity} ast-${a.state}`;
    clear(item.sev).append(icon(a.severity, 'sev-icon'), SEVERITY_WORDS[a.severity] ?? a.severity);
    item.kind.textContent = ALERT_KIND_WORDS[a.kind] ?? a.kind;
    item.age.textContent = formatAge(now - Date.parse(a.raised_at));
    item.summary.textContent = a.summary;
    const visit = this.visitOf(a.visit);
    const bits = [`Visit ${a.visit}`];
    if (visit?.client?.name) bits.push(visit.client.name);
    bits.push(`branch ${branchLabel(a.branch)}`);
    if (a.phone_offline_since) {
      bits.push(`phone offline since ${clock(a.phone_offline_since, branchZone(a.branch))}`);
    }
    if (a.pages_held) bits.push('no page yet: the cause is known');
    bits.push(a.escalation_level > 0 ? `escalated: level ${a.escalation_level}` : 'not escalated');
    const paged = pagedBy(a);
    const zone = branchZone(a.branch);
    bits.push(paged ? `paged ${paged.names.join(', ')} at ${clock(paged.last, zone)}` : 'nobody paged');
    item.meta.textContent = bits.join(' · ');
    item.state.textContent = a.state === 'acknowledged'
      ? `Acknowledged by ${a.acked_by ?? 'someone'} at ${clock(a.acked_at, zone)}`
      : 'Needs attention';
    item.ackBtn.hidden = a.state !== 'triggered';
  }

  openNote(item, action) {
    item.action = action;
    item.error.hidden = true;
    item.noteLabel.textContent = action === 'ack' ? 'Note (optional): what is being done' : 'Note: how it was resolved';
    item.submit.textContent = action === 'ack' ? 'Send acknowledgement' : 'Resolve alert';
    item.form.hidden = false;
    item.ackBtn.setAttribute('aria-expanded', String(action === 'ack'));
    item.resolveBtn.setAttribute('aria-expanded', String(action === 'resolve'));
    item.note.focus();
  }

  closeNote(item, refocus) {
    item.form.hidden = true;
    item.ackBtn.setAttribute('aria-expanded', 'false');
    item.resolveBtn.setAttribute('aria-expanded', 'false');
    if (refocus) (item.ackBtn.hidden ? item.resolveBtn : item.ackBtn).focus();
  }

  async submit(item) {
    const action = item.action;
    const note = item.note.value.trim();
    item.busy = true;
    item.error.hidden = true;
    this.syncDisabled();
    const original = item.submit.textContent;
    item.submit.textContent = 'Sending…';
    try {
      await this.send(action === 'ack' ? 'ack_alert' : 'resolve_alert', item.alert.id, note);
      item.note.value = '';
      this.closeNote(item, false);
      announce(`Alert ${item.alert.id} ${action === 'ack' ? 'acknowledged' : 'resolved'}`);
      if (item.li.isConnected && !this.fading.has(item.alert.id)) {
        (item.ackBtn.hidden ? item.resolveBtn : item.ackBtn).focus({ preventScroll: true });
      }
    } catch (e) {
      item.error.textContent = `Not done: ${e.plain ?? e.message}`;
      item.error.hidden = false;
    } finally {
      item.busy = false;
      item.submit.textContent = original;
      this.syncDisabled();
    }
  }
}
