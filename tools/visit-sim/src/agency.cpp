#include "agency.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <limits>
#include <numbers>
#include <optional>
#include <string_view>

namespace visitd::sim {

using namespace std::chrono_literals;

std::uint64_t Rng::next() {
  std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

double Rng::uniform() { return double(next() >> 11) * 0x1.0p-53; }

int Rng::whole(int lo, int hi) { return lo + int(next() % std::uint64_t(hi - lo + 1)); }

std::uint64_t derive_seed(std::uint64_t seed, std::string_view part) {
  // FNV-1a of the part, mixed into the seed.
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (const char c : part) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ULL;
  }
  Rng mix(seed ^ h);
  return mix.next();
}

geo::LatLon move(geo::LatLon from, double distance_m, double bearing_deg) {
  // Metres to degrees on a sphere: plenty for a few kilometres around a town.
  constexpr double kMetresPerDegree = 111'320.0;
  const double b = bearing_deg * std::numbers::pi / 180.0;
  const double north = distance_m * std::cos(b);
  const double east = distance_m * std::sin(b);
  return {from.lat + north / kMetresPerDegree,
          from.lon + east / (kMetresPerDegree * std::cos(from.lat * std::numbers::pi / 180.0))};
}

geo::TravelModel travel_model() { return {1.4, 28.0, 3min}; }

namespace {

struct Town {
  std::string_view name;
  geo::LatLon centre;
};

// Market towns with a home care agency or three; branch i is in town i.
constexpr std::array<Town, 8> kTowns = {{
    {"Harrogate", {53.9921, -1.5418}},
    {"Eastbourne", {50.7680, 0.2905}},
    {"Kendal", {54.3280, -2.7463}},
    {"Truro", {50.2632, -5.0510}},
    {"Shrewsbury", {52.7073, -2.7553}},
    {"Lincoln", {53.2307, -0.5406}},
    {"Hexham", {54.9714, -2.1010}},
    {"Salisbury", {51.0688, -1.7945}},
}};

constexpr std::array<std::string_view, 5> kTitles = {"Mrs", "Mr", "Ms", "Miss", "Mrs"};
constexpr std::array<std::string_view, 40> kSurnames = {
    "Appleby", "Barker",  "Bell",     "Brennan", "Carr",    "Chandler", "Dawson",  "Dixon",
    "Ellis",   "Fenwick", "Fletcher", "Gill",    "Hall",    "Harper",   "Hussain", "Iqbal",
    "Jackson", "Kaur",    "Kelly",    "Lamb",    "Lister",  "Metcalfe", "Moss",    "Nixon",
    "Oakley",  "Patel",   "Pickles",  "Quinn",   "Rhodes",  "Shaw",     "Singh",   "Slater",
    "Thorpe",  "Turner",  "Varley",   "Walsh",   "Webster", "Whitaker", "Wood",    "Young"};

// Care notes as a rota carries them (no commas: the CSV stays unquoted).
constexpr std::array<std::string_view, 12> kNotes = {
    "Key safe by the back door - code in the care plan",
    "Likes tea with two sugars; check the fridge for out-of-date food",
    "Prompt medication from the blister pack and sign the MAR chart",
    "Walks with a frame - keep the hallway clear",
    "Diabetic: make sure lunch is eaten",
    "Daughter visits on Tuesdays - leave a note in the folder",
    "Hard of hearing: knock loudly and wait",
    "Check skin on heels and apply barrier cream",
    "Empty the commode and leave water within reach",
    "Dog in the kitchen is friendly",
    "Ring the office if there is no answer",
    "",
};

struct VisitKind {
  std::string_view type;
  std::array<int, 2> minutes;  // one of these lengths
};

constexpr VisitKind kMedication = {"medication", {15, 30}};
constexpr std::array<VisitKind, 4> kKinds = {{
    {"personal_care", {45, 60}},
    {"meal", {30, 30}},
    {"domestic", {60, 45}},
    {"welfare_check", {30, 15}},
}};

struct Client {
  rota::ClientPlan plan;
  TimePoint busy_until{};
};

struct Carer {
  std::string id;
  geo::LatLon at;
  TimePoint free_at;
  TimePoint shift_end;
  bool active = true;
};

TimePoint round_up(TimePoint t, Duration step) {
  const auto r = t.time_since_epoch() % step;
  return r == Duration::zero() ? t : t + (step - r);
}

std::string number(unsigned n, int width) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%0*u", width, n);
  return buf;
}

std::vector<Client> make_clients(Rng& rng, const BranchPlace& branch, const Town& town,
                                 unsigned count) {
  // Clients live in a few neighbourhoods and villages around the centre.
  std::vector<geo::LatLon> neighbourhoods;
  const int n_hoods = rng.whole(4, 6);
  for (int i = 0; i < n_hoods; ++i) {
    neighbourhoods.push_back(move(town.centre, rng.between(300, 3800), rng.between(0, 360)));
  }
  std::vector<Client> clients;
  for (unsigned i = 0; i < count; ++i) {
    Client c;
    c.plan.id = branch.id + "-CL" + number(i + 1, 3);
    const auto& hood = neighbourhoods[std::size_t(rng.whole(0, n_hoods - 1))];
    // To the microdegree (10 cm), as the CSV writes it: the imported day is this one.
    const geo::LatLon at = move(hood, rng.between(0, 650), rng.between(0, 360));
    c.plan.location = {std::round(at.lat * 1e6) / 1e6, std::round(at.lon * 1e6) / 1e6};
    c.plan.name = std::string(kTitles[rng.next() % kTitles.size()]) + " " +
                  char('A' + rng.whole(0, 25)) + ". " +
                  std::string(kSurnames[rng.next() % kSurnames.size()]);
    clients.push_back(std::move(c));
  }
  return clients;
}

BranchDay make_day(const BranchPlace& branch, std::size_t index, LocalDays date,
                   const AgencyOptions& o) {
  Rng rng(derive_seed(o.seed, branch.id));
  const Town& town = kTowns[index % kTowns.size()];
  BranchDay day;
  day.branch = branch.id;
  day.zone = branch.zone;
  day.date = date;
  day.town = std::string(town.name);

  std::vector<Client> clients = make_clients(rng, branch, town, std::max(1u, o.clients));
  const auto local = [&](Duration time_of_day) {
    auto t = branch.zone.to_sys(LocalTime(date) + time_of_day);
    // A DST gap at that hour (none in practice at 07:30): an hour later exists.
    return t ? *t : *branch.zone.to_sys(LocalTime(date) + time_of_day + 1h);
  };
  const TimePoint first = local(o.first_shift);
  const TimePoint last_start = local(o.last_visit);

  std::vector<Carer> carers;
  for (unsigned i = 0; i < o.carers; ++i) {
    Carer c;
    c.id = branch.id + "-C" + number(i + 1, 2);
    c.at = move(town.centre, rng.between(200, 3000), rng.between(0, 360));  // home
    // Staggered shifts: half start early for the morning calls (the busiest of the day),
    // the rest take a middle shift or the evening cover.
    const int shift = rng.whole(0, 3);
    const Duration offset = shift <= 1   ? Duration(rng.whole(0, 6) * 5min)
                            : shift == 2 ? 3h + rng.whole(0, 12) * 5min
                                         : 7h + rng.whole(0, 12) * 5min;
    c.free_at = first + offset;
    c.shift_end = std::min(c.free_at + 6h + rng.whole(0, 36) * 5min, last_start + 30min);
    carers.push_back(std::move(c));
    day.carers.push_back(carers.back().id);
  }

  const geo::TravelModel model = travel_model();
  std::vector<rota::VisitPlan> visits;
  while (true) {
    Carer* lead = nullptr;
    for (Carer& c : carers) {
      if (c.active && (lead == nullptr || c.free_at < lead->free_at)) lead = &c;
    }
    if (lead == nullptr) break;
    if (lead->free_at + 30min > lead->shift_end || lead->free_at > last_start) {
      lead->active = false;
      continue;
    }

    const bool medication = rng.chance(o.medication_share);
    const VisitKind& kind = medication ? kMedication : kKinds[rng.next() % kKinds.size()];
    const Duration length = std::chrono::minutes(kind.minutes[rng.next() % 2]);
    std::vector<Carer*> team = {lead};
    if (!medication && kind.type == "personal_care" && rng.chance(o.double_up_share)) {
      Carer* partner = nullptr;
      for (Carer& c : carers) {
        if (&c == lead || !c.active || c.free_at > lead->free_at + 45min) continue;
        if (c.free_at + 30min > c.shift_end) continue;
        if (partner == nullptr || c.free_at < partner->free_at) partner = &c;
      }
      if (partner != nullptr) team.push_back(partner);
    }

    // The nearest free client of a handful: coordinators keep carers from always travelling.
    Client* client = nullptr;
    double best = std::numeric_limits<double>::infinity();
    for (int tries = 0; tries < 5; ++tries) {
      Client& candidate = clients[rng.next() % clients.size()];
      const double d = geo::distance_m(lead->at, candidate.plan.location);
      if (candidate.busy_until <= lead->free_at && d < best) {
        best = d;
        client = &candidate;
      }
    }
    if (client == nullptr) {  // every candidate busy: try again a little later
      lead->free_at += 15min;
      continue;
    }

    TimePoint start = client->busy_until;
    for (const Carer* c : team) {
      start = std::max(start, c->free_at + geo::travel_time(c->at, client->plan.location, model));
    }
    start = round_up(start + rng.whole(0, 2) * 5min, 5min);
    if (start > last_start) {
      lead->active = false;
      continue;
    }
    rota::VisitPlan v;
    v.client = client->plan;
    v.start = start;
    v.end = start + length;
    v.type = std::string(kind.type);
    v.time_critical = medication;
    v.notes = std::string(kNotes[rng.next() % kNotes.size()]);
    if (team.size() > 1) v.notes = "Hoist transfer: two carers - wait for your colleague";
    for (Carer* c : team) {
      v.carers.push_back(c->id);
      c->free_at = v.end;
      c->at = client->plan.location;
    }
    client->busy_until = v.end + 1h;  // not the same client twice within an hour
    visits.push_back(std::move(v));
  }

  std::sort(visits.begin(), visits.end(), [](const rota::VisitPlan& a, const rota::VisitPlan& b) {
    return a.start != b.start ? a.start < b.start : a.carers.front() < b.carers.front();
  });
  for (std::size_t i = 0; i < visits.size(); ++i) {
    visits[i].id = branch.id + "-V" + number(unsigned(i + 1), 3);
  }
  day.visits = std::move(visits);
  return day;
}

std::string coordinate(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6f", v);
  return buf;
}

}  // namespace

std::vector<BranchDay> generate_agency(const std::vector<BranchPlace>& branches, LocalDays date,
                                       const AgencyOptions& options) {
  std::vector<BranchDay> days;
  for (std::size_t i = 0; i < branches.size(); ++i) {
    days.push_back(make_day(branches[i], i, date, options));
  }
  return days;
}

std::string rota_csv(const BranchDay& day) {
  std::string csv =
      "visit_id,client_id,client_name,lat,lon,carers,start,end,type,time_critical,notes\n";
  for (const rota::VisitPlan& v : day.visits) {
    std::string carers;
    for (const auto& c : v.carers) carers += (carers.empty() ? "" : ";") + c;
    csv += v.id + "," + v.client.id + "," + v.client.name + "," +
           coordinate(v.client.location.lat) + "," + coordinate(v.client.location.lon) + "," +
           carers + "," + day.zone.format_local(v.start) + "," + day.zone.format_local(v.end) +
           "," + v.type + "," + (v.time_critical ? "true" : "false") + "," + v.notes + "\n";
  }
  return csv;
}

}  // namespace visitd::sim
