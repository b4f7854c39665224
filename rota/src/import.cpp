#include "visitd/rota/import.hpp"

#include <algorithm>
#include <array>
#include <bitset>
#include <boost/json.hpp>
#include <cassert>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <unordered_map>
#include <utility>

#include "visitd/core/json_kind.hpp"

namespace visitd::rota {
namespace {

// ---------------------------------------------------------------------------------------------
// Columns

enum class Column : std::uint8_t {
  visit_id,
  client_id,
  client_name,
  lat,
  lon,
  carers,
  start,
  end,
  type,
  time_critical,
  geofence_m,
  tag,
  notes,
};
constexpr std::size_t kColumnCount = 13;
constexpr std::size_t kRequiredCount = 8;  // the first eight columns are required
constexpr std::array<std::string_view, kColumnCount> kColumnNames = {
    "visit_id", "client_id", "client_name",   "lat",        "lon", "carers", "start",
    "end",      "type",      "time_critical", "geofence_m", "tag", "notes"};
static_assert(kColumnNames.size() == static_cast<std::size_t>(Column::notes) + 1);
static_assert(kColumnNames[static_cast<std::size_t>(Column::type)] == "type" &&
              kColumnNames[static_cast<std::size_t>(Column::notes)] == "notes");

constexpr std::size_t index_of(Column c) { return static_cast<std::size_t>(c); }
constexpr std::string_view name_of(Column c) { return kColumnNames[index_of(c)]; }

std::optional<Column> column_named(std::string_view name) {
  for (std::size_t i = 0; i < kColumnCount; ++i) {
    if (kColumnNames[i] == name) return static_cast<Column>(i);
  }
  return std::nullopt;
}

std::string column_list() {
  std::string out;
  for (const auto name : kColumnNames) {
    if (!out.empty()) out += ',';
    out += name;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Text helpers

std::string_view trim(std::string_view s) {
  constexpr std::string_view kSpace = " \t";
  const auto first = s.find_first_not_of(kSpace);
  if (first == std::string_view::npos) return {};
  return s.substr(first, s.find_last_not_of(kSpace) - first + 1);
}

// A value quoted for a message, cut short (on a UTF-8 character boundary) so that a
// runaway field does not flood the report.
std::string quoted(std::string_view s) {
  constexpr std::size_t kMax = 60;
  if (s.size() <= kMax) return "'" + std::string(s) + "'";
  std::size_t cut = kMax;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
  return "'" + std::string(s.substr(0, cut)) + "...'";
}

std::string format_number(double v) {
  std::array<char, 32> buf{};
  const auto [end, ec] = std::to_chars(buf.data(), buf.data() + buf.size(), v);
  if (ec != std::errc()) return "?";
  return {buf.data(), end};
}

// Spreadsheets on Windows save "CSV" in Windows-1252 unless told otherwise; such names
// ("Zoë") would reach phones and the board as garbage, so the import refuses them.
bool valid_utf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t len = 0;
    std::uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
      cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > s.size()) return false;
    for (std::size_t k = 1; k < len; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    const bool overlong = (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000);
    const bool surrogate = cp >= 0xD800 && cp <= 0xDFFF;
    if (overlong || surrogate || cp > 0x10FFFF) return false;
    i += len;
  }
  return true;
}

// The whole text as a number, nothing before or after it ("51.5x" is not a number).
std::optional<double> parse_number(std::string_view s) {
  double v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

std::optional<bool> parse_bool(std::string_view s) {
  std::string lower(s);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (lower == "true" || lower == "1" || lower == "yes") return true;
  if (lower == "false" || lower == "0" || lower == "no") return false;
  return std::nullopt;
}

bool valid_type(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
}

// ---------------------------------------------------------------------------------------------
// One row as the file gave it, before validation; shared by the CSV and JSON readers.

struct RawRow {
  int line = 0;
  /// The text of each column; nullopt when the file does not give it.
  std::array<std::optional<std::string>, kColumnCount> cells;
  /// `carers` when given as a JSON array; otherwise cells[carers] is split on ';'.
  std::optional<std::vector<std::string>> carer_list;
  /// Columns whose fault the reader has already reported (too long, wrong JSON type, a
  /// required column missing from the header): not checked again, and no visit is made.
  std::bitset<kColumnCount> at_fault;
};

/// What validation learned from one row, for the checks that span rows.
struct CheckedRow {
  VisitPlan plan;             ///< as far as the row is valid; an id at fault is left empty
  bool client_valid = false;  ///< every client column is valid
  bool valid = false;         ///< the whole row is valid
};

class RowChecker {
 public:
  RowChecker(const TimeZone& zone, LocalDays date, std::vector<ImportIssue>& issues)
      : zone_(zone), date_(date), issues_(issues) {}

  CheckedRow check(const RawRow& row) {
    row_ = &row;
    ok_ = true;
    CheckedRow out;
    VisitPlan& plan = out.plan;
    plan.line = row.line;
    if (const auto id = required(Column::visit_id)) plan.id = std::string(*id);
    bool client_ok = true;
    const auto track = [&](bool fine) { client_ok = client_ok && fine; };
    if (const auto id = required(Column::client_id)) {
      plan.client.id = std::string(*id);
    } else {
      track(false);
    }
    if (const auto name = required(Column::client_name)) {
      plan.client.name = std::string(*name);
    } else {
      track(false);
    }
    const auto lat = coordinate(Column::lat, 90);
    const auto lon = coordinate(Column::lon, 180);
    track(lat && lon);
    if (lat && lon) plan.client.location = {*lat, *lon};
    if (const auto carers = carer_ids()) plan.carers = *carers;
    check_times(plan);
    if (const auto type = text(Column::type)) {
      if (type->empty()) {
        // The default from VisitPlan stands.
      } else if (valid_type(*type)) {
        plan.type = std::string(*type);
      } else {
        fail(Column::type,
             "type must be lower-case letters, digits and '_' (like personal_care), got " +
                 quoted(*type));
      }
    }
    if (const auto critical = text(Column::time_critical); critical && !critical->empty()) {
      if (const auto value = parse_bool(*critical)) {
        plan.time_critical = *value;
      } else {
        fail(Column::time_critical,
             "time_critical must be true or false (or yes/no, 1/0), got " + quoted(*critical));
      }
    }
    if (const auto geofence = text(Column::geofence_m)) {
      if (!geofence->empty()) {
        const auto metres = parse_number(*geofence);
        if (metres && std::isfinite(*metres) && *metres > 0) {
          plan.client.geofence_m = *metres;
        } else {
          fail(Column::geofence_m,
               "geofence_m must be a positive number of metres, got " + quoted(*geofence));
          track(false);
        }
      }
    } else {
      track(false);
    }
    if (const auto tag = text(Column::tag)) {
      plan.client.tag = std::string(*tag);
    } else {
      track(false);
    }
    // Notes are the carer's to read as written: not trimmed.
    if (row.at_fault[index_of(Column::notes)]) {
      ok_ = false;
    } else if (const auto& notes = row.cells[index_of(Column::notes)]) {
      plan.notes = *notes;
    }

    out.client_valid = client_ok;
    out.valid = ok_;
    return out;
  }

 private:
  void fail(Column c, std::string message) {
    issues_.push_back({row_->line, std::string(name_of(c)), std::move(message)});
    ok_ = false;
  }

  // The trimmed text of a column ("" when not given); nullopt when already at fault.
  std::optional<std::string_view> text(Column c) {
    if (row_->at_fault[index_of(c)]) {
      ok_ = false;
      return std::nullopt;
    }
    const auto& cell = row_->cells[index_of(c)];
    if (!cell) return std::string_view{};
    return trim(*cell);
  }

  std::optional<std::string_view> required(Column c) {
    const auto value = text(c);
    if (!value) return std::nullopt;
    if (value->empty()) {
      fail(c, std::string(name_of(c)) + " is required");
      return std::nullopt;
    }
    return value;
  }

  std::optional<double> coordinate(Column c, double limit) {
    const auto value = required(c);
    if (!value) return std::nullopt;
    const auto degrees = parse_number(*value);
    if (!degrees || !std::isfinite(*degrees)) {
      fail(c, std::string(name_of(c)) + " must be a number of degrees, got " + quoted(*value));
      return std::nullopt;
    }
    if (*degrees < -limit || *degrees > limit) {
      fail(c, std::string(name_of(c)) + " " + format_number(*degrees) + " is out of range (" +
                  format_number(-limit) + " to " + format_number(limit) + ")");
      return std::nullopt;
    }
    return degrees;
  }

  std::optional<std::vector<std::string>> carer_ids() {
    constexpr auto kColumn = Column::carers;
    std::vector<std::string> given;
    if (row_->at_fault[index_of(kColumn)]) {
      ok_ = false;
      return std::nullopt;
    }
    if (row_->carer_list) {
      given = *row_->carer_list;
    } else {
      const auto value = required(kColumn);
      if (!value) return std::nullopt;
      std::string_view rest = *value;
      for (;;) {
        const auto semi = rest.find(';');
        given.emplace_back(rest.substr(0, semi));
        if (semi == std::string_view::npos) break;
        rest.remove_prefix(semi + 1);
      }
    }
    if (given.empty()) {
      fail(kColumn, "carers is required: at least one carer id");
      return std::nullopt;
    }
    std::vector<std::string> ids;
    bool fine = true;
    bool empty_reported = false;
    std::vector<std::string_view> repeated;
    for (const auto& raw : given) {
      const auto id = trim(raw);
      if (id.empty()) {
        if (!empty_reported) {
          fail(kColumn, "carers has an empty carer id (look for ';;' or a ';' at either end)");
        }
        empty_reported = true;
        fine = false;
      } else if (std::find(ids.begin(), ids.end(), id) != ids.end()) {
        if (std::find(repeated.begin(), repeated.end(), id) == repeated.end()) {
          fail(kColumn, "carer " + std::string(id) + " is listed more than once");
          repeated.emplace_back(id);
        }
        fine = false;
      } else {
        ids.emplace_back(id);
      }
    }
    if (!fine) return std::nullopt;
    return ids;
  }

  std::optional<TimePoint> instant(Column c) {
    const auto value = required(c);
    if (!value) return std::nullopt;
    if (const auto local = parse_local_time(*value)) {
      auto sys = zone_.to_sys(*local);
      if (!sys) {
        fail(c, sys.error().message);
        return std::nullopt;
      }
      return *sys;
    }
    if (const auto t = parse_rfc3339(*value)) return t;
    fail(c, std::string(name_of(c)) +
                " must be a local time like 2026-11-23 09:00 or an RFC 3339 time like "
                "2026-11-23T09:00:00Z, got " +
                quoted(*value));
    return std::nullopt;
  }

  void check_times(VisitPlan& plan) {
    const auto start = instant(Column::start);
    const auto end = instant(Column::end);
    if (start) {
      plan.start = *start;
      if (const auto day = zone_.local_day(*start); day != date_) {
        fail(Column::start, "the visit starts on " + format_local_date(day) + " (" +
                                std::string(zone_.name()) + "), not on the rota's date " +
                                format_local_date(date_));
      }
    }
    if (end) plan.end = *end;
    if (!start || !end) return;
    if (*end <= *start) {
      fail(Column::end,
           "end " + zone_.format_local(*end) + " is not after start " + zone_.format_local(*start));
    } else if (*end - *start > std::chrono::hours(24)) {
      fail(Column::end, "the visit lasts longer than 24h (" + zone_.format_local(*start) + " to " +
                            zone_.format_local(*end) + ")");
    }
  }

  const TimeZone& zone_;
  LocalDays date_;
  std::vector<ImportIssue>& issues_;
  const RawRow* row_ = nullptr;
  bool ok_ = true;
};

// The checks that span rows, then all or nothing.
ParsedRota finish(std::vector<CheckedRow> rows, std::vector<ImportIssue> issues) {
  // Keys view into `rows`, which does not change while they live.
  std::unordered_map<std::string_view, int> visit_lines;
  std::unordered_map<std::string_view, const VisitPlan*> clients;
  for (const auto& row : rows) {
    const VisitPlan& plan = row.plan;
    if (!plan.id.empty()) {
      const auto [it, fresh] = visit_lines.emplace(plan.id, plan.line);
      if (!fresh) {
        issues.push_back(
            {plan.line, "visit_id",
             "visit " + plan.id + " is already on line " + std::to_string(it->second)});
      }
    }
    if (!row.client_valid) continue;
    const auto [it, fresh] = clients.emplace(plan.client.id, &plan);
    if (fresh) continue;
    const ClientPlan& first = it->second->client;
    const ClientPlan& here = plan.client;
    const auto on_line = " on line " + std::to_string(it->second->line);
    const auto differs = [&](std::string_view field, const std::string& mine,
                             const std::string& theirs) {
      std::string message = "client " + here.id + " has ";
      message.append(field).append(" ").append(mine).append(" here but ").append(theirs);
      message += on_line;
      issues.push_back({plan.line, std::string(field), std::move(message)});
    };
    const auto optional_number = [](const std::optional<double>& v) {
      return v ? format_number(*v) : std::string("none");
    };
    const auto optional_text = [](const std::string& s) {
      return s.empty() ? std::string("none") : quoted(s);
    };
    if (here.name != first.name) differs("client_name", quoted(here.name), quoted(first.name));
    if (here.location.lat != first.location.lat) {
      differs("lat", format_number(here.location.lat), format_number(first.location.lat));
    }
    if (here.location.lon != first.location.lon) {
      differs("lon", format_number(here.location.lon), format_number(first.location.lon));
    }
    if (here.geofence_m != first.geofence_m) {
      differs("geofence_m", optional_number(here.geofence_m), optional_number(first.geofence_m));
    }
    if (here.tag != first.tag) differs("tag", optional_text(here.tag), optional_text(first.tag));
  }

  ParsedRota out;
  std::stable_sort(issues.begin(), issues.end(),
                   [](const ImportIssue& a, const ImportIssue& b) { return a.line < b.line; });
  out.issues = std::move(issues);
  if (out.issues.empty()) {
    out.visits.reserve(rows.size());
    for (auto& row : rows) {
      assert(row.valid);  // every fault in a row is an issue
      out.visits.push_back(std::move(row.plan));
    }
  }
  return out;
}

ParsedRota too_many_rows(int line, std::size_t max_rows) {
  ParsedRota out;
  out.issues.push_back(
      {line, "",
       "more than " + std::to_string(max_rows) + " visit rows; split the rota into smaller files"});
  return out;
}

// ---------------------------------------------------------------------------------------------
// CSV (RFC 4180)

struct CsvRecord {
  int line = 0;  ///< the physical line the record starts on
  std::vector<std::string> fields;
  bool blank = false;  ///< an empty (or all-blank) line
  /// A fault in the record's syntax, at field `fault_field`.
  std::string fault;
  std::size_t fault_field = 0;
  bool unterminated = false;  ///< a quote never closed: the rest of the file is this field
};

class CsvReader {
 public:
  explicit CsvReader(std::string_view text) : text_(text) {
    constexpr std::string_view kBom = "\xEF\xBB\xBF";
    if (text_.substr(0, kBom.size()) == kBom) text_.remove_prefix(kBom.size());
  }

  /// Reads the next record; false at the end of the text.
  bool next(CsvRecord& rec) {
    if (pos_ >= text_.size()) return false;
    rec.line = line_;
    rec.fields.clear();
    rec.fault.clear();
    rec.fault_field = 0;
    rec.unterminated = false;
    bool any_quoted = false;
    for (;;) {
      std::string field;
      if (pos_ < text_.size() && text_[pos_] == '"') {
        any_quoted = true;
        if (!read_quoted(field, rec)) {
          rec.fields.push_back(std::move(field));
          rec.blank = false;
          return true;
        }
      } else {
        const auto stop = text_.find_first_of(",\r\n", pos_);
        const auto end = stop == std::string_view::npos ? text_.size() : stop;
        field.assign(text_.substr(pos_, end - pos_));
        pos_ = end;
      }
      rec.fields.push_back(std::move(field));
      if (pos_ < text_.size() && text_[pos_] == ',') {
        ++pos_;
        continue;
      }
      skip_line_break();
      rec.blank = !any_quoted && rec.fields.size() == 1 && trim(rec.fields[0]).empty();
      return true;
    }
  }

 private:
  // At an opening quote. False when the quote is never closed.
  bool read_quoted(std::string& field, CsvRecord& rec) {
    const int opened = line_;
    ++pos_;
    for (;;) {
      if (pos_ >= text_.size()) {
        rec.fault = "a quoted field opened on line " + std::to_string(opened) + " is never closed";
        rec.fault_field = rec.fields.size();
        rec.unterminated = true;
        return false;
      }
      const char c = text_[pos_];
      if (c == '"') {
        if (pos_ + 1 < text_.size() && text_[pos_ + 1] == '"') {
          field += '"';
          pos_ += 2;
          continue;
        }
        ++pos_;
        break;
      }
      if (c == '\r' || c == '\n') {
        // A line break inside a value is kept as "\n" whatever the file used, so that the
        // same rota saved on Windows or elsewhere gives the same notes.
        skip_line_break();
        field += '\n';
        continue;
      }
      const auto stop = text_.find_first_of("\"\r\n", pos_);
      const auto end = stop == std::string_view::npos ? text_.size() : stop;
      field.append(text_.substr(pos_, end - pos_));
      pos_ = end;
    }
    if (pos_ < text_.size() && text_[pos_] != ',' && text_[pos_] != '\r' && text_[pos_] != '\n') {
      if (rec.fault.empty()) {
        rec.fault =
            "text after a closing quote; a quote inside a quoted value is written twice (\"\")";
        rec.fault_field = rec.fields.size();
      }
      const auto stop = text_.find_first_of(",\r\n", pos_);
      const auto end = stop == std::string_view::npos ? text_.size() : stop;
      field.append(text_.substr(pos_, end - pos_));
      pos_ = end;
    }
    return true;
  }

  // CRLF, LF or a lone CR: one line break.
  void skip_line_break() {
    if (pos_ >= text_.size()) return;
    if (text_[pos_] == '\r') {
      ++pos_;
      if (pos_ < text_.size() && text_[pos_] == '\n') ++pos_;
    } else if (text_[pos_] == '\n') {
      ++pos_;
    } else {
      return;
    }
    ++line_;
  }

  std::string_view text_;
  std::size_t pos_ = 0;
  int line_ = 1;
};

}  // namespace

ParsedRota parse_rota_csv(std::string_view text, const TimeZone& zone, LocalDays date,
                          const ImportLimits& limits) {
  std::vector<ImportIssue> issues;
  CsvReader reader(text);
  CsvRecord header;
  if (!reader.next(header) || header.blank) {
    ParsedRota out;
    out.issues.push_back(
        {1, "",
         "the header row is missing; the first line must name the columns, e.g. " + column_list()});
    return out;
  }
  if (header.unterminated) {
    ParsedRota out;
    out.issues.push_back({1, "", header.fault});
    return out;
  }

  // Which column each position holds; nullopt for a position that is ignored (already
  // reported as unknown, duplicate or unnamed).
  std::vector<std::optional<Column>> layout(header.fields.size());
  std::array<std::size_t, kColumnCount> position{};
  std::bitset<kColumnCount> seen;
  for (std::size_t i = 0; i < header.fields.size(); ++i) {
    const auto name = trim(header.fields[i]);
    const auto column = column_named(name);
    if (name.empty()) {
      issues.push_back({1, "", "column " + std::to_string(i + 1) + " has no name"});
    } else if (!column) {
      issues.push_back({1, std::string(name),
                        "unknown column " + quoted(name) + "; the columns are " + column_list()});
    } else if (seen[index_of(*column)]) {
      issues.push_back({1, std::string(name),
                        "column " + std::string(name) + " appears twice (columns " +
                            std::to_string(position[index_of(*column)] + 1) + " and " +
                            std::to_string(i + 1) + ")"});
    } else {
      seen.set(index_of(*column));
      position[index_of(*column)] = i;
      layout[i] = column;
    }
  }
  std::bitset<kColumnCount> missing;
  for (std::size_t c = 0; c < kRequiredCount; ++c) {
    if (!seen[c]) {
      missing.set(c);
      issues.push_back({1, std::string(kColumnNames[c]),
                        "required column " + std::string(kColumnNames[c]) + " is missing"});
    }
  }
  if (!header.fault.empty()) {
    issues.push_back({1, std::string(trim(header.fields[header.fault_field])), header.fault});
  }

  RowChecker checker(zone, date, issues);
  std::vector<CheckedRow> rows;
  std::vector<int> blank_lines;  // reported only if a row follows: trailing ones are fine
  std::size_t row_count = 0;
  CsvRecord rec;
  while (reader.next(rec)) {
    if (rec.blank) {
      blank_lines.push_back(rec.line);
      continue;
    }
    for (const int line : blank_lines) {
      issues.push_back({line, "", "blank line between rows; remove it"});
    }
    blank_lines.clear();
    if (++row_count > limits.max_rows) return too_many_rows(rec.line, limits.max_rows);

    const auto field_name = [&](std::size_t i) {
      return i < header.fields.size() ? std::string(trim(header.fields[i])) : std::string();
    };
    if (rec.unterminated) {
      issues.push_back({rec.line, field_name(rec.fault_field), rec.fault});
      break;  // the rest of the file was swallowed by the open quote
    }
    if (rec.fields.size() != header.fields.size()) {
      issues.push_back({rec.line, "",
                        "the row has " + std::to_string(rec.fields.size()) +
                            " fields but the header has " + std::to_string(header.fields.size()) +
                            (rec.fields.size() > header.fields.size()
                                 ? " (a value with a comma must be in double quotes)"
                                 : "")});
      continue;
    }

    RawRow row;
    row.line = rec.line;
    row.at_fault = missing;
    for (std::size_t i = 0; i < rec.fields.size(); ++i) {
      const bool syntax_fault = !rec.fault.empty() && rec.fault_field == i;
      if (syntax_fault) issues.push_back({rec.line, field_name(i), rec.fault});
      if (!layout[i]) continue;
      const auto column = *layout[i];
      auto& field = rec.fields[i];
      if (syntax_fault) {
        row.at_fault.set(index_of(column));
      } else if (field.size() > limits.max_field) {
        issues.push_back({rec.line, std::string(name_of(column)),
                          std::string(name_of(column)) + " is " + std::to_string(field.size()) +
                              " bytes long; the limit is " + std::to_string(limits.max_field)});
        row.at_fault.set(index_of(column));
      } else if (!valid_utf8(field)) {
        issues.push_back(
            {rec.line, std::string(name_of(column)),
             std::string(name_of(column)) + " is not valid UTF-8; save the file as \"CSV UTF-8\""});
        row.at_fault.set(index_of(column));
      }
      row.cells[index_of(column)] = std::move(field);
    }
    rows.push_back(checker.check(row));
  }
  return finish(std::move(rows), std::move(issues));
}

// ---------------------------------------------------------------------------------------------
// JSON

namespace {

namespace json = boost::json;

std::string position_of(std::string_view text, std::size_t offset) {
  offset = std::min(offset, text.size());
  const auto before = text.substr(0, offset);
  const auto line = std::count(before.begin(), before.end(), '\n') + 1;
  const auto line_start = before.rfind('\n');
  const auto column = line_start == std::string_view::npos ? offset + 1 : offset - line_start;
  return "line " + std::to_string(line) + ", column " + std::to_string(column);
}

class JsonRowReader {
 public:
  JsonRowReader(const ImportLimits& limits, std::vector<ImportIssue>& issues)
      : limits_(limits), issues_(issues) {}

  RawRow read(const json::object& object, int line) {
    RawRow row;
    row.line = line;
    line_ = line;
    row_ = &row;
    for (const auto& [key, value] : object) {
      const auto column = column_named(key);
      if (!column) {
        issues_.push_back({line, std::string(key),
                           "unknown key " + quoted(key) + "; the keys are " + column_list()});
        continue;
      }
      if (value.is_null()) continue;  // as if not given
      switch (*column) {
        case Column::lat:
        case Column::lon:
        case Column::geofence_m:
          number(*column, value);
          break;
        case Column::carers:
          carers(value);
          break;
        case Column::time_critical:
          if (value.is_bool()) {
            row.cells[index_of(*column)] = value.get_bool() ? "true" : "false";
          } else if (value.is_string()) {
            string(*column, value.get_string());
          } else {
            fault(*column,
                  "time_critical must be true or false, not " + std::string(json_kind(value)));
          }
          break;
        default:
          if (value.is_string()) {
            string(*column, value.get_string());
          } else {
            fault(*column, std::string(name_of(*column)) + " must be a string, not " +
                               std::string(json_kind(value)));
          }
          break;
      }
    }
    return row;
  }

 private:
  void fault(Column c, std::string message) {
    issues_.push_back({line_, std::string(name_of(c)), std::move(message)});
    row_->at_fault.set(index_of(c));
  }

  bool fits(Column c, std::size_t size) {
    if (size <= limits_.max_field) return true;
    fault(c, std::string(name_of(c)) + " is " + std::to_string(size) +
                 " bytes long; the limit is " + std::to_string(limits_.max_field));
    return false;
  }

  void string(Column c, const json::string& s) {
    if (fits(c, s.size())) row_->cells[index_of(c)] = std::string(s);
  }

  // The number goes on as its shortest exact text, so that the CSV's checks apply as they are.
  void number(Column c, const json::value& v) {
    std::string text;
    if (v.is_int64()) {
      text = std::to_string(v.get_int64());
    } else if (v.is_uint64()) {
      text = std::to_string(v.get_uint64());
    } else if (v.is_double()) {
      text = format_number(v.get_double());
    } else if (v.is_string()) {
      const auto given = trim(v.get_string());
      fault(c, std::string(name_of(c)) + " must be a JSON number, not a string" +
                   (parse_number(given) ? " (write " + std::string(given) + " without quotes)"
                                        : ": " + quoted(given)));
      return;
    } else {
      fault(c,
            std::string(name_of(c)) + " must be a JSON number, not " + std::string(json_kind(v)));
      return;
    }
    row_->cells[index_of(c)] = std::move(text);
  }

  void carers(const json::value& v) {
    constexpr auto kColumn = Column::carers;
    if (v.is_string()) {
      string(kColumn, v.get_string());
      return;
    }
    if (!v.is_array()) {
      fault(kColumn, "carers must be an array of carer ids or a ';'-separated string, not " +
                         std::string(json_kind(v)));
      return;
    }
    std::vector<std::string> ids;
    std::size_t total = 0;
    for (std::size_t i = 0; i < v.get_array().size(); ++i) {
      const auto& item = v.get_array()[i];
      if (!item.is_string()) {
        fault(kColumn, "carers must hold strings; item " + std::to_string(i + 1) + " is " +
                           std::string(json_kind(item)));
        return;
      }
      total += item.get_string().size() + 1;
      ids.emplace_back(item.get_string());
    }
    if (fits(kColumn, total == 0 ? 0 : total - 1)) row_->carer_list = std::move(ids);
  }

  const ImportLimits& limits_;
  std::vector<ImportIssue>& issues_;
  RawRow* row_ = nullptr;
  int line_ = 0;
};

}  // namespace

ParsedRota parse_rota_json(std::string_view text, const TimeZone& zone, LocalDays date,
                           const ImportLimits& limits) {
  constexpr std::string_view kBom = "\xEF\xBB\xBF";
  if (text.substr(0, kBom.size()) == kBom) text.remove_prefix(kBom.size());

  json::stream_parser parser;
  boost::system::error_code ec;
  const auto consumed = parser.write(text.data(), text.size(), ec);
  if (!ec) parser.finish(ec);
  if (ec) {
    ParsedRota out;
    out.issues.push_back(
        {0, "", "malformed JSON at " + position_of(text, consumed) + ": " + ec.message()});
    return out;
  }
  const json::value document = parser.release();
  if (!document.is_array()) {
    ParsedRota out;
    out.issues.push_back(
        {0, "",
         "the rota must be a JSON array of visit rows, not " + std::string(json_kind(document))});
    return out;
  }
  const auto& array = document.get_array();
  if (array.size() > limits.max_rows) {
    return too_many_rows(static_cast<int>(limits.max_rows) + 1, limits.max_rows);
  }

  std::vector<ImportIssue> issues;
  RowChecker checker(zone, date, issues);
  JsonRowReader reader(limits, issues);
  std::vector<CheckedRow> rows;
  rows.reserve(array.size());
  for (std::size_t i = 0; i < array.size(); ++i) {
    const int line = static_cast<int>(i + 1);
    if (!array[i].is_object()) {
      issues.push_back(
          {line, "",
           "each visit row must be a JSON object, not " + std::string(json_kind(array[i]))});
      continue;
    }
    rows.push_back(checker.check(reader.read(array[i].get_object(), line)));
  }
  return finish(std::move(rows), std::move(issues));
}

}  // namespace visitd::rota
