#include "visitd/alerts/notifier.hpp"

#include <algorithm>

namespace visitd::alerts {

using rota::AlertIndex;
using rota::AlertState;
using rota::AlertTransition;

std::string page_subject(const rota::Alert& a, int level) {
  std::string s = a.id();
  s += "/page/";
  s += rota::to_string(a.severity);
  s += "/L";
  s += std::to_string(level);
  s += "/R";
  s += std::to_string(unsigned(a.reopens));
  return s;
}

namespace {

std::string ack_subject(const rota::Alert& a) {
  std::string s = a.id();
  s += "/ack/R";
  s += std::to_string(unsigned(a.reopens));
  return s;
}

std::string resolved_subject(const rota::Alert& a) { return a.id() + "/resolved"; }

}  // namespace

Notifier::Notifier(const config::Settings& settings, RenderAlert render)
    : directory_(settings), render_(std::move(render)) {
  reconfigure(settings);
}

void Notifier::reconfigure(const config::Settings& settings) {
  directory_ = OnCallDirectory(settings);
  receiver_types_.clear();
  for (const auto& r : settings.receivers) receiver_types_[r.name] = r.type;
}

bool Notifier::acknowledges(std::string_view receiver) const {
  const auto it = receiver_types_.find(std::string(receiver));
  return it == receiver_types_.end() || it->second != "alertmanager";
}

std::vector<Notice> Notifier::on_effect(const rota::Engine& engine, const rota::Effect& effect) {
  if (effect.kind != rota::Effect::Kind::alert_changed) return {};
  const AlertIndex a = effect.index;
  const rota::Alert& alert = engine.alert(a);
  switch (effect.transition) {
    case AlertTransition::escalated:
    case AlertTransition::reopened:
      // A reopen re-pages the step that paged last; before any step fired it pages nobody
      // (the ladder simply goes on).
      if (alert.state != AlertState::triggered || effect.level == 0) return {};
      return keep_new(
          page(engine, a, effect.level,
               told_.count(alert.id()) != 0 ? Transition::escalated : Transition::triggered));
    case AlertTransition::acknowledged:
      if (alert.state != AlertState::acknowledged) return {};
      return keep_new(tell_paged(engine, a, Transition::acknowledged, ack_subject(alert)));
    case AlertTransition::resolved:
      return keep_new(tell_paged(engine, a, Transition::resolved, resolved_subject(alert)));
    default:
      return {};
  }
}

std::vector<Notice> Notifier::page(const rota::Engine& engine, AlertIndex a, int level,
                                   Transition t) {
  const rota::Alert& alert = engine.alert(a);
  const auto ladder = engine.ladder(alert);
  const std::size_t step = std::size_t(level) - 1;
  if (level < 1 || step >= ladder.size()) return {};
  // The step fired at updated_at: who is on call then, not when this runs.
  const auto receivers = directory_.expand(ladder[step].notify, alert.updated_at);
  std::vector<Notice> out;
  if (receivers.empty()) return out;
  const AlertText text = render_(engine, a);
  const std::string subject = page_subject(alert, level);
  for (auto& r : receivers) {
    Notice n = make(engine, a, text, t, subject, r);
    n.level = level;
    out.push_back(std::move(n));
  }
  return out;
}

std::vector<Notice> Notifier::tell_paged(const rota::Engine& engine, AlertIndex a, Transition t,
                                         std::string subject) {
  const auto it = told_.find(engine.alert(a).id());
  if (it == told_.end() || it->second.paged.empty()) return {};
  const AlertText text = render_(engine, a);
  std::vector<Notice> out;
  for (const auto& r : it->second.paged) {
    if (t == Transition::acknowledged && !acknowledges(r)) continue;
    out.push_back(make(engine, a, text, t, subject, r));
  }
  return out;
}

Notice Notifier::make(const rota::Engine& engine, AlertIndex a, const AlertText& text, Transition t,
                      std::string subject, std::string receiver) const {
  const rota::Alert& alert = engine.alert(a);
  const rota::Visit& v = engine.visit(alert.visit);
  Notice n;
  n.subject = std::move(subject);
  n.receiver = std::move(receiver);
  n.transition = t;
  n.level = alert.escalation_level;
  n.alert = alert.id();
  n.key = alert.key(v.id);
  n.visit = v.id;
  n.branch = engine.branch(v.branch).id;
  n.carer = alert.carer == rota::kNoIndex ? "" : engine.carer(alert.carer).id;
  n.client = engine.client(v.client).id;
  n.kind = std::string(rota::to_string(alert.kind));
  n.severity = std::string(rota::to_string(alert.severity));
  n.summary = text.summary;
  n.raised_at = alert.raised_at;
  n.at = alert.updated_at;
  n.alert_json = text.json;
  return n;
}

bool Notifier::remember(const Notice& n) {
  Told& told = told_[n.alert];
  if (!told.known.insert(n.id()).second) return false;
  if (n.page() && std::find(told.paged.begin(), told.paged.end(), n.receiver) == told.paged.end()) {
    told.paged.push_back(n.receiver);
  }
  // A resolved alert changes no more: once everyone paged has its resolution, forget it, so
  // that what is kept stays the size of the open alerts.
  if (n.transition == Transition::resolved &&
      std::all_of(told.paged.begin(), told.paged.end(), [&](const std::string& r) {
        return told.known.count(n.subject + "/" + r) != 0;
      })) {
    told_.erase(n.alert);
  }
  return true;
}

std::vector<Notice> Notifier::keep_new(std::vector<Notice> notices) {
  std::vector<Notice> out;
  out.reserve(notices.size());
  for (auto& n : notices) {
    if (remember(n)) out.push_back(std::move(n));
  }
  return out;
}

const std::vector<std::string>* Notifier::paged(std::string_view alert) const {
  const auto it = told_.find(std::string(alert));
  return it == told_.end() ? nullptr : &it->second.paged;
}

std::vector<Notice> Notifier::missing(const rota::Engine& engine) {
  std::vector<Notice> out;
  const auto add = [&](std::vector<Notice> notices) {
    for (auto& n : keep_new(std::move(notices))) out.push_back(std::move(n));
  };
  for (AlertIndex a = 0; a < engine.alert_count(); ++a) {
    const rota::Alert& alert = engine.alert(a);
    const bool paged = told_.count(alert.id()) != 0;
    switch (alert.state) {
      case AlertState::triggered:
        if (alert.escalation_level > 0) {
          add(page(engine, a, alert.escalation_level,
                   paged ? Transition::escalated : Transition::triggered));
        }
        break;
      case AlertState::acknowledged:
        if (paged) add(tell_paged(engine, a, Transition::acknowledged, ack_subject(alert)));
        break;
      case AlertState::resolved:
        if (paged) add(tell_paged(engine, a, Transition::resolved, resolved_subject(alert)));
        break;
    }
  }
  return out;
}

}  // namespace visitd::alerts
