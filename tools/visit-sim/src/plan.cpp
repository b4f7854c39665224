#include "plan.hpp"

#include <algorithm>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
#include <charconv>
#include <map>
#include <stdexcept>

namespace visitd::sim {

using namespace std::chrono_literals;

namespace {

constexpr std::array<std::string_view, kBehaviours> kNames = {
    "on_time", "early", "late", "no_show", "overrun", "short", "wrong_place", "offline"};

constexpr std::array<std::string_view, 6> kCheckOutNotes = {
    "All care given as planned, meds taken",    "Had lunch and a chat about the garden",
    "Client in good spirits; fridge restocked", "Skin checked, cream applied, no concerns",
    "Client tired today - family informed",     "Bins out, water left within reach",
};

Duration minutes(double m) {
  return std::chrono::round<Duration>(std::chrono::duration<double, std::ratio<60>>(m));
}

Behaviour draw(Rng& rng, const Mix& mix) {
  double total = 0;
  for (const double w : mix.weights) total += w;
  double x = rng.uniform() * total;
  for (std::size_t i = 0; i < kBehaviours; ++i) {
    if (x < mix.weights[i]) return Behaviour(i);
    x -= mix.weights[i];
  }
  return Behaviour::on_time;
}

struct Assignment {
  const rota::VisitPlan* visit;
  Behaviour behaviour;
};

}  // namespace

std::string_view to_string(Behaviour b) { return kNames[std::size_t(b)]; }

Mix Mix::parse(std::string_view text) {
  Mix mix;
  mix.weights.fill(0);
  while (!text.empty()) {
    const auto comma = text.find(',');
    const std::string_view part = text.substr(0, comma);
    text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
    const auto eq = part.find('=');
    if (eq == std::string_view::npos) {
      throw std::invalid_argument("--mix: expected name=weight, got '" + std::string(part) + "'");
    }
    const std::string_view name = part.substr(0, eq);
    const std::string_view value = part.substr(eq + 1);
    const auto it = std::find(kNames.begin(), kNames.end(), name);
    if (it == kNames.end()) {
      std::string known;
      for (const auto n : kNames) known += (known.empty() ? "" : ", ") + std::string(n);
      throw std::invalid_argument("--mix: unknown behaviour '" + std::string(name) +
                                  "' (known: " + known + ")");
    }
    double w = -1;
    const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), w);
    if (ec != std::errc() || end != value.data() + value.size() || w < 0 || w > 1e6) {
      throw std::invalid_argument("--mix: the weight of " + std::string(name) +
                                  " must be a number from 0, got '" + std::string(value) + "'");
    }
    mix.weights[std::size_t(it - kNames.begin())] = w;
  }
  double total = 0;
  for (const double w : mix.weights) total += w;
  if (total <= 0) throw std::invalid_argument("--mix: at least one weight must be above 0");
  return mix;
}

std::string Event::to_json() const {
  boost::json::object o;
  o["type"] = type;
  o["id"] = id;
  if (!visit.empty()) o["visit"] = visit;
  if (type == "running_late") {
    o["eta"] = format_rfc3339(*eta);
    o["reason"] = reason;
    return boost::json::serialize(o);
  }
  o["at"] = format_rfc3339(at);
  if (where) {
    o["lat"] = where->lat;
    o["lon"] = where->lon;
    o["accuracy"] = accuracy;
  }
  if (type == "check_in") o["method"] = "gps";
  if (!note.empty()) o["note"] = note;
  return boost::json::serialize(o);
}

Plan plan_day(const std::vector<BranchDay>& days, const Mix& mix, std::uint64_t seed,
              std::string_view id_prefix) {
  Plan plan;
  const geo::TravelModel model = travel_model();
  for (const BranchDay& day : days) {
    plan.summary.visits += day.visits.size();
    // Who turns up where: drawn per (carer, visit) in rota order.
    std::map<std::string, std::vector<Assignment>> by_carer;
    std::map<std::string, std::size_t> shows;  // visit id -> carers who turn up
    Rng draws(derive_seed(seed, day.branch + "/behaviour"));
    for (const rota::VisitPlan& v : day.visits) {
      std::size_t turning_up = 0;
      for (const std::string& c : v.carers) {
        const Behaviour b = draw(draws, mix);
        ++plan.summary.behaviours[std::size_t(b)];
        if (b != Behaviour::no_show) ++turning_up;
        by_carer[c].push_back({&v, b});
      }
      if (turning_up == 0) plan.summary.no_show_visits.push_back(v.id);
    }
    for (const std::string& carer : day.carers) {
      CarerScript script;
      script.carer = carer;
      script.branch = day.branch;
      Rng rng(derive_seed(seed, carer));
      unsigned n = 0;
      const auto next_id = [&] {
        return std::string(id_prefix) + "-" + carer + "-" + std::to_string(++n);
      };
      std::optional<TimePoint> left;  // when it left the last client
      std::optional<geo::LatLon> from;
      std::optional<Step> queued;  // an offline phone's events, not yet sent
      const auto send = [&](Step step) {
        if (queued) {  // back online: the queue goes first
          queued->send_at = std::min(queued->send_at, step.send_at);
          script.steps.push_back(std::move(*queued));
          queued.reset();
        }
        step.drop_before_ack = rng.chance(mix.duplicates);
        script.steps.push_back(std::move(step));
      };
      for (const Assignment& a : by_carer[carer]) {
        const rota::VisitPlan& v = *a.visit;
        if (a.behaviour == Behaviour::no_show) continue;
        const geo::LatLon home = v.client.location;
        const TimePoint arrive_by =
            left ? *left + geo::travel_time(*from, home, model) : v.start - 30min;
        Duration offset = minutes(rng.between(-4, 4));
        if (a.behaviour == Behaviour::early) offset = -minutes(rng.between(8, 25));
        if (a.behaviour == Behaviour::late) {
          offset = v.time_critical ? minutes(rng.between(8, 20)) : minutes(rng.between(20, 45));
        }
        const TimePoint check_in = std::max(v.start + offset, arrive_by);

        const Duration planned = v.end - v.start;
        Duration stay = planned + minutes(rng.between(-3, 5));
        if (a.behaviour == Behaviour::overrun) stay = planned + minutes(rng.between(22, 50));
        if (a.behaviour == Behaviour::short_visit) {
          stay = std::chrono::round<Duration>(planned * rng.between(0.3, 0.6));
        }
        stay = std::max<Duration>(stay, 5min);
        const TimePoint check_out = check_in + stay;

        // On the way: a location ping halfway (phones report while on shift).
        if (left && *left + 20min < check_in) {
          Event ping;
          ping.type = "location";
          ping.id = next_id();
          ping.at = *left + (check_in - *left) / 2;
          ping.where = move(*from, geo::distance_m(*from, home) / 2, rng.between(0, 360));
          ping.accuracy = std::round(rng.between(8, 40));
          if (a.behaviour != Behaviour::offline) send({ping.at, {ping}, false});
        }
        if (a.behaviour == Behaviour::late && rng.chance(mix.running_late)) {
          Event late;
          late.type = "running_late";
          late.id = next_id();
          late.visit = v.id;
          late.eta = check_in;
          late.reason = rng.chance(0.5) ? "traffic" : "previous visit ran over";
          late.at = std::max(v.start - 10min, left.value_or(v.start - 10min));
          send({late.at, {late}, false});
        }

        Event in;
        in.type = "check_in";
        in.id = next_id();
        in.visit = v.id;
        in.at = check_in;
        in.where = move(home, rng.between(0, 25), rng.between(0, 360));
        in.accuracy = std::round(rng.between(5, 20));
        if (a.behaviour == Behaviour::wrong_place) {
          in.where = move(home, rng.between(400, 900), rng.between(0, 360));
        }
        Event out;
        out.type = "check_out";
        out.id = next_id();
        out.visit = v.id;
        out.at = check_out;
        out.where = move(home, rng.between(0, 25), rng.between(0, 360));
        out.accuracy = std::round(rng.between(5, 20));
        out.note = std::string(kCheckOutNotes[rng.next() % kCheckOutNotes.size()]);

        if (a.behaviour == Behaviour::offline) {
          // No signal at this client: both events wait on the phone and go together once
          // it is back online, with their device times.
          Step burst;
          burst.send_at = check_out + minutes(rng.between(10, 40));
          burst.events = {in, out};
          if (queued) send({queued->send_at, {}, false});  // flush an older queue first
          queued = std::move(burst);
        } else {
          send({in.at, {in}, false});
          send({out.at, {out}, false});
        }
        left = check_out;
        from = home;
      }
      if (queued) {
        script.steps.push_back(std::move(*queued));
        queued.reset();
      }
      // An empty step may come from flushing; drop it, and keep send order.
      std::erase_if(script.steps, [](const Step& s) { return s.events.empty(); });
      std::stable_sort(script.steps.begin(), script.steps.end(),
                       [](const Step& a, const Step& b) { return a.send_at < b.send_at; });
      for (const Step& s : script.steps) {
        plan.summary.events += s.events.size();
        if (s.drop_before_ack) ++plan.summary.drops;
      }
      plan.carers.push_back(std::move(script));
    }
  }
  return plan;
}

}  // namespace visitd::sim
