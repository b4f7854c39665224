#pragma once
// Who is told what when an alert changes. The engine fires escalation steps (rota/engine.hpp:
// a ladder frozen on each alert); the notifier turns each transition into notices:
//
//   escalated  → a page to each receiver the step names, on-call schedules expanded at the
//                moment the step fired (in the schedule's own time zone);
//   reopened   → the last step's receivers paged again (an ack that timed out);
//   acknowledged, resolved → a notice to everyone paged about the alert, so nobody keeps
//                driving to a visit someone else has handled.
//
// Alertmanager has no acknowledgement: its receivers get pages and resolutions only.
//
// Thread-safety: none; one owner (the engine's strand) calls it, right after the engine.

#include <functional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "visitd/alerts/notice.hpp"
#include "visitd/alerts/oncall.hpp"
#include "visitd/config/settings.hpp"
#include "visitd/rota/engine.hpp"

namespace visitd::alerts {

/// What the notices carry about an alert besides its fields: the office's one-line summary
/// and the alert object as the board sees it (both rendered by the caller's protocol code).
struct AlertText {
  std::string summary;
  std::string json;
};
using RenderAlert = std::function<AlertText(const rota::Engine&, rota::AlertIndex)>;

class Notifier {
 public:
  /// Throws ConfigError when an on-call schedule's time zone cannot be found.
  Notifier(const config::Settings& settings, RenderAlert render);

  /// Receivers and schedules after a reload; pages already made keep their receivers.
  void reconfigure(const config::Settings& settings);

  /// The notices an engine effect calls for (often none), each new to the notifier; they are
  /// remembered as decided. Call it after the engine's apply()/advance() that produced it.
  std::vector<Notice> on_effect(const rota::Engine& engine, const rota::Effect& effect);

  /// Takes a notice read back from the journal's outbox at start-up. Returns false when it
  /// was known already.
  bool remember(const Notice& notice);

  /// At start-up, after the journal's outbox was remembered: the notices the engine's state
  /// says were decided but whose outbox record never reached the disk (the daemon stopped
  /// between the two). For each open alert its current step's page, and the ack notice of
  /// an acknowledged one; for each resolved alert someone was paged about, its resolution.
  std::vector<Notice> missing(const rota::Engine& engine);

  /// Receivers paged about an alert and not yet told it was resolved.
  const std::vector<std::string>* paged(std::string_view alert) const;

 private:
  struct Told {
    std::vector<std::string> paged;         ///< receivers, in the order first paged
    std::unordered_set<std::string> known;  ///< notice ids decided for this alert
  };

  std::vector<Notice> page(const rota::Engine& engine, rota::AlertIndex a, int level, Transition t);
  std::vector<Notice> tell_paged(const rota::Engine& engine, rota::AlertIndex a, Transition t,
                                 std::string subject);
  Notice make(const rota::Engine& engine, rota::AlertIndex a, const AlertText& text, Transition t,
              std::string subject, std::string receiver) const;
  bool acknowledges(std::string_view receiver) const;
  /// Keeps what is new and remembers it.
  std::vector<Notice> keep_new(std::vector<Notice> notices);

  OnCallDirectory directory_;
  std::unordered_map<std::string, std::string> receiver_types_;
  RenderAlert render_;
  std::unordered_map<std::string, Told> told_;  ///< by alert id; only alerts still owed notices
};

/// The subject of the page of step `level`: "A17/page/critical/L2/R0" (severity, because a
/// rise starts the new severity's ladder from its first step; R counts the ack timeouts
/// before it).
std::string page_subject(const rota::Alert& alert, int level);

}  // namespace visitd::alerts
