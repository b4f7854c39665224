#include "visitd/rota/import.hpp"

#include <algorithm>
#include <array>
#include <catch2/catch.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "visitd/core/time.hpp"
#include "visitd/core/zone.hpp"
#include "visitd/rota/model.hpp"

namespace visitd::rota {
namespace {

using namespace std::chrono_literals;

const TimeZone& london() {
  static const TimeZone zone = *TimeZone::locate("Europe/London");
  return zone;
}

LocalDays day(std::string_view text) { return *parse_local_date(text); }
TimePoint at(std::string_view rfc3339) { return *parse_rfc3339(rfc3339); }

constexpr LocalDays kWinterDay{std::chrono::year{2026} / 11 / 23};

std::string describe(const ParsedRota& rota) {
  std::ostringstream out;
  out << rota.visits.size() << " visits, " << rota.issues.size() << " issues";
  for (const auto& issue : rota.issues) {
    out << "\n  line " << issue.line << " [" << issue.field << "] " << issue.message;
  }
  return out.str();
}

// True when the rota has an issue on `line` for `field` whose message contains `text`.
bool has_issue(const ParsedRota& rota, int line, std::string_view field, std::string_view text) {
  for (const auto& issue : rota.issues) {
    if (issue.line == line && issue.field == field &&
        issue.message.find(text) != std::string::npos) {
      return true;
    }
  }
  return false;
}

std::string lines(std::initializer_list<std::string_view> rows, std::string_view eol = "\n") {
  std::string out;
  for (const auto row : rows) {
    out += row;
    out += eol;
  }
  return out;
}

constexpr std::string_view kAllColumns =
    "visit_id,client_id,client_name,lat,lon,carers,start,end,type,time_critical,geofence_m,tag,"
    "notes";

// A good row for every column, in kAllColumns' order.
constexpr std::array<std::pair<std::string_view, std::string_view>, 13> kGoodRow = {{
    {"visit_id", "V1"},
    {"client_id", "CL1"},
    {"client_name", "Mrs A"},
    {"lat", "51.5014"},
    {"lon", "-0.1419"},
    {"carers", "C1"},
    {"start", "2026-11-23 09:00"},
    {"end", "2026-11-23 10:00"},
    {"type", "personal_care"},
    {"time_critical", "false"},
    {"geofence_m", "100"},
    {"tag", "TAG1"},
    {"notes", "Door code 1234"},
}};

std::string csv_quote(std::string_view value) {
  std::string out = "\"";
  for (const char c : value) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

// The header and the good row with one column's value replaced.
std::string csv_with(std::string_view column, std::string_view value) {
  std::string row;
  for (const auto& [name, good] : kGoodRow) {
    if (!row.empty()) row += ',';
    row += csv_quote(name == column ? value : good);
  }
  return lines({kAllColumns, row});
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// CSV: what goes in comes out

TEST_CASE("A complete CSV rota with every column is imported with its values", "[import]") {
  const auto text = lines({
      kAllColumns,
      "V1,CL1,Mrs A,51.5014,-0.1419,C1,2026-11-23 09:00,2026-11-23 09:45,medication,TRUE,75,"
      "NFC-77,Door code 1234",
      "V2,CL2,Mr B,53.48,-2.24, C2 ; C3 ,2026-11-23 13:00:30,2026-11-23T14:00,,,,,",
  });
  const auto rota = parse_rota_csv(text, london(), kWinterDay);
  INFO(describe(rota));
  REQUIRE(rota.ok());
  REQUIRE(rota.visits.size() == 2);

  const auto& v1 = rota.visits[0];
  CHECK(v1.id == "V1");
  CHECK(v1.client.id == "CL1");
  CHECK(v1.client.name == "Mrs A");
  CHECK(v1.client.location.lat == 51.5014);
  CHECK(v1.client.location.lon == -0.1419);
  CHECK(v1.client.geofence_m == 75.0);
  CHECK(v1.client.tag == "NFC-77");
  CHECK(v1.carers == std::vector<std::string>{"C1"});
  // November in London is GMT: local time is UTC.
  CHECK(v1.start == at("2026-11-23T09:00:00Z"));
  CHECK(v1.end == at("2026-11-23T09:45:00Z"));
  CHECK(v1.type == "medication");
  CHECK(v1.time_critical);
  CHECK(v1.notes == "Door code 1234");
  CHECK(v1.line == 2);

  const auto& v2 = rota.visits[1];
  CHECK(v2.carers == std::vector<std::string>{"C2", "C3"});
  CHECK(v2.start == at("2026-11-23T13:00:30Z"));
  CHECK(v2.end == at("2026-11-23T14:00:00Z"));
  CHECK(v2.type == "personal_care");
  CHECK_FALSE(v2.time_critical);
  CHECK_FALSE(v2.client.geofence_m.has_value());
  CHECK(v2.client.tag.empty());
  CHECK(v2.notes.empty());
  CHECK(v2.line == 3);
}

TEST_CASE("Local times in British Summer Time are an hour ahead of UTC", "[import]") {
  const auto text = lines({
      "visit_id,client_id,client_name,lat,lon,carers,start,end",
      "V1,CL1,Mrs A,51.5,-0.14,C1,2026-07-01 09:00,2026-07-01T10:30:15",
      "V2,CL1,Mrs A,51.5,-0.14,C1,2026-07-01T00:30:00Z,2026-07-01T02:00:00+01:00",
  });
  const auto rota = parse_rota_csv(text, london(), day("2026-07-01"));
  INFO(describe(rota));
  REQUIRE(rota.ok());
  CHECK(rota.visits[0].start == at("2026-07-01T08:00:00Z"));
  CHECK(rota.visits[0].end == at("2026-07-01T09:30:15Z"));
  // RFC 3339 times are taken as they are; 00:30Z is 01:30 BST, on the rota's date.
  CHECK(rota.visits[1].start == at("2026-07-01T00:30:00Z"));
  CHECK(rota.visits[1].end == at("2026-07-01T01:00:00Z"));
}

TEST_CASE("Columns may come in any order", "[import]") {
  const auto canonical =
      parse_rota_csv(lines({kAllColumns,
                            "V1,CL1,Mrs A,51.5,-0.14,C1;C2,2026-11-23 09:00,2026-11-23 10:00,"
                            "meal,yes,120,T1,Soup"}),
                     london(), kWinterDay);
  const auto reordered = parse_rota_csv(
      lines({"notes,end,start,carers,tag,lon,lat,geofence_m,client_name,time_critical,type,"
             "client_id,visit_id",
             "Soup,2026-11-23 10:00,2026-11-23 09:00,C1;C2,T1,-0.14,51.5,120,Mrs A,yes,meal,CL1,"
             "V1"}),
      london(), kWinterDay);
  INFO(describe(canonical) << "\n" << describe(reordered));
  REQUIRE(canonical.ok());
  REQUIRE(reordered.ok());
  REQUIRE(reordered.visits.size() == 1);
  CHECK(reordered.visits[0].same_plan(canonical.visits[0]));
  CHECK(reordered.visits[0].type == "meal");
}

TEST_CASE("Quoted values may hold commas, doubled quotes and line breaks", "[import]") {
  const auto text = lines({
      kAllColumns,
      R"(V1,CL1,"Smith, Mrs A",51.5,-0.14,C1,2026-11-23 09:00,2026-11-23 10:00,,,,,"Key safe, code 1234.)",
      R"(She likes to be called ""Annie"".)",
      R"(Meds in the blue box")",
      R"(V2,CL2,Mr B,51.6,-0.15,C2,2026-11-23 11:00,2026-11-23 12:00,,,,,"")",
      R"(V3,CL3,Mr C,51.7,-0.16,C3,2026-11-23 13:00,2026-11-23 14:00,,,,,")",
      R"(")",
  });
  const auto rota = parse_rota_csv(text, london(), kWinterDay);
  INFO(describe(rota));
  REQUIRE(rota.ok());
  REQUIRE(rota.visits.size() == 3);
  CHECK(rota.visits[0].client.name == "Smith, Mrs A");
  CHECK(rota.visits[0].notes ==
        "Key safe, code 1234.\nShe likes to be called \"Annie\".\nMeds in the blue box");
  CHECK(rota.visits[0].line == 2);
  // A row's line is the physical line it starts on, counting the breaks inside quotes.
  CHECK(rota.visits[1].line == 5);
  CHECK(rota.visits[1].notes.empty());
  CHECK(rota.visits[2].line == 6);
  CHECK(rota.visits[2].notes == "\n");
}

TEST_CASE("A fault after a multi-line value is reported on its own physical line", "[import]") {
  const auto text = lines({
      "visit_id,client_id,client_name,lat,lon,carers,start,end,notes",
      R"(V1,CL1,Mrs A,51.5,-0.14,C1,2026-11-23 09:00,2026-11-23 10:00,"one)",
      "two",
      R"(three")",
      "V2,CL2,Mr B,91,-0.15,C2,2026-11-23 11:00,2026-11-23 12:00,",
  });
  const auto rota = parse_rota_csv(text, london(), kWinterDay);
  INFO(describe(rota));
  REQUIRE(rota.issues.size() == 1);
  CHECK(has_issue(rota, 5, "lat", "out of range"));
  CHECK(rota.visits.empty());
}

TEST_CASE("CRLF line endings and a UTF-8 byte order mark give the same rota as LF", "[import]") {
  const std::initializer_list<std::string_view> rows = {
      kAllColumns,
      R"(V1,CL1,Zoë Ashworth,51.5,-0.14,C1,2026-11-23 09:00,2026-11-23 10:00,,,,,"first)",
      R"(second")",
      "V2,CL2,Mr B,51.6,-0.15,C2,2026-11-23 11:00,2026-11-23 12:00,,,,,",
  };
  const auto plain = parse_rota_csv(lines(rows), london(), kWinterDay);
  const auto windows = parse_rota_csv("\xEF\xBB\xBF" + lines(rows, "\r\n"), london(), kWinterDay);
  INFO(describe(plain) << "\n" << describe(windows));
  REQUIRE(plain.ok());
  REQUIRE(windows.ok());
  REQUIRE(windows.visits.size() == 2);
  CHECK(windows.visits[0].same_plan(plain.visits[0]));
  CHECK(windows.visits[1].same_plan(plain.visits[1]));
  CHECK(windows.visits[0].notes == "first\nsecond");
  CHECK(windows.visits[1].line == 4);
}

TEST_CASE("A last row without a line break and blank trailing lines are accepted", "[import]") {
  const std::string header = "visit_id,client_id,client_name,lat,lon,carers,start,end\n";
  const std::string row = "V1,CL1,Mrs A,51.5,-0.14,C1,2026-11-23 09:00,2026-11-23 10:00";
  const std::string rota_text = header + row;
  for (const std::string tail : {"", "\n", "\n\n\n", "\r\n\r\n", "\n  \n"}) {
    const auto rota = parse_rota_csv(rota_text + tail, london(), kWinterDay);
    INFO("tail of " << tail.size() << " bytes\n" << describe(rota));
    CHECK(rota.ok());
    CHECK(rota.visits.size() == 1);
  }
}

TEST_CASE("A blank line between rows is reported", "[import]") {
  const auto rota =
      parse_rota_csv(lines({"visit_id,client_id,client_name,lat,lon,carers,start,end",
                            "V1,CL1,Mrs A,51.5,-0.14,C1,2026-11-23 09:00,2026-11-23 10:00", "",
                            "V2,CL1,Mrs A,51.5,-0.14,C1,2026-11-23 11:00,2026-11-23 12:00"}),
                     london(), kWinterDay);
  INFO(describe(rota));
  CHECK(rota.issues.size() == 1);
  CHECK(has_issue(rota, 3, "", "blank line"));
  CHECK(rota.visits.empty());
}

TEST_CASE("A header with only the required columns and no rows is an empty rota", "[import]") {
  const auto rota = parse_rota_csv("visit_id,client_id,client_name,lat,lon,carers,start,end\n",
                                   london(), kWinterDay);
  INFO(describe(rota));
  CHECK(rota.ok());
  CHECK(rota.visits.empty());
}

// ---------------------------------------------------------------------------------------------
// CSV: the header

TEST_CASE("An empty file is refused for want of a header", "[import]") {
  for (const std::string text : {"", "\n", "\xEF\xBB\xBF"}) {
    const auto rota = parse_rota_csv(text, london(), kWinterDay);
    INFO(describe(rota));
    REQUIRE(rota.issues.size() == 1);
    CHECK(has_issue(rota, 1, "", "header row is missing"));
  }
}

TEST_CASE("Header faults are reported on line 1 naming the column", "[import]") {
  const auto [header, field, message] = GENERATE(table<std::string, std::string, std::string>({
      {"visit_id,client_id,client_name,lat,lon,carers,start,end,colour", "colour",
       "unknown column 'colour'"},
      {"Visit_ID,visit_id,client_id,client_name,lat,lon,carers,start,end", "Visit_ID",
       "unknown column"},
      {"visit_id,client_id,client_name,lat,lon,carers,start,end,lat", "lat",
       "column lat appears twice (columns 4 and 9)"},
      {"visit_id,client_id,client_name,lat,carers,start,end", "lon",
       "required column lon is missing"},
      {"visit_id,client_id,client_name,lat,lon,carers,start,end,", "", "column 9 has no name"},
  }));
  // A row that fits the header's width, so that only the header is at fault.
  const auto width = std::count(header.begin(), header.end(), ',') + 1;
  std::string row = "V1";
  for (int i = 1; i < width; ++i) row += ",x";
  const auto rota = parse_rota_csv(lines({header, row}), london(), kWinterDay);
  INFO(describe(rota));
  CHECK(has_issue(rota, 1, field, message));
  CHECK(rota.visits.empty());
}

TEST_CASE("Every missing required column is reported, and none twice", "[import]") {
  const auto rota = parse_rota_csv(lines({"visit_id,client_id,client_name,carers,start,end",
                                          "V1,CL1,Mrs A,C1,2026-11-23 09:00,2026-11-23 10:00"}),
                                   london(), kWinterDay);
  INFO(describe(rota));
  CHECK(rota.issues.size() == 2);
  CHECK(has_issue(rota, 1, "lat", "missing"));
  CHECK(has_issue(rota, 1, "lon", "missing"));
  CHECK(rota.visits.empty());
}

// ---------------------------------------------------------------------------------------------
// CSV: syntax faults

TEST_CASE("A row with the wrong number of fields is reported", "[import]") {
  const auto rota =
      parse_rota_csv(lines({"visit_id,client_id,client_name,lat,lon,carers,start,end",
                            "V1,CL1,Smith, Mrs A,51.5,-0.14,C1,2026-11-23 09:00,2026-11-23 10:00",
                            "V2,CL2,Mr B,51.5,-0.14,C1,2026-11-23 09:00",
                            "V3,CL3,Mr C,51.5,-0.14,C1,2026-11-23 09:00,2026-11-23 10:00"}),
                     london(), kWinterDay);
  INFO(describe(rota));
  CHECK(rota.issues.size() == 2);
  CHECK(has_issue(rota, 2, "", "the row has 9 fields but the header has 8"));
  CHECK(has_issue(rota, 3, "", "the row has 7 fields but the header has 8"));
  CHECK(rota.visits.empty());
}

TEST_CASE("A quote that is never closed is reported on the row where it opens", "[import]") {
  const auto rota = parse_rota_csv(
      lines({"visit_id,client_id,client_name,lat,lon,carers,start,end,notes",
             "V1,CL1,Mrs A,51.5,-0.14,C1,2026-11-23 09:00,2026-11-23 10:00,ok",
             R"(V2,CL2,Mr B,51.5,-0.14,C1,2026-11-23 11:00,2026-11-23 12:00,"Ring twice)",
             "V3,CL3,Mr C,51.5,-0.14,C1,2026-11-23 13:00,2026-11-23 14:00,"}),
      london(), kWinterDay);
  INFO(describe(rota));
  REQUIRE(rota.issues.size() == 1);
  CHECK(has_issue(rota, 3, "notes", "a quoted field opened on line 3 is never closed"));
  CHECK(rota.visits.empty());
}

TEST_CASE("Text after a closing quote is reported", "[import]") {
  const auto rota = parse_rota_csv(
      lines({"visit_id,client_id,client_name,lat,lon,carers,start,end",
             R"(V1,CL1,"Mrs "Annie" A",51.5,-0.14,C1,2026-11-23 09:00,2026-11-23 10:00)"}),
      london(), kWinterDay);
  INFO(describe(rota));
  REQUIRE(rota.issues.size() == 1);
  CHECK(has_issue(rota, 2, "client_name", "text after a closing quote"));
}

TEST_CASE("Text that is not UTF-8 is refused with advice to save as CSV UTF-8", "[import]") {
  // "Zoë" as Windows-1252 saves it.
  const auto rota = parse_rota_csv(csv_with("client_name", "Zo\xEB"), london(), kWinterDay);
  INFO(describe(rota));
  REQUIRE(rota.issues.size() == 1);
  CHECK(has_issue(rota, 2, "client_name", "not valid UTF-8"));
}

// ---------------------------------------------------------------------------------------------
// CSV: each field's validation

TEST_CASE("The good row used by the field tests is accepted", "[import]") {
  const auto rota = parse_rota_csv(csv_with("", ""), london(), kWinterDay);
  INFO(describe(rota));
  CHECK(rota.ok());
  CHECK(rota.visits.size() == 1);
}

TEST_CASE("Each invalid field is reported on its line and column", "[import]") {
  const auto [field, value, message] = GENERATE(table<std::string, std::string, std::string>({
      {"visit_id", "", "visit_id is required"},
      {"visit_id", "   ", "visit_id is required"},
      {"client_id", "", "client_id is required"},
      {"client_name", "", "client_name is required"},
      {"lat", "", "lat is required"},
      {"lat", "51.5x", "lat must be a number of degrees, got '51.5x'"},
      {"lat", "51,5", "must be a number"},
      {"lat", "nan", "must be a number"},
      {"lat", "inf", "must be a number"},
      {"lat", "90.0001", "lat 90.0001 is out of range (-90 to 90)"},
      {"lat", "-91", "out of range"},
      {"lon", "", "lon is required"},
      {"lon", "W0.14", "lon must be a number"},
      {"lon", "180.5", "lon 180.5 is out of range (-180 to 180)"},
      {"lon", "-181", "out of range"},
      {"carers", "", "carers is required"},
      {"carers", "C1;;C2", "empty carer id"},
      {"carers", "C1;", "empty carer id"},
      {"carers", ";", "empty carer id"},
      {"carers", "C1; C2 ;C1", "carer C1 is listed more than once"},
      {"carers", "C1;C1;C1", "carer C1 is listed more than once"},
      {"start", "", "start is required"},
      {"start", "9am", "start must be a local time like 2026-11-23 09:00 or an RFC 3339"},
      {"start", "2026-11-23 24:00", "start must be a local time"},
      {"start", "2026-11-31 09:00", "start must be a local time"},
      {"start", "23/11/2026 09:00", "start must be a local time"},
      {"start", "2026-11-22 23:30",
       "starts on 2026-11-22 (Europe/London), not on the rota's date "
       "2026-11-23"},
      {"start", "2026-11-23T00:30:00+01:00", "starts on 2026-11-22"},
      {"end", "", "end is required"},
      {"end", "10:00", "end must be a local time"},
      {"end", "2026-11-23 08:30", "end 2026-11-23 08:30 is not after start 2026-11-23 09:00"},
      {"end", "2026-11-23 09:00", "is not after start"},
      {"end", "2026-11-24 09:00:01", "longer than 24h"},
      {"type", "Personal Care", "type must be lower-case letters, digits and '_'"},
      {"type", "personal-care", "type must be"},
      {"type", "café", "type must be"},
      {"time_critical", "maybe", "time_critical must be true or false"},
      {"time_critical", "2", "time_critical must be true or false"},
      {"geofence_m", "0", "geofence_m must be a positive number of metres, got '0'"},
      {"geofence_m", "-50", "geofence_m must be a positive number"},
      {"geofence_m", "100m", "geofence_m must be a positive number"},
      {"geofence_m", "inf", "geofence_m must be a positive number"},
  }));
  const auto rota = parse_rota_csv(csv_with(field, value), london(), kWinterDay);
  INFO(field << " = '" << value << "'\n" << describe(rota));
  CHECK(rota.issues.size() == 1);
  CHECK(has_issue(rota, 2, field, message));
  CHECK(rota.visits.empty());
}

TEST_CASE("A visit of exactly 24 hours is accepted", "[import]") {
  const auto rota = parse_rota_csv(csv_with("end", "2026-11-24 09:00"), london(), kWinterDay);
  INFO(describe(rota));
  REQUIRE(rota.ok());
  CHECK(rota.visits[0].end - rota.visits[0].start == 24h);
}

TEST_CASE("time_critical accepts true/false, yes/no and 1/0 in any case", "[import]") {
  const auto [value, expected] = GENERATE(table<std::string, bool>({
      {"true", true},
      {"TRUE", true},
      {"Yes", true},
      {"1", true},
      {"false", false},
      {"False", false},
      {"NO", false},
      {"0", false},
      {"", false},
  }));
  const auto rota = parse_rota_csv(csv_with("time_critical", value), london(), kWinterDay);
  INFO("time_critical = '" << value << "'\n" << describe(rota));
  REQUIRE(rota.ok());
  CHECK(rota.visits[0].time_critical == expected);
}

TEST_CASE("A visit id used twice is reported on the later line naming the earlier one",
          "[import]") {
  const auto rota =
      parse_rota_csv(lines({"visit_id,client_id,client_name,lat,lon,carers,start,end",
                            "V1,CL1,Mrs A,51.5,-0.14,C1,2026-11-23 09:00,2026-11-23 10:00",
                            "V2,CL1,Mrs A,51.5,-0.14,C1,2026-11-23 11:00,2026-11-23 12:00",
                            "V1,CL1,Mrs A,51.5,-0.14,C1,2026-11-23 13:00,2026-11-23 14:00"}),
                     london(), kWinterDay);
  INFO(describe(rota));
  REQUIRE(rota.issues.size() == 1);
  CHECK(has_issue(rota, 4, "visit_id", "visit V1 is already on line 2"));
  CHECK(rota.visits.empty());
}

TEST_CASE("A field longer than the limit is refused", "[import]") {
  ImportLimits limits;
  limits.max_field = 20;
  const auto fits =
      parse_rota_csv(csv_with("notes", std::string(20, 'n')), london(), kWinterDay, limits);
  CHECK(fits.ok());
  const auto rota =
      parse_rota_csv(csv_with("notes", std::string(21, 'n')), london(), kWinterDay, limits);
  INFO(describe(rota));
  REQUIRE(rota.issues.size() == 1);
  CHECK(has_issue(rota, 2, "notes", "notes is 21 bytes long; the limit is 20"));
}

TEST_CASE("More rows than the limit give a single issue", "[import]") {
  ImportLimits limits;
  limits.max_rows = 2;
  const std::string header = "visit_id,client_id,client_name,lat,lon,carers,start,end";
  const std::string good = "V1,CL1,Mrs A,51.5,-0.14,C1,2026-11-23 09:00,2026-11-23 10:00";
  const std::string bad = "V2,CL1,Mrs A,99,-0.14,C1,2026-11-23 09:00,2026-11-23 10:00";

  const auto within =
      parse_rota_csv(lines({header, good, "V2" + good.substr(2)}), london(), kWinterDay, limits);
  INFO(describe(within));
  CHECK(within.ok());

  const auto rota =
      parse_rota_csv(lines({header, good, bad, bad, bad}), london(), kWinterDay, limits);
  INFO(describe(rota));
  REQUIRE(rota.issues.size() == 1);
  CHECK(has_issue(rota, 4, "", "more than 2 visit rows"));
  CHECK(rota.visits.empty());
}

// ---------------------------------------------------------------------------------------------
// CSV: daylight saving time changes

TEST_CASE("A local time that happens twice when the clocks go back is refused", "[import]") {
  const auto date = day("2026-10-25");
  const auto header = "visit_id,client_id,client_name,lat,lon,carers,start,end";

  SECTION("as a local time, with the zone's own explanation") {
    const auto rota = parse_rota_csv(
        lines({header, "V1,CL1,Mrs A,51.5,-0.14,C1,2026-10-25 01:30,2026-10-25 02:30"}), london(),
        date);
    INFO(describe(rota));
    REQUIRE(rota.issues.size() == 1);
    const auto expected = london().to_sys(*parse_local_time("2026-10-25 01:30"));
    REQUIRE_FALSE(expected.has_value());
    CHECK(rota.issues[0].line == 2);
    CHECK(rota.issues[0].field == "start");
    CHECK(rota.issues[0].message == expected.error().message);
    CHECK(rota.issues[0].message.find("happens twice") != std::string::npos);
  }
  SECTION("but accepted with an RFC 3339 offset saying which 01:30") {
    const auto rota = parse_rota_csv(
        lines({header, "V1,CL1,Mrs A,51.5,-0.14,C1,2026-10-25T01:30:00+01:00,2026-10-25 02:30",
               "V2,CL1,Mrs A,51.5,-0.14,C1,2026-10-25T01:30:00+00:00,2026-10-25 02:30"}),
        london(), date);
    INFO(describe(rota));
    REQUIRE(rota.ok());
    CHECK(rota.visits[0].start == at("2026-10-25T00:30:00Z"));
    CHECK(rota.visits[1].start == at("2026-10-25T01:30:00Z"));
    // 02:30 is after the change: GMT, unambiguous.
    CHECK(rota.visits[0].end == at("2026-10-25T02:30:00Z"));
    CHECK(rota.visits[0].end - rota.visits[0].start == 2h);
  }
}

TEST_CASE("A local time that never happens when the clocks go forward is refused", "[import]") {
  const auto rota =
      parse_rota_csv(lines({"visit_id,client_id,client_name,lat,lon,carers,start,end",
                            "V1,CL1,Mrs A,51.5,-0.14,C1,2026-03-29 00:30,2026-03-29 01:30"}),
                     london(), day("2026-03-29"));
  INFO(describe(rota));
  REQUIRE(rota.issues.size() == 1);
  const auto expected = london().to_sys(*parse_local_time("2026-03-29 01:30"));
  REQUIRE_FALSE(expected.has_value());
  CHECK(rota.issues[0].line == 2);
  CHECK(rota.issues[0].field == "end");
  CHECK(rota.issues[0].message == expected.error().message);
  CHECK(rota.issues[0].message.find("does not exist") != std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// CSV: all faults at once, and across rows

TEST_CASE("A file with several faults reports all of them and yields no visits", "[import]") {
  const auto rota =
      parse_rota_csv(lines({
                         "visit_id,client_id,client_name,lat,lon,carers,start,end,time_critical",
                         "V1,CL1,Mrs A,51.5,-0.14,C1,2026-11-23 09:00,2026-11-23 10:00,no",
                         "V2,,Mr B,95,-0.14,C1;C1,2026-11-23 11:00,2026-11-23 10:00,perhaps",
                         "V3,CL3,Mr C,51.5,-0.14,C3,2026-11-23 13:00",
                         "V4,CL4,Ms D,51.5,east,C4,tomorrow,2026-11-23 14:00,",
                         "V5,CL5,Mr E,51.5,-0.14,C5,2026-11-23 15:00,2026-11-23 16:00,1",
                     }),
                     london(), kWinterDay);
  INFO(describe(rota));
  CHECK(rota.visits.empty());
  CHECK(has_issue(rota, 3, "client_id", "required"));
  CHECK(has_issue(rota, 3, "lat", "out of range"));
  CHECK(has_issue(rota, 3, "carers", "listed more than once"));
  CHECK(has_issue(rota, 3, "end", "not after start"));
  CHECK(has_issue(rota, 3, "time_critical", "true or false"));
  CHECK(has_issue(rota, 4, "", "fields"));
  CHECK(has_issue(rota, 5, "lon", "must be a number"));
  CHECK(has_issue(rota, 5, "start", "must be a local time"));
  CHECK(rota.issues.size() == 8);
  // In file order, so a person can work down the list.
  CHECK(std::is_sorted(rota.issues.begin(), rota.issues.end(),
                       [](const auto& a, const auto& b) { return a.line < b.line; }));
}

TEST_CASE("A client on several rows must be the same client on each", "[import]") {
  const std::string header =
      "visit_id,client_id,client_name,lat,lon,carers,start,end,geofence_m,tag";
  const std::string first = "V1,CL1,Mrs A,51.5,-0.14,C1,2026-11-23 09:00,2026-11-23 10:00,100,T1";

  SECTION("identical rows are fine") {
    const auto rota = parse_rota_csv(
        lines(
            {header, first, "V2,CL1,Mrs A,51.5,-0.14,C2,2026-11-23 12:00,2026-11-23 13:00,100,T1"}),
        london(), kWinterDay);
    INFO(describe(rota));
    CHECK(rota.ok());
    CHECK(rota.visits.size() == 2);
  }
  SECTION("each difference is reported naming the other line") {
    const auto [field, row, message] = GENERATE(table<std::string, std::string, std::string>({
        {"client_name", "V2,CL1,Mrs B,51.5,-0.14,C2,2026-11-23 12:00,2026-11-23 13:00,100,T1",
         "client CL1 has client_name 'Mrs B' here but 'Mrs A' on line 2"},
        {"lat", "V2,CL1,Mrs A,51.6,-0.14,C2,2026-11-23 12:00,2026-11-23 13:00,100,T1",
         "client CL1 has lat 51.6 here but 51.5 on line 2"},
        {"lon", "V2,CL1,Mrs A,51.5,-0.15,C2,2026-11-23 12:00,2026-11-23 13:00,100,T1",
         "lon -0.15 here but -0.14 on line 2"},
        {"geofence_m", "V2,CL1,Mrs A,51.5,-0.14,C2,2026-11-23 12:00,2026-11-23 13:00,,T1",
         "geofence_m none here but 100 on line 2"},
        {"tag", "V2,CL1,Mrs A,51.5,-0.14,C2,2026-11-23 12:00,2026-11-23 13:00,100,T2",
         "tag 'T2' here but 'T1' on line 2"},
    }));
    const auto rota = parse_rota_csv(lines({header, first, row}), london(), kWinterDay);
    INFO(describe(rota));
    CHECK(rota.issues.size() == 1);
    CHECK(has_issue(rota, 3, field, message));
    CHECK(rota.visits.empty());
  }
}

// ---------------------------------------------------------------------------------------------
// JSON

TEST_CASE("A JSON rota gives the same visits as the same rota in CSV", "[import][json]") {
  const auto json = R"([
    {"visit_id":"V1","client_id":"CL1","client_name":"Mrs A","lat":51.5014,"lon":-0.1419,
     "carers":["C1"],"start":"2026-11-23 09:00","end":"2026-11-23T09:45:00Z",
     "type":"medication","time_critical":true,"geofence_m":75,"tag":"NFC-77",
     "notes":"Key safe, code 1234.\nMeds in the blue box"},
    {"visit_id":"V2","client_id":"CL2","client_name":"Mr B","lat":53,"lon":-2.24,
     "carers":" C2 ; C3 ","start":"2026-11-23 13:00","end":"2026-11-23 14:00",
     "time_critical":null,"geofence_m":null}
  ])";
  const auto csv = lines({
      kAllColumns,
      R"(V1,CL1,Mrs A,51.5014,-0.1419,C1,2026-11-23 09:00,2026-11-23T09:45:00Z,medication,true,75,NFC-77,"Key safe, code 1234.)",
      R"(Meds in the blue box")",
      "V2,CL2,Mr B,53,-2.24,C2;C3,2026-11-23 13:00,2026-11-23 14:00,,,,,",
  });
  const auto from_json = parse_rota_json(json, london(), kWinterDay);
  const auto from_csv = parse_rota_csv(csv, london(), kWinterDay);
  INFO(describe(from_json) << "\n" << describe(from_csv));
  REQUIRE(from_json.ok());
  REQUIRE(from_csv.ok());
  REQUIRE(from_json.visits.size() == 2);
  CHECK(from_json.visits[0].same_plan(from_csv.visits[0]));
  CHECK(from_json.visits[1].same_plan(from_csv.visits[1]));
  CHECK(from_json.visits[0].client.geofence_m == 75.0);
  CHECK(from_json.visits[0].time_critical);
  CHECK(from_json.visits[1].carers == std::vector<std::string>{"C2", "C3"});
  // A JSON row's line is its 1-based position in the array.
  CHECK(from_json.visits[0].line == 1);
  CHECK(from_json.visits[1].line == 2);
}

TEST_CASE("JSON carers may be an array of ids or a semicolon-separated string", "[import][json]") {
  const auto carers = GENERATE(as<std::string>{}, R"(["C1","C2"])", R"("C1;C2")", R"(" C1 ;C2")",
                               R"([" C1","C2 "])");
  const auto json = R"([{"visit_id":"V1","client_id":"CL1","client_name":"Mrs A","lat":51.5,)"
                    R"("lon":-0.14,"start":"2026-11-23 09:00","end":"2026-11-23 10:00",)"
                    R"("carers":)" +
                    carers + "}]";
  const auto rota = parse_rota_json(json, london(), kWinterDay);
  INFO(json << "\n" << describe(rota));
  REQUIRE(rota.ok());
  CHECK(rota.visits[0].carers == std::vector<std::string>{"C1", "C2"});
}

namespace {

// A JSON rota of a good row (line 1) and a second row (line 2) whose `key` is set to
// `value` (raw JSON), added if the good row does not have it.
std::string json_with(const std::string& key, const std::string& value) {
  const std::vector<std::pair<std::string, std::string>> good = {
      {"visit_id", R"("V2")"},
      {"client_id", R"("CL2")"},
      {"client_name", R"("Mr B")"},
      {"lat", "51.5"},
      {"lon", "-0.14"},
      {"carers", R"("C1")"},
      {"start", R"("2026-11-23 09:00")"},
      {"end", R"("2026-11-23 10:00")"},
  };
  std::string row;
  bool replaced = false;
  for (const auto& [name, json] : good) {
    if (!row.empty()) row += ',';
    row += "\"" + name + "\":" + (name == key ? value : json);
    replaced = replaced || name == key;
  }
  if (!replaced && !key.empty()) row += ",\"" + key + "\":" + value;
  return R"([{"visit_id":"V1","client_id":"CL1","client_name":"Mrs A","lat":51.5,"lon":-0.14,)"
         R"("carers":"C1","start":"2026-11-23 08:00","end":"2026-11-23 09:00"},)"
         "{" +
         row + "}]";
}

}  // namespace

TEST_CASE("The good rows used by the JSON field tests are accepted", "[import][json]") {
  const auto rota = parse_rota_json(json_with("", ""), london(), kWinterDay);
  INFO(describe(rota));
  CHECK(rota.ok());
  CHECK(rota.visits.size() == 2);
}

TEST_CASE("Each invalid JSON value is reported on its row and key", "[import][json]") {
  const auto [key, value, message] = GENERATE(table<std::string, std::string, std::string>({
      {"colour", R"("red")", "unknown key 'colour'; the keys are visit_id,client_id"},
      {"Visit_ID", R"("V9")", "unknown key 'Visit_ID'"},
      {"visit_id", "null", "visit_id is required"},
      {"visit_id", "7", "visit_id must be a string, not a number"},
      {"client_name", "true", "client_name must be a string, not a boolean"},
      {"notes", R"({"a":1})", "notes must be a string, not an object"},
      {"lat", R"("51.5")", "lat must be a JSON number, not a string (write 51.5 without quotes)"},
      {"lat", "90.5", "lat 90.5 is out of range"},
      {"lon", "[1]", "lon must be a JSON number, not an array"},
      {"geofence_m", R"("100")", "geofence_m must be a JSON number, not a string"},
      {"lon", R"("west")", "lon must be a JSON number, not a string: 'west'"},
      {"geofence_m", "0", "geofence_m must be a positive number"},
      {"carers", "5",
       "carers must be an array of carer ids or a ';'-separated string, not a number"},
      {"carers", R"(["C1",2])", "carers must hold strings; item 2 is a number"},
      {"carers", "[]", "carers is required: at least one carer id"},
      {"carers", R"(["C1",""])", "empty carer id"},
      {"carers", R"(["C1","C1"])", "carer C1 is listed more than once"},
      {"start", "20261123", "start must be a string, not a number"},
      {"start", R"("2026-11-22 23:00")", "starts on 2026-11-22"},
      {"end", R"("2026-11-23 08:00")", "is not after start"},
      {"type", R"("Lunch")", "type must be lower-case letters"},
      {"time_critical", "1", "time_critical must be true or false, not a number"},
      {"time_critical", R"("perhaps")", "time_critical must be true or false"},
  }));
  const auto rota = parse_rota_json(json_with(key, value), london(), kWinterDay);
  INFO(key << " = " << value << "\n" << describe(rota));
  CHECK(rota.issues.size() == 1);
  CHECK(has_issue(rota, 2, key, message));
  CHECK(rota.visits.empty());
}

TEST_CASE("JSON time_critical takes a boolean or the CSV's spellings", "[import][json]") {
  const auto [value, expected] = GENERATE(table<std::string, bool>({
      {"true", true},
      {"false", false},
      {R"("yes")", true},
      {R"("No")", false},
      {R"("1")", true},
      {"null", false},
  }));
  const auto rota = parse_rota_json(json_with("time_critical", value), london(), kWinterDay);
  INFO("time_critical: " << value << "\n" << describe(rota));
  REQUIRE(rota.ok());
  CHECK(rota.visits[1].time_critical == expected);
}

TEST_CASE("Every missing required JSON key is reported", "[import][json]") {
  const auto rota = parse_rota_json(R"([{"visit_id":"V1","carers":["C1"]}])", london(), kWinterDay);
  INFO(describe(rota));
  CHECK(rota.visits.empty());
  for (const auto key : {"client_id", "client_name", "lat", "lon", "start", "end"}) {
    CHECK(has_issue(rota, 1, key, std::string(key) + " is required"));
  }
  CHECK(rota.issues.size() == 6);
}

TEST_CASE("A local time at a DST change is refused in JSON too", "[import][json]") {
  const auto row = [](std::string_view start) {
    return R"([{"visit_id":"V1","client_id":"CL1","client_name":"Mrs A","lat":51.5,)"
           R"("lon":-0.14,"carers":"C1","end":"2026-10-25T03:00:00Z","start":")" +
           std::string(start) + "\"}]";
  };
  const auto ambiguous = parse_rota_json(row("2026-10-25 01:30"), london(), day("2026-10-25"));
  INFO(describe(ambiguous));
  CHECK(has_issue(ambiguous, 1, "start", "happens twice"));
  const auto exact = parse_rota_json(row("2026-10-25T01:30:00+01:00"), london(), day("2026-10-25"));
  INFO(describe(exact));
  REQUIRE(exact.ok());
  CHECK(exact.visits[0].start == at("2026-10-25T00:30:00Z"));
}

TEST_CASE("Malformed JSON is one issue on line 0 with the parser's message", "[import][json]") {
  const auto [text, message] = GENERATE(table<std::string, std::string>({
      {"[{\"visit_id\":\"V1\",\n \"lat\": ]", "malformed JSON at line 2, column 9: syntax error"},
      {"[{\"visit_id\":\"V1\"}", "malformed JSON at line 1, column 19: incomplete JSON"},
      {"", "incomplete JSON"},
      {"visit_id,client_id", "malformed JSON at line 1, column 1"},
  }));
  const auto rota = parse_rota_json(text, london(), kWinterDay);
  INFO(describe(rota));
  REQUIRE(rota.issues.size() == 1);
  CHECK(has_issue(rota, 0, "", message));
  CHECK(rota.visits.empty());
}

TEST_CASE("A JSON rota must be an array of objects", "[import][json]") {
  const auto object = parse_rota_json(R"({"visit_id":"V1"})", london(), kWinterDay);
  INFO(describe(object));
  REQUIRE(object.issues.size() == 1);
  CHECK(has_issue(object, 0, "", "must be a JSON array of visit rows, not an object"));

  const auto mixed = parse_rota_json(R"([[1], "V2"])", london(), kWinterDay);
  INFO(describe(mixed));
  CHECK(mixed.issues.size() == 2);
  CHECK(has_issue(mixed, 1, "", "each visit row must be a JSON object, not an array"));
  CHECK(has_issue(mixed, 2, "", "not a string"));

  const auto empty = parse_rota_json("\xEF\xBB\xBF [ ] ", london(), kWinterDay);
  CHECK(empty.ok());
  CHECK(empty.visits.empty());
}

TEST_CASE("JSON rows are held to the same limits and cross-row checks", "[import][json]") {
  SECTION("more rows than the limit") {
    ImportLimits limits;
    limits.max_rows = 1;
    const auto rota = parse_rota_json(json_with("", ""), london(), kWinterDay, limits);
    INFO(describe(rota));
    REQUIRE(rota.issues.size() == 1);
    CHECK(has_issue(rota, 2, "", "more than 1 visit rows"));
  }
  SECTION("a field longer than the limit") {
    ImportLimits limits;
    limits.max_field = 16;
    const auto rota =
        parse_rota_json(json_with("notes", R"("0123456789ABCDEFG")"), london(), kWinterDay, limits);
    INFO(describe(rota));
    REQUIRE(rota.issues.size() == 1);
    CHECK(has_issue(rota, 2, "notes", "notes is 17 bytes long; the limit is 16"));
  }
  SECTION("a visit id used twice") {
    const auto rota = parse_rota_json(json_with("visit_id", R"("V1")"), london(), kWinterDay);
    INFO(describe(rota));
    REQUIRE(rota.issues.size() == 1);
    CHECK(has_issue(rota, 2, "visit_id", "visit V1 is already on line 1"));
  }
  SECTION("a client that differs between rows") {
    const auto rota = parse_rota_json(json_with("client_id", R"("CL1")"), london(), kWinterDay);
    INFO(describe(rota));
    REQUIRE(rota.issues.size() == 1);
    CHECK(has_issue(rota, 2, "client_name", "'Mr B' here but 'Mrs A' on line 1"));
  }
}

// ---------------------------------------------------------------------------------------------
// The model's names (../shared/protocol.md spellings)

TEST_CASE("Visit states are spelled as the protocol spells them", "[model]") {
  CHECK(to_string(VisitState::scheduled) == "scheduled");
  CHECK(to_string(VisitState::late) == "late");
  CHECK(to_string(VisitState::missed) == "missed");
  CHECK(to_string(VisitState::in_progress) == "in_progress");
  CHECK(to_string(VisitState::overrunning) == "overrunning");
  CHECK(to_string(VisitState::completed) == "completed");
  CHECK(to_string(VisitState::no_checkout) == "no_checkout");
  CHECK(to_string(VisitState::cancelled) == "cancelled");
}

TEST_CASE("Flag names come in bit order", "[model]") {
  CHECK(flag_names(0).empty());
  CHECK(flag_names(kShort | kOutsideGeofence) ==
        std::vector<std::string_view>{"outside_geofence", "short"});
  CHECK(flag_names(0x7F) == std::vector<std::string_view>{
                                "outside_geofence", "short", "late_arrival", "device_time_skew",
                                "manual", "double_up_incomplete", "tag_mismatch"});
  CHECK(flag_names(kTagMismatch | kManual) ==
        std::vector<std::string_view>{"manual", "tag_mismatch"});
}

TEST_CASE("Check-in methods round-trip through their names", "[model]") {
  for (const auto method : {Method::gps, Method::nfc, Method::qr, Method::manual}) {
    CHECK(method_from_string(to_string(method)) == method);
  }
  CHECK(to_string(Method::qr) == "qr");
  CHECK_FALSE(method_from_string("GPS").has_value());
  CHECK_FALSE(method_from_string("").has_value());
}

TEST_CASE("Two plans are the same plan whatever line they came from", "[model]") {
  const auto rota = parse_rota_csv(csv_with("", ""), london(), kWinterDay);
  REQUIRE(rota.ok());
  const VisitPlan plan = rota.visits[0];
  auto moved = plan;
  moved.line = 40;
  CHECK(moved.same_plan(plan));

  auto other = plan;
  SECTION("a different carer") { other.carers = {"C9"}; }
  SECTION("a different end") { other.end += 1min; }
  SECTION("different notes") { other.notes += "!"; }
  SECTION("a different client location") { other.client.location.lon += 0.001; }
  SECTION("a different geofence") { other.client.geofence_m.reset(); }
  SECTION("time-critical") { other.time_critical = !other.time_critical; }
  CHECK_FALSE(other.same_plan(plan));
}

}  // namespace visitd::rota
