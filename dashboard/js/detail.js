// A visit's detail in a dialog: client, carers, times, check-ins with their distance from
// the client, flags, notes, the carer's ETA, the visit's alerts (open and past), and the
// office's actions: reassign (carer ids) and cancel (a reason), over the HTTP API.

import { h, icon, clear, announce } from './dom.js';
import {
  stateWord, FLAG_WORDS, ALERT_KIND_WORDS, SEVERITY_WORDS, RESOLUTION_WORDS, LATE_CAUSE_WORDS,
  compareAlerts, parseCarerList, formatMinutes, pagedBy,
} from './model.js';
import { clock, clockSeconds, browserZone } from './time.js';
import { branchZone, branchLabel } from './branches.js';
import { api } from './api.js';

const METHOD_WORDS = { gps: 'GPS', nfc: 'NFC tag', qr: 'QR code', manual: 'entered by hand' };

function distanceText(r) {
  if (r.distance_m === null || r.distance_m === undefined) return '—';
  const d = r.distance_m >= 1000 ? `${(r.distance_m / 1000).toFixed(2)} km` : `${Math.round(r.distance_m)} m`;
  return r.accuracy !== null && r.accuracy !== undefined ? `${d} (±${Math.round(r.accuracy)} m)` : d;
}

export class VisitDetail {
  /** state: the BoardState; canAct(visit): whether this user may change the visit. */
  constructor(dialog, { state, canAct }) {
    this.dialog = dialog;
    this.body = dialog.querySelector('#visit-body');
    this.title = dialog.querySelector('#visit-title');
    this.state = state;
    this.canAct = canAct;
    this.visitId = null;
    this.history = []; // alerts of this visit from GET /api/alerts?state=all
    this.historyError = null;
    this.opener = null;
    this.forms = null;
    dialog.addEventListener('close', () => {
      this.visitId = null;
      this.forms = null;
      this.fetched = null;
      // The block that opened the dialog may have been redrawn meanwhile: find its successor.
      let back = this.opener;
      if (back && !back.isConnected && back.dataset?.visit) {
        back = document.querySelector(`[data-visit="${CSS.escape(back.dataset.visit)}"][data-carer="${CSS.escape(back.dataset.carer ?? '')}"]`);
      }
      back?.focus();
    });
    dialog.addEventListener('click', (e) => {
      if (e.target === dialog || e.target.closest('[data-close]')) dialog.close();
    });
  }

  get openId() {
    return this.dialog.open ? this.visitId : null;
  }

  async open(visitId) {
    this.opener = document.activeElement;
    this.visitId = visitId;
    this.history = [];
    this.historyError = null;
    this.forms = null;
    this.fetched = null;
    this.render();
    if (!this.dialog.open) this.dialog.showModal();
    let v = this.state.visits.get(visitId);
    if (v) {
      // Fetched fresh all the same, for where its carers were last located: location pings
      // send the board nothing, so the board's copy may be older.
      api.visit(visitId).then((fresh) => {
        if (this.visitId !== visitId) return;
        this.fetched = fresh;
        this.render();
      }, () => {});
    } else {
      // An open alert of another day's visit: the board holds only today's.
      try {
        v = await api.visit(visitId);
        if (this.visitId !== visitId) return;
        this.fetched = v;
        this.render();
      } catch (e) {
        if (this.visitId !== visitId) return;
        this.historyError = e.plain ?? e.message;
      }
    }
    try {
      const { alerts } = await api.alerts(v?.branch, 'all');
      if (this.visitId !== visitId) return;
      this.history = alerts.filter((a) => a.visit === visitId);
    } catch (e) {
      if (this.visitId !== visitId) return;
      this.historyError = e.plain ?? e.message;
    }
    this.renderAlerts();
  }

  /** A delta for the visit (or one of its alerts) arrived while the dialog is open. */
  refresh() {
    if (!this.openId) return;
    this.render();
  }

  /** Where the visit's carers on shift were last located, freshest copy first. */
  lastLocated(v, zone) {
    const seen = (this.fetched?.id === v.id ? this.fetched : v).carer_locations ?? [];
    if (!seen.length) return null;
    return fact('Last located', h('ul', { class: 'flags last-located' }, seen.map((s) =>
      h('li', {}, `${s.carer}: ${distanceText(s)} from the client at ${clock(s.at, zone)}`))));
  }

  visit() {
    return this.state.visits.get(this.visitId) ?? (this.fetched?.id === this.visitId ? this.fetched : undefined);
  }

  render() {
    const v = this.visit();
    if (!v) {
      this.title.textContent = `Visit ${this.visitId}`;
      clear(this.body).append(h('p', {}, this.historyError ? `This visit could not be loaded: ${this.historyError}` : 'Loading…'));
      return;
    }
    // Every time here is the branch's local time.
    const zone = branchZone(v.branch);
    this.title.textContent = `${v.client?.name || v.client?.id} · ${clock(v.start, zone)}–${clock(v.end, zone)}`;
    // The forms are built once per opening, so that what a person typed survives deltas.
    if (!this.forms) this.forms = this.buildForms(v);

    const facts = h('dl', { class: 'facts' },
      fact('State', h('span', { class: `state-badge st-${v.state}` }, icon(v.state, 'state-icon'), stateWord(v.state))),
      fact('Client', `${v.client?.name ?? ''} (${v.client?.id ?? '?'})`),
      fact('Visit', `${v.id} · branch ${branchLabel(v.branch)}${v.type ? ` · ${v.type.replace(/_/g, ' ')}` : ''}`),
      fact('Scheduled', `${clock(v.start, zone)} to ${clock(v.end, zone)} (${formatMinutes((Date.parse(v.end) - Date.parse(v.start)) / 1000)})${zone && zone !== browserZone() ? `, ${zone} time` : ''}`),
      fact('Carers', v.carers.length ? v.carers.join(', ') + (v.carers.length > 1 ? ' (double-up)' : '') : 'none assigned'),
      v.time_critical ? fact('Time-critical', h('span', {}, icon('pill', 'inline-icon'), ' Yes: medication or other timed care')) : null,
      v.late_by_s > 0 ? fact('Arrived', `${formatMinutes(v.late_by_s)} after the start`) : null,
      v.eta ? fact('Carer expects to arrive', `${clock(v.eta, zone)}${v.eta_reason ? ` — “${v.eta_reason}”` : ''}`) : null,
      v.expected_at ? fact('Estimated arrival', clock(v.expected_at, zone)) : null,
      v.late_cause ? fact('Why late', LATE_CAUSE_WORDS[v.late_cause] ?? v.late_cause) : null,
      v.phone_offline_since ? fact("Carer's phone", `offline since ${clock(v.phone_offline_since, zone)}`) : null,
      this.lastLocated(v, zone),
      v.state === 'cancelled' ? fact('Cancelled', v.cancel_reason ? `“${v.cancel_reason}”` : 'no reason given') : null,
      fact('Flags', v.flags.length
        ? h('ul', { class: 'flags' }, v.flags.map((f) => h('li', {}, FLAG_WORDS[f] ?? f)))
        : 'none'),
      fact('Care notes', v.notes ? h('p', { class: 'notes' }, v.notes) : 'none'));

    const checks = h('section', { class: 'detail-section', 'aria-labelledby': 'd-checks' },
      h('h3', { id: 'd-checks' }, 'Check-ins and check-outs'),
      v.check_ins.length || v.check_outs.length
        ? h('table', { class: 'table' },
          h('thead', {}, h('tr', {}, ['', 'Carer', 'Time (phone)', 'Received', 'How', 'From client', 'Note'].map((t) => h('th', { scope: 'col' }, t)))),
          h('tbody', {},
            v.check_ins.map((r) => checkRow('In', r, zone)),
            v.check_outs.map((r) => checkRow('Out', r, zone))))
        : h('p', { class: 'muted' }, 'Nobody has checked in yet.'));

    this.alertsSection = h('section', { class: 'detail-section', 'aria-labelledby': 'd-alerts' });
    clear(this.body).append(facts, checks, this.alertsSection, this.forms.root);
    this.renderAlerts();
    this.syncForms(v);
  }

  renderAlerts() {
    if (!this.alertsSection) return;
    // The history as fetched, updated by the live alerts since.
    const byId = new Map(this.history.map((a) => [a.id, a]));
    for (const a of this.state.alertsOfVisit(this.visitId)) {
      const held = byId.get(a.id);
      if (!held || (a.seq ?? 0) >= (held.seq ?? 0)) byId.set(a.id, a);
    }
    const alerts = [...byId.values()].sort(compareAlerts);
    const at = (a, t) => clock(t, branchZone(a.branch));
    clear(this.alertsSection).append(h('h3', { id: 'd-alerts' }, 'Alerts for this visit'));
    if (this.historyError) this.alertsSection.append(h('p', { class: 'error' }, `Past alerts could not be loaded: ${this.historyError}`));
    if (!alerts.length) {
      this.alertsSection.append(h('p', { class: 'muted' }, 'None.'));
      return;
    }
    this.alertsSection.append(h('ul', { class: 'alert-history' }, alerts.map((a) => h('li', { class: `sev-${a.severity} ast-${a.state}` },
      h('span', { class: 'sev' }, icon(a.severity, 'sev-icon'), SEVERITY_WORDS[a.severity] ?? a.severity), ' ',
      h('strong', {}, ALERT_KIND_WORDS[a.kind] ?? a.kind), ` raised ${at(a, a.raised_at)} — `,
      a.state === 'resolved'
        ? `resolved ${at(a, a.resolved_at)}${a.resolution ? ` (${RESOLUTION_WORDS[a.resolution] ?? a.resolution})` : ''}`
        : a.state === 'acknowledged' ? `acknowledged by ${a.acked_by ?? 'someone'} ${at(a, a.acked_at)}` : 'open',
      a.escalation_level > 0 ? `, escalated to level ${a.escalation_level}` : '',
      pagedBy(a) ? `; paged ${pagedBy(a).names.join(', ')}` : '',
      (a.notified ?? []).length
        ? h('ul', { class: 'muted small notified' }, a.notified.map((n) => h('li', {},
          `${at(a, n.at)} ${n.receiver}: ${n.transition}${n.level ? ` (level ${n.level})` : ''}`)))
        : '',
      h('div', { class: 'muted small' }, a.summary)))));
  }

  buildForms(v) {
    const reassignInput = h('input', { id: 'd-reassign', type: 'text', value: v.carers.join(', '), autocomplete: 'off', spellcheck: 'false', required: true });
    const reassignMsg = h('p', { class: 'form-msg', role: 'status' });
    const reassignBtn = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Reassign');
    const reassign = h('form', { class: 'action-form', onsubmit: (e) => { e.preventDefault(); this.reassign(reassignInput, reassignBtn, reassignMsg); } },
      h('h3', {}, 'Reassign'),
      h('label', { for: 'd-reassign' }, 'Carer ids (separate with commas)'),
      h('div', { class: 'row' }, reassignInput, reassignBtn),
      reassignMsg);

    const reasonInput = h('input', { id: 'd-cancel', type: 'text', maxlength: '512', autocomplete: 'off', placeholder: 'e.g. client in hospital' });
    const cancelMsg = h('p', { class: 'form-msg', role: 'status' });
    const cancelBtn = h('button', { type: 'submit', class: 'btn btn-danger' }, 'Cancel this visit');
    const cancel = h('form', { class: 'action-form', onsubmit: (e) => { e.preventDefault(); this.cancel(reasonInput, cancelBtn, cancelMsg); } },
      h('h3', {}, 'Cancel'),
      h('label', { for: 'd-cancel' }, 'Reason (kept with the visit)'),
      h('div', { class: 'row' }, reasonInput, cancelBtn),
      cancelMsg);

    const note = h('p', { class: 'muted small' });
    const root = h('section', { class: 'detail-section actions-section', 'aria-label': 'Change this visit' }, note, reassign, cancel);
    return { root, note, reassign, cancel, reassignInput, reassignBtn, cancelBtn, reasonInput };
  }

  syncForms(v) {
    const f = this.forms;
    const can = this.canAct(v);
    const closed = v.state === 'cancelled';
    f.note.textContent = !can
      ? 'Your sign-in may look at this visit but not change it.'
      : closed ? 'This visit is cancelled.' : '';
    f.note.hidden = !f.note.textContent;
    for (const el of [f.reassignInput, f.reassignBtn, f.reasonInput, f.cancelBtn]) el.disabled = !can || closed || el.dataset.busy === '1';
  }

  async reassign(input, button, msg) {
    const carers = parseCarerList(input.value);
    const id = this.visitId;
    if (!carers.length) {
      showMsg(msg, 'Name at least one carer id.', true);
      input.focus();
      return;
    }
    await this.act(button, msg, async () => {
      const v = await api.reassign(id, carers);
      this.took(v);
      return `Reassigned to ${v.carers.join(', ')}.`;
    });
  }

  async cancel(input, button, msg) {
    const id = this.visitId;
    await this.act(button, msg, async () => {
      const v = await api.cancel(id, input.value.trim());
      this.took(v);
      return 'The visit is cancelled; its carers have been told by their app.';
    });
  }

  /** The visit as an action's answer has it (the delta that follows says the same). */
  took(v) {
    if (this.state.visits.has(v.id)) this.state.applyVisit(v);
    else this.fetched = v;
    if (this.visitId === v.id) this.render();
  }

  async act(button, msg, run) {
    button.dataset.busy = '1';
    button.disabled = true;
    showMsg(msg, 'Sending…', false);
    try {
      const text = await run();
      showMsg(msg, text, false);
      announce(text);
      this.onChanged?.();
    } catch (e) {
      showMsg(msg, `Not done: ${e.plain ?? e.message}`, true);
    } finally {
      delete button.dataset.busy;
      const v = this.visit();
      if (v && this.forms) this.syncForms(v);
    }
  }
}

function fact(term, value) {
  return h('div', { class: 'fact' }, h('dt', {}, term), h('dd', {}, value));
}

function checkRow(kind, r, zone) {
  return h('tr', {},
    h('th', { scope: 'row' }, kind),
    h('td', {}, r.carer),
    h('td', {}, clockSeconds(r.at, zone)),
    h('td', {}, clockSeconds(r.received_at, zone)),
    h('td', {}, METHOD_WORDS[r.method] ?? r.method),
    h('td', {}, distanceText(r)),
    h('td', {}, r.note ?? ''));
}

function showMsg(el, text, isError) {
  el.textContent = text;
  el.classList.toggle('error', isError);
}
