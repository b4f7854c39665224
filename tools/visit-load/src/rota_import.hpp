#pragma once
// The rota a load run imports first: each carer gets visits that span the present moment,
// so that their check-ins fall in the visit window and their pings on shift.

#include <string>
#include <vector>

#include "visitd/core/time.hpp"
#include "visitd/core/zone.hpp"

namespace visitd::load {

/// One carer of the run: the connection's identity and the visits it will check in to.
struct CarerPlan {
  std::string id;                   ///< C0001...
  std::vector<std::string> visits;  ///< visit ids, in the order it works through them
  double lat = 0;                   ///< where it is (its clients are all here)
  double lon = 0;
};

/// Carers C0001..C<count>, spread over central London, with `visits_each` visit ids
/// `V<tag>-<carer>-<n>` (none when visits_each is 0).
std::vector<CarerPlan> make_carers(unsigned count, unsigned visits_each, const std::string& tag,
                                   unsigned first = 1);

/// The rota as CSV (protocol.md columns, start and end in RFC 3339 UTC, which the importer
/// takes as they are): every visit starts on `day` in `zone`, no later than `now`, and ends
/// two hours or more after `now`.
std::string make_rota_csv(const std::vector<CarerPlan>& carers, const TimeZone& zone, LocalDays day,
                          TimePoint now);

/// PUT /api/rota?branch=..&date=.. with an admin token; returns the response body. Throws
/// std::runtime_error with the status and body when the answer is not 200.
std::string put_rota(const std::string& host, const std::string& port, const std::string& branch,
                     LocalDays day, const std::string& csv, const std::string& token);

}  // namespace visitd::load
