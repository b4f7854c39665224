#pragma once
// Rota import from CSV and JSON (../shared/protocol.md, `PUT /api/rota`). All or nothing:
// a file with any fault yields every fault, with its line and field, and no visits.

#include <string>
#include <string_view>
#include <vector>

#include "visitd/core/zone.hpp"
#include "visitd/rota/model.hpp"

namespace visitd::rota {

/// One fault in an imported file. `line` is the 1-based line in a CSV file (the header is
/// line 1) or the 1-based position of the row in a JSON array.
struct ImportIssue {
  int line = 0;
  std::string field;  ///< the column, or empty for the row or file as a whole
  std::string message;
};

struct ParsedRota {
  std::vector<VisitPlan> visits;  ///< empty whenever issues is not
  std::vector<ImportIssue> issues;
  bool ok() const { return issues.empty(); }
};

/// The limits an import enforces before it parses anything else.
struct ImportLimits {
  std::size_t max_rows = 100'000;
  std::size_t max_field = 4096;  ///< bytes in one field (notes included)
};

/// Parses a CSV rota for one branch's day. `zone` is the branch's time zone: local times
/// (`2026-11-23 09:00`) are converted through it, refusing those that happen twice or never
/// at a DST change; RFC 3339 times are taken as they are. Every visit must start on `date`
/// (local).
ParsedRota parse_rota_csv(std::string_view text, const TimeZone& zone, LocalDays date,
                          const ImportLimits& limits = {});

/// The same from a JSON array of row objects with the CSV's column names as keys
/// (`carers` an array of strings or a `;`-separated string, `lat`/`lon`/`geofence_m`
/// numbers, `time_critical` a boolean).
ParsedRota parse_rota_json(std::string_view text, const TimeZone& zone, LocalDays date,
                           const ImportLimits& limits = {});

}  // namespace visitd::rota
