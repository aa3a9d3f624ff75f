#define CAF_SUITE notifications

#include <caf/test/dsl.hpp>

#include <string>

#include <nlohmann/json.hpp>

#include "schemas/messages.hpp"
#include "schemas/notifications.hpp"

using namespace switchyard;
using nlohmann::json;

// CAF 0.17's checks take no message: these print `what` when `cond` fails.
#define CHECK_OR_SAY(cond, what)                                               \
  do {                                                                         \
    if (!(cond))                                                               \
      CAF_TEST_PRINT_ERROR("failed for: " << what);                            \
    CAF_CHECK(cond);                                                           \
  } while (false)
#define REQUIRE_OR_SAY(cond, what)                                             \
  do {                                                                         \
    if (!(cond))                                                               \
      CAF_TEST_PRINT_ERROR("failed for: " << what);                            \
    CAF_REQUIRE(cond);                                                         \
  } while (false)

namespace {

const std::string org = "org_1";

/// The error of parsing `body` (JSON text) as a rule; empty when it parsed.
std::string rule_error(const std::string& body, const std::string& id = "") {
  std::string error;
  auto r = parse_rule(json::parse(body), org, id, error);
  if (r)
    return {};
  CAF_CHECK(!error.empty());
  return error;
}

/// Whether `error` starts with `prefix`; prints both when not.
bool starts(const std::string& error, const std::string& prefix) {
  if (error.rfind(prefix, 0) == 0)
    return true;
  CAF_TEST_PRINT_ERROR("error " << error << " does not start with " << prefix);
  return false;
}

notification_rule rule_of(const std::string& body, const std::string& id = "") {
  std::string error;
  auto r = parse_rule(json::parse(body), org, id, error);
  REQUIRE_OR_SAY(r.has_value(), "parse_rule: " << error);
  return *r;
}

/// A rule on every topic of the org with one recipient and `when`.
std::string with_when(const std::string& when) {
  return R"({"topic":"events.org_1.>","recipients":{"users":["u1"]},)"
         R"("title":"t","when":)"
    + when + "}";
}

/// A rule with `extra` fields added to a valid minimal body.
std::string with(const std::string& extra) {
  return R"({"topic":"events.org_1.>","recipients":{"users":["u1"]},)"
         R"("title":"t",)"
    + extra + "}";
}

event sample_event() {
  event ev;
  ev.id = "ev-1";
  ev.topic = "events.org_1.tasks.task.completed.t_42";
  ev.ts = 1700000000123;
  ev.source = "svc_tasks";
  ev.data = R"({"status":"done","n":5,"f":2.5,"tags":["a","b"],)"
            R"("nested":{"list":[{"x":1},{"x":"two"}]},"nil":null,)"
            R"("text":"hello world","assignee":"alice",)"
            R"("watchers":["bob","alice",7,"","carol"],"html":"<b>&'\"")"
            R"(,"big":18446744073709551615,"neg":-1})";
  ev.headers["trace"] = "abc";
  return ev;
}

const event ev = sample_event();
const json data = json::parse(ev.data);

/// Whether one condition holds for `ev`.
bool cond(const std::string& field, const std::string& op,
          const std::string& value) {
  auto r = rule_of(with_when(R"([{"field":")" + field + R"(","op":")" + op
                             + R"(","value":)" + value + "}]"));
  return matches(r, ev, data);
}

/// The value at `path` (CAF's checks hold on to references: no temporary).
json value_at(const json& d, std::string_view path) {
  auto v = event_field(ev, d, path);
  CAF_REQUIRE(v.has_value());
  return std::move(*v);
}

std::string tmpl(std::string_view t, bool html = false, size_t limit = 4096) {
  return render(t, ev, data, html, limit);
}

std::string contact_error(const std::string& body) {
  std::string error;
  auto c = parse_contact(json::parse(body), org, "alice", error);
  if (c)
    return {};
  CAF_CHECK(!error.empty());
  return error;
}

quiet_hours berlin(std::string start = "22:00", std::string end = "07:00") {
  return quiet_hours{std::move(start), std::move(end), "Europe/Berlin"};
}

bool hex32(const std::string& s) {
  return s.size() == 32 && s.find_first_not_of("0123456789abcdef") == s.npos;
}

} // namespace

// -- priorities, channels, ids ------------------------------------------------

CAF_TEST(priorities rank and channels are the three known) {
  CAF_CHECK_EQUAL(priority_rank("low"), 0);
  CAF_CHECK_EQUAL(priority_rank("normal"), 1);
  CAF_CHECK_EQUAL(priority_rank("high"), 2);
  CAF_CHECK_EQUAL(priority_rank("urgent"), 3);
  CAF_CHECK_EQUAL(priority_rank("URGENT"), -1);
  CAF_CHECK_EQUAL(priority_rank(""), -1);
  CAF_CHECK(valid_channel("websocket"));
  CAF_CHECK(valid_channel("push"));
  CAF_CHECK(valid_channel("email"));
  CAF_CHECK(!valid_channel("sms"));
  CAF_CHECK(valid_rule_id("r_1-A"));
  CAF_CHECK(valid_rule_id(std::string(64, 'a')));
  CAF_CHECK(!valid_rule_id(std::string(65, 'a')));
  CAF_CHECK(!valid_rule_id(""));
  CAF_CHECK(!valid_rule_id("a b"));
  CAF_CHECK(!valid_rule_id("a.b"));
}

// -- parsing rules ------------------------------------------------------------

CAF_TEST(a minimal rule gets the defaults) {
  auto r = rule_of(R"({"topic":"events.org_1.tasks.>",)"
                   R"("recipients":{"users":["u1"]},"title":"Done"})");
  CAF_CHECK_EQUAL(r.org, org);
  CAF_CHECK_EQUAL(r.topic, "events.org_1.tasks.>");
  CAF_CHECK_EQUAL(r.priority, "normal");
  CAF_CHECK_EQUAL(r.channels,
                  (std::vector<std::string>{"websocket", "push", "email"}));
  CAF_CHECK(r.enabled);
  CAF_CHECK(r.when.empty());
  CAF_CHECK_EQUAL(r.body, "");
  CAF_CHECK_EQUAL(r.created_at, 0);
  CAF_CHECK_EQUAL(r.id.size(), 16u);
  CAF_CHECK(r.id.find_first_not_of("0123456789abcdef") == std::string::npos);
  auto again = rule_of(R"({"topic":"events.org_1.tasks.>",)"
                       R"("recipients":{"users":["u1"]},"title":"Done"})");
  CAF_CHECK_NOT_EQUAL(r.id, again.id);
}

CAF_TEST(rule ids come from the body for POST and the path for PUT) {
  CAF_CHECK_EQUAL(rule_of(with(R"("id":"r_1")")).id, "r_1");
  CAF_CHECK_EQUAL(rule_of(with(R"("id":"r_1")"), "r_1").id, "r_1");
  CAF_CHECK_EQUAL(rule_of(with(R"("enabled":true)"), "r_2").id, "r_2");
  CAF_CHECK(starts(rule_error(with(R"("id":"r_1")"), "r_2"), "id: "));
  CAF_CHECK(starts(rule_error(with(R"("id":"a b")")), "id: "));
  CAF_CHECK(starts(rule_error(with(R"("id":7)")), "id: must be a string"));
  CAF_CHECK(starts(rule_error(with(R"("enabled":true)"), "bad id"), "id: "));
}

CAF_TEST(the fields to_json adds are accepted back) {
  CAF_CHECK(
    rule_error(with(R"("org":"org_1","created_at":1,"updated_at":2)")).empty());
  CAF_CHECK(starts(rule_error(with(R"("org":"org_2")")), "org: "));
  CAF_CHECK(starts(rule_error(with(R"("created_at":"x")")), "created_at: "));
  CAF_CHECK(starts(rule_error(with(R"("updated_at":1.5)")), "updated_at: "));
}

CAF_TEST(a body that is no object or has unknown fields is refused) {
  CAF_CHECK(starts(rule_error("[]"), "body: "));
  CAF_CHECK(starts(rule_error("null"), "body: "));
  CAF_CHECK_EQUAL(rule_error(with(R"("colour":"red")")),
                  "colour: unknown field");
}

CAF_TEST(the topic must be a subscription pattern inside the org) {
  auto base = std::string{R"({"recipients":{"users":["u1"]},"title":"t")"};
  CAF_CHECK_EQUAL(rule_error(base + "}"), "topic: missing");
  CAF_CHECK(starts(rule_error(base + R"(,"topic":5})"), "topic: must be"));
  CAF_CHECK(starts(rule_error(base + R"(,"topic":""})"), "topic: "));
  CAF_CHECK(starts(rule_error(base + R"(,"topic":"events..x"})"), "topic: "));
  CAF_CHECK(
    starts(rule_error(base + R"(,"topic":"events.org_1.>.x"})"), "topic: "));
  CAF_CHECK_EQUAL(rule_error(base + R"(,"topic":"events.org_2.>"})"),
                  "topic: not inside events.org_1.>");
  CAF_CHECK(starts(rule_error(base + R"(,"topic":">"})"), "topic: not inside"));
  CAF_CHECK(
    starts(rule_error(base + R"(,"topic":"events.*.tasks"})"), "topic: not"));
  CAF_CHECK(rule_error(base + R"(,"topic":"events.org_1.*.task.*"})").empty());
  CAF_CHECK(rule_error(base + R"(,"topic":"events.org_1.a.b.c.d"})").empty());
}

CAF_TEST(conditions name the failing entry and field) {
  CAF_CHECK(starts(rule_error(with_when("{}")), "when: must be an array"));
  CAF_CHECK(starts(rule_error(with_when(R"([{"field":"id","op":"exists",)"
                                        R"("value":true},5])")),
                   "when[1]: must be an object"));
  CAF_CHECK_EQUAL(rule_error(with_when(R"([{"field":"id","op":"exists",)"
                                       R"("value":true},{"field":"id",)"
                                       R"("op":"foo","value":1}])")),
                  R"(when[1].op: unknown operator "foo")");
  CAF_CHECK_EQUAL(rule_error(with_when(R"([{"op":"equals","value":1}])")),
                  "when[0].field: missing");
  CAF_CHECK_EQUAL(rule_error(with_when(R"([{"field":"id","value":1}])")),
                  "when[0].op: missing");
  CAF_CHECK_EQUAL(rule_error(with_when(R"([{"field":"id","op":"equals"}])")),
                  "when[0].value: missing");
  CAF_CHECK(starts(rule_error(with_when(R"([{"field":1,"op":"equals",)"
                                        R"("value":1}])")),
                   "when[0].field: must be a string"));
  CAF_CHECK(starts(rule_error(with_when(R"([{"field":"id","op":1,)"
                                        R"("value":1}])")),
                   "when[0].op: must be a string"));
  CAF_CHECK_EQUAL(rule_error(with_when(R"([{"field":"id","op":"equals",)"
                                       R"("value":1,"extra":2}])")),
                  "when[0].extra: unknown field");
  // Operand types.
  CAF_CHECK(starts(rule_error(with_when(R"([{"field":"id","op":"in",)"
                                        R"("value":"a"}])")),
                   "when[0].value: must be an array"));
  CAF_CHECK(starts(rule_error(with_when(R"([{"field":"id","op":"exists",)"
                                        R"("value":1}])")),
                   "when[0].value: must be a boolean"));
  for (auto op : {"gt", "gte", "lt", "lte"})
    CAF_CHECK(
      starts(rule_error(with_when(R"([{"field":"ts","op":")" + std::string{op}
                                  + R"(","value":"1"}])")),
             "when[0].value: must be a number"));
  CAF_CHECK(rule_error(with_when(R"([{"field":"id","op":"contains",)"
                                 R"("value":{"a":[1]}}])"))
              .empty());
  // Operand limits.
  std::string deep(17, '[');
  deep += std::string(17, ']');
  CAF_CHECK_EQUAL(rule_error(with_when(R"([{"field":"id","op":"equals",)"
                                       R"("value":)"
                                       + deep + "}]")),
                  "when[0].value: nesting deeper than 16");
  std::string fine(16, '[');
  fine += std::string(16, ']');
  CAF_CHECK(rule_error(with_when(R"([{"field":"id","op":"equals","value":)"
                                 + fine + "}]"))
              .empty());
  auto long_value = json(std::string(8200, 'x')).dump();
  CAF_CHECK(starts(rule_error(with_when(R"([{"field":"id","op":"equals",)"
                                        R"("value":)"
                                        + long_value + "}]")),
                   "when[0].value: longer than 8192 bytes"));
  // At most 32 conditions.
  std::string many = "[";
  for (int i = 0; i < 33; ++i)
    many += std::string{i == 0 ? "" : ","}
      + R"({"field":"id","op":"exists","value":true})";
  CAF_CHECK(starts(rule_error(with_when(many + "]")), "when: more than 32"));
}

CAF_TEST(field paths are checked when a rule is parsed) {
  auto path_error = [](const std::string& path) {
    return rule_error(with_when(R"([{"field":)" + json(path).dump()
                                + R"(,"op":"exists","value":true}])"));
  };
  for (auto ok : {"data", "data.a", "data.a.0.b", "topic", "id", "source", "ts",
                  "headers.trace", "headers.x-y"})
    CHECK_OR_SAY(path_error(ok).empty(), ok << ": " << path_error(ok));
  for (auto bad : {"", "nope", "data.", "data..a", ".data", "topic.x", "ts.0",
                   "headers", "headers.", "Data.a"})
    CHECK_OR_SAY(starts(path_error(bad), "when[0].field: "), bad);
  std::string steps = "data";
  for (int i = 0; i < 15; ++i)
    steps += ".a";
  CAF_CHECK(path_error(steps).empty()); // 16 steps
  CAF_CHECK(starts(path_error(steps + ".a"), "when[0].field: field path has"));
  auto longest = "data." + std::string(max_field_path_size - 5, 'a');
  CAF_CHECK(path_error(longest).empty());
  CAF_CHECK(starts(path_error(longest + "a"), "when[0].field: field path lo"));
  CAF_CHECK(valid_field_path("data.x"));
  std::string why;
  CAF_CHECK(!valid_field_path("bogus.x", &why));
  CAF_CHECK(why.find("unknown field") != std::string::npos);
}

CAF_TEST(recipients must name someone) {
  auto base = std::string{R"({"topic":"events.org_1.>","title":"t")"};
  CAF_CHECK(starts(rule_error(base + "}"), "recipients: missing"));
  CAF_CHECK(starts(rule_error(base + R"(,"recipients":[]})"),
                   "recipients: must be an object"));
  CAF_CHECK(starts(rule_error(base + R"(,"recipients":{}})"),
                   "recipients: names no one"));
  CAF_CHECK(
    starts(rule_error(base + R"(,"recipients":{"room_participants":false}})"),
           "recipients: names no one"));
  CAF_CHECK(starts(rule_error(base + R"(,"recipients":{"users":"u1"}})"),
                   "recipients.users: must be an array"));
  CAF_CHECK(starts(rule_error(base + R"(,"recipients":{"users":["u1",2]}})"),
                   "recipients.users[1]: must be a string"));
  CAF_CHECK(starts(rule_error(base + R"(,"recipients":{"users":[""]}})"),
                   "recipients.users[0]: not a user id"));
  CAF_CHECK(
    starts(rule_error(base + R"(,"recipients":{"users":["a\u0001b"]}})"),
           "recipients.users[0]: not a user id"));
  CAF_CHECK(starts(rule_error(base + R"(,"recipients":{"fields":["nope"]}})"),
                   "recipients.fields[0]: "));
  CAF_CHECK(starts(rule_error(base + R"(,"recipients":{"fields":[1]}})"),
                   "recipients.fields[0]: must be a string"));
  CAF_CHECK(
    starts(rule_error(base + R"(,"recipients":{"room_participants":"yes"}})"),
           "recipients.room_participants: must be a boolean"));
  CAF_CHECK_EQUAL(rule_error(base + R"(,"recipients":{"group":"g"}})"),
                  "recipients.group: unknown field");
  auto users = json::array();
  for (int i = 0; i < 200; ++i)
    users.push_back("u" + std::to_string(i));
  auto fields = json::array();
  for (int i = 0; i < 57; ++i)
    fields.push_back("data.f" + std::to_string(i));
  json j = json::parse(base + "}");
  j["recipients"] = {{"users", users}, {"fields", fields}};
  std::string error;
  CAF_CHECK(!parse_rule(j, org, "", error));
  CAF_CHECK(starts(error, "recipients: more than 256"));
  fields.erase(fields.begin());
  j["recipients"] = {{"users", users}, {"fields", fields}};
  CAF_CHECK(parse_rule(j, org, "", error));
  auto r = rule_of(base + R"(,"recipients":{"room_participants":true}})");
  CAF_CHECK(r.recipients.room_participants);
}

CAF_TEST(titles bodies priorities channels and enabled are checked) {
  auto base = std::string{R"({"topic":"events.org_1.>",)"
                          R"("recipients":{"users":["u1"]})"};
  CAF_CHECK_EQUAL(rule_error(base + "}"), "title: missing");
  CAF_CHECK(starts(rule_error(base + R"(,"title":1})"), "title: must be"));
  CAF_CHECK_EQUAL(rule_error(base + R"(,"title":""})"), "title: empty");
  auto t256 = json(std::string(256, 't')).dump();
  auto t257 = json(std::string(257, 't')).dump();
  CAF_CHECK(rule_error(base + R"(,"title":)" + t256 + "}").empty());
  CAF_CHECK_EQUAL(rule_error(base + R"(,"title":)" + t257 + "}"),
                  "title: longer than 256 bytes");
  CAF_CHECK(starts(rule_error(base + R"(,"title":"a {{ nope }}"})"),
                   R"(title: placeholder "{{nope}}": unknown field)"));
  CAF_CHECK(
    starts(rule_error(base + R"(,"title":"a {{}}"})"), "title: placeholder"));
  CAF_CHECK(rule_error(base + R"(,"title":"a {{ data.x }} {{ b"})").empty());
  auto b4096 = json(std::string(4096, 'b')).dump();
  auto b4097 = json(std::string(4097, 'b')).dump();
  CAF_CHECK(rule_error(with(R"("body":)" + b4096)).empty());
  CAF_CHECK_EQUAL(rule_error(with(R"("body":)" + b4097)),
                  "body: longer than 4096 bytes");
  CAF_CHECK(starts(rule_error(with(R"("body":false)")), "body: must be"));
  CAF_CHECK(
    starts(rule_error(with(R"("body":"{{data..x}}")")), "body: placeholder"));
  CAF_CHECK(starts(rule_error(with(R"("priority":"whenever")")),
                   R"(priority: unknown priority "whenever")"));
  CAF_CHECK(starts(rule_error(with(R"("priority":3)")), "priority: must be"));
  CAF_CHECK_EQUAL(rule_of(with(R"("priority":"urgent")")).priority, "urgent");
  CAF_CHECK(starts(rule_error(with(R"("channels":"push")")),
                   "channels: must be an array"));
  CAF_CHECK(starts(rule_error(with(R"("channels":["push","email","sms"])")),
                   R"(channels[2]: unknown channel "sms")"));
  CAF_CHECK(starts(rule_error(with(R"("channels":["push",1])")),
                   "channels[1]: must be a string"));
  CAF_CHECK(starts(rule_error(with(R"("channels":["push","push"])")),
                   R"(channels[1]: "push" twice)"));
  CAF_CHECK_EQUAL(rule_of(with(R"("channels":["email","push"])")).channels,
                  (std::vector<std::string>{"email", "push"}));
  CAF_CHECK(rule_of(with(R"("channels":[])")).channels.empty());
  CAF_CHECK(starts(rule_error(with(R"("enabled":"no")")), "enabled: must be"));
  CAF_CHECK(!rule_of(with(R"("enabled":false)")).enabled);
}

CAF_TEST(an error repeats a long string of the client only in part) {
  auto op = std::string(1000, 'x');
  auto error = rule_error(
    with_when(R"([{"field":"id","op":")" + op + R"(","value":1}])"));
  CAF_CHECK(starts(error, "when[0].op: unknown operator \"xxx"));
  CAF_CHECK_LESS(error.size(), 120u);
}

// -- JSON forms of rules ------------------------------------------------------

CAF_TEST(a rule survives to_json and rule_from_json) {
  auto r = rule_of(R"({"id":"r_1","topic":"events.org_1.tasks.*.completed.>",)"
                   R"("when":[{"field":"data.status","op":"equals",)"
                   R"("value":"done"},{"field":"data.n","op":"in",)"
                   R"("value":[1,2.5,"x",null,{"a":[true]}]},)"
                   R"({"field":"data.n","op":"gte","value":1.0}],)"
                   R"("recipients":{"users":["u1","u2"],)"
                   R"("fields":["data.assignee"],"room_participants":true},)"
                   R"("title":"Done: {{data.title}}","body":"by {{ source }}",)"
                   R"("priority":"high","channels":["websocket","email"],)"
                   R"("enabled":false})");
  r.created_at = 1700000000000;
  r.updated_at = 1700000000999;
  CAF_CHECK_EQUAL(r.when[0].value, R"("done")");
  CAF_CHECK_EQUAL(r.when[1].value, R"([1,2.5,"x",null,{"a":[true]}])");
  CAF_CHECK_EQUAL(r.when[2].value, "1.0");
  auto j = to_json(r);
  CAF_CHECK_EQUAL(j["org"], org);
  CAF_CHECK_EQUAL(j["when"][1]["value"][4]["a"][0], true);
  auto back = rule_from_json(j);
  CAF_REQUIRE(back.has_value());
  CAF_CHECK_EQUAL(back->id, r.id);
  CAF_CHECK_EQUAL(back->org, r.org);
  CAF_CHECK_EQUAL(back->topic, r.topic);
  CAF_REQUIRE_EQUAL(back->when.size(), r.when.size());
  for (size_t i = 0; i < r.when.size(); ++i) {
    CAF_CHECK_EQUAL(back->when[i].field, r.when[i].field);
    CAF_CHECK_EQUAL(back->when[i].op, r.when[i].op);
    CAF_CHECK_EQUAL(back->when[i].value, r.when[i].value);
  }
  CAF_CHECK_EQUAL(back->recipients.users, r.recipients.users);
  CAF_CHECK_EQUAL(back->recipients.fields, r.recipients.fields);
  CAF_CHECK_EQUAL(back->recipients.room_participants, true);
  CAF_CHECK_EQUAL(back->title, r.title);
  CAF_CHECK_EQUAL(back->body, r.body);
  CAF_CHECK_EQUAL(back->priority, "high");
  CAF_CHECK_EQUAL(back->channels, r.channels);
  CAF_CHECK_EQUAL(back->enabled, false);
  CAF_CHECK_EQUAL(back->created_at, 1700000000000);
  CAF_CHECK_EQUAL(back->updated_at, 1700000000999);
  CAF_CHECK_EQUAL(to_json(*back), j);
  // What GET shows may be sent back with PUT.
  std::string error;
  auto put = parse_rule(j, org, "r_1", error);
  REQUIRE_OR_SAY(put.has_value(), error);
  CAF_CHECK_EQUAL(put->when[1].value, r.when[1].value);
  CAF_CHECK_EQUAL(put->created_at, 0);
}

CAF_TEST(rule_from_json refuses missing fields and wrong types) {
  auto r
    = rule_of(with(R"("when":[{"field":"id","op":"exists","value":true}])"));
  auto j = to_json(r);
  CAF_CHECK(rule_from_json(j).has_value());
  for (auto key :
       {"id", "org", "topic", "when", "recipients", "title", "body", "priority",
        "channels", "enabled", "created_at", "updated_at"}) {
    auto missing = j;
    missing.erase(key);
    CHECK_OR_SAY(!rule_from_json(missing), key);
    auto wrong = j;
    wrong[key] = json::object({{"x", 1}});
    CHECK_OR_SAY(!rule_from_json(wrong), key);
  }
  for (auto key : {"users", "fields", "room_participants"}) {
    auto missing = j;
    missing["recipients"].erase(key);
    CHECK_OR_SAY(!rule_from_json(missing), key);
  }
  auto no_value = j;
  no_value["when"][0].erase("value");
  CAF_CHECK(!rule_from_json(no_value));
  auto deep = j;
  deep["when"][0]["value"]
    = json::parse(std::string(17, '[') + std::string(17, ']'));
  CAF_CHECK(!rule_from_json(deep));
  auto big = j;
  big["created_at"] = json::parse("18446744073709551615");
  CAF_CHECK(!rule_from_json(big));
  CAF_CHECK(!rule_from_json(json::array()));
}

// -- matching -----------------------------------------------------------------

CAF_TEST(event_field reads data paths and the envelope) {
  CAF_CHECK_EQUAL(value_at(data, "data.status"), "done");
  CAF_CHECK_EQUAL(value_at(data, "data.nested.list.1.x"), "two");
  CAF_CHECK_EQUAL(value_at(data, "data.tags.0"), "a");
  CAF_CHECK_EQUAL(value_at(data, "data"), data);
  CAF_CHECK(event_field(ev, data, "data.nil")->is_null());
  CAF_CHECK(!event_field(ev, data, "data.tags.2"));
  CAF_CHECK(!event_field(ev, data, "data.tags.x"));
  CAF_CHECK(!event_field(ev, data, "data.status.x"));
  CAF_CHECK(!event_field(ev, data, "data.missing"));
  CAF_CHECK(!event_field(ev, data, "data..status"));
  CAF_CHECK_EQUAL(value_at(data, "topic"), ev.topic);
  CAF_CHECK_EQUAL(value_at(data, "id"), "ev-1");
  CAF_CHECK_EQUAL(value_at(data, "source"), "svc_tasks");
  CAF_CHECK_EQUAL(value_at(data, "ts"), 1700000000123);
  CAF_CHECK_EQUAL(value_at(data, "headers.trace"), "abc");
  CAF_CHECK(!event_field(ev, data, "headers.none"));
  auto private_room = ev;
  private_room.headers["audience"] = R"(["alice","bob"])";
  CAF_CHECK(!event_field(private_room, data, "headers.audience"));
  CAF_CHECK_EQUAL(render("{{headers.audience}}", private_room, data, false, 99),
                  "");
  CAF_CHECK(!event_field(ev, data, "nope"));
  json discarded(json::value_t::discarded);
  CAF_CHECK(!event_field(ev, discarded, "data"));
  CAF_CHECK(!event_field(ev, discarded, "data.status"));
  // A decimal step on an object is a key.
  auto keyed = json::parse(R"({"0":"zero"})");
  CAF_CHECK_EQUAL(value_at(keyed, "data.0"), "zero");
}

CAF_TEST(equals and not_equals compare JSON values) {
  CAF_CHECK(cond("data.status", "equals", R"("done")"));
  CAF_CHECK(!cond("data.status", "equals", R"("open")"));
  CAF_CHECK(cond("data.n", "equals", "5"));
  CAF_CHECK(cond("data.n", "equals", "5.0"));
  CAF_CHECK(cond("data.f", "equals", "2.5"));
  CAF_CHECK(cond("data.tags", "equals", R"(["a","b"])"));
  CAF_CHECK(!cond("data.tags", "equals", R"(["b","a"])"));
  CAF_CHECK(
    cond("data.nested", "equals", R"({"list":[{"x":1.0},{"x":"two"}]})"));
  CAF_CHECK(cond("data.nil", "equals", "null"));
  CAF_CHECK(cond("ts", "equals", "1700000000123"));
  CAF_CHECK(cond("source", "equals", R"("svc_tasks")"));
  CAF_CHECK(cond("headers.trace", "equals", R"("abc")"));
  // Types differ: not equal.
  CAF_CHECK(!cond("data.n", "equals", R"("5")"));
  CAF_CHECK(cond("data.n", "not_equals", R"("5")"));
  CAF_CHECK(!cond("data.nil", "equals", "false"));
  CAF_CHECK(!cond("data.big", "equals", "-1"));
  CAF_CHECK(!cond("data.neg", "equals", "18446744073709551615"));
  CAF_CHECK(cond("data.big", "equals", "18446744073709551615"));
  CAF_CHECK(cond("data.status", "not_equals", R"("open")"));
  CAF_CHECK(!cond("data.status", "not_equals", R"("done")"));
  CAF_CHECK(!cond("data.n", "not_equals", "5.0"));
  // A missing field fails both.
  CAF_CHECK(!cond("data.missing", "equals", "null"));
  CAF_CHECK(!cond("data.missing", "not_equals", R"("x")"));
}

CAF_TEST(in exists and contains) {
  CAF_CHECK(cond("data.status", "in", R"(["open","done"])"));
  CAF_CHECK(!cond("data.status", "in", R"(["open"])"));
  CAF_CHECK(cond("data.n", "in", R"([1, 5.0])"));
  CAF_CHECK(!cond("data.n", "in", R"(["5"])"));
  CAF_CHECK(!cond("data.n", "in", "[]"));
  CAF_CHECK(!cond("data.missing", "in", "[null]"));
  CAF_CHECK(cond("data.status", "exists", "true"));
  CAF_CHECK(!cond("data.status", "exists", "false"));
  CAF_CHECK(cond("data.nil", "exists", "true"));
  CAF_CHECK(cond("data.missing", "exists", "false"));
  CAF_CHECK(!cond("data.missing", "exists", "true"));
  CAF_CHECK(cond("headers.none", "exists", "false"));
  CAF_CHECK(cond("data.text", "contains", R"("lo wo")"));
  CAF_CHECK(cond("data.text", "contains", R"("")"));
  CAF_CHECK(!cond("data.text", "contains", R"("bye")"));
  CAF_CHECK(!cond("data.text", "contains", "5"));
  CAF_CHECK(cond("data.tags", "contains", R"("b")"));
  CAF_CHECK(!cond("data.tags", "contains", R"("c")"));
  CAF_CHECK(cond("data.watchers", "contains", "7.0"));
  CAF_CHECK(cond("data.nested.list", "contains", R"({"x":1})"));
  CAF_CHECK(!cond("data.n", "contains", "5"));
  CAF_CHECK(!cond("data.nested", "contains", R"("list")"));
  CAF_CHECK(!cond("data.missing", "contains", R"("a")"));
}

CAF_TEST(comparisons need two numbers) {
  CAF_CHECK(cond("data.n", "gt", "4"));
  CAF_CHECK(!cond("data.n", "gt", "5"));
  CAF_CHECK(cond("data.n", "gte", "5"));
  CAF_CHECK(cond("data.n", "gte", "4.5"));
  CAF_CHECK(!cond("data.n", "gte", "5.5"));
  CAF_CHECK(cond("data.n", "lt", "5.01"));
  CAF_CHECK(!cond("data.n", "lt", "5"));
  CAF_CHECK(cond("data.n", "lte", "5"));
  CAF_CHECK(!cond("data.n", "lte", "-5"));
  CAF_CHECK(cond("data.f", "gt", "2"));
  CAF_CHECK(cond("data.neg", "lt", "0"));
  CAF_CHECK(cond("data.big", "gt", "-1"));
  CAF_CHECK(cond("data.neg", "lt", "18446744073709551615"));
  CAF_CHECK(cond("data.big", "gt", "9223372036854775807"));
  CAF_CHECK(cond("ts", "gte", "1700000000000"));
  CAF_CHECK(!cond("data.status", "gt", "0"));
  CAF_CHECK(!cond("data.status", "lt", "0"));
  CAF_CHECK(!cond("data.nil", "gte", "0"));
  CAF_CHECK(!cond("data.tags", "lte", "0"));
  CAF_CHECK(!cond("data.missing", "gt", "0"));
  CAF_CHECK(!cond("data.missing", "lt", "0"));
}

CAF_TEST(a rule matches when its topic matches and every condition holds) {
  auto r = rule_of(R"({"topic":"events.org_1.tasks.*.completed.>",)"
                   R"("recipients":{"users":["u1"]},"title":"t",)"
                   R"("when":[{"field":"data.status","op":"equals",)"
                   R"("value":"done"},{"field":"data.n","op":"gt",)"
                   R"("value":1}]})");
  CAF_CHECK(matches(r, ev, data));
  auto other = ev;
  other.topic = "events.org_1.tasks.task.created.t_42";
  CAF_CHECK(!matches(r, other, data));
  auto low = json::parse(R"({"status":"done","n":1})");
  CAF_CHECK(!matches(r, ev, low));
  auto none = rule_of(with(R"("enabled":false)"));
  CAF_CHECK(matches(none, ev, data));
  // Rules read from a store are matched safely whatever they hold.
  auto odd = none;
  odd.when.push_back({"data.n", "nonsense", "5"});
  CAF_CHECK(!matches(odd, ev, data));
  odd.when.back() = {"data.n", "equals", "not json"};
  CAF_CHECK(!matches(odd, ev, data));
  odd.when.back() = {"data.n", "exists", "1"};
  CAF_CHECK(!matches(odd, ev, data));
}

// -- templates ----------------------------------------------------------------

CAF_TEST(templates replace placeholders by field values) {
  CAF_CHECK_EQUAL(tmpl("Task {{data.status}} by {{ source }}"),
                  "Task done by svc_tasks");
  CAF_CHECK_EQUAL(tmpl("{{data.n}}/{{data.f}}/{{data.tags}}/{{data.nil}}"),
                  R"(5/2.5/["a","b"]/null)");
  CAF_CHECK_EQUAL(tmpl("[{{data.missing}}]"), "[]");
  CAF_CHECK_EQUAL(tmpl("[{{nope}}]"), "[]");
  CAF_CHECK_EQUAL(tmpl("{{ts}} {{id}} {{headers.trace}}"),
                  "1700000000123 ev-1 abc");
  CAF_CHECK_EQUAL(tmpl("a {{ data.status"), "a {{ data.status");
  CAF_CHECK_EQUAL(tmpl("{{data.status}} {{"), "done {{");
  CAF_CHECK_EQUAL(tmpl("}} {{data.status}}}"), "}} done}");
  CAF_CHECK_EQUAL(tmpl("{{\tdata.status  }}"), "done");
  CAF_CHECK_EQUAL(tmpl(""), "");
  CAF_CHECK_EQUAL(tmpl("{{data.html}}"), "<b>&'\"");
}

CAF_TEST(html templates escape values and their own text) {
  CAF_CHECK_EQUAL(tmpl("<p>{{data.html}}</p>", true),
                  "&lt;p&gt;&lt;b&gt;&amp;&#39;&quot;&lt;/p&gt;");
  CAF_CHECK_EQUAL(tmpl("{{data.tags}}", true), "[&quot;a&quot;,&quot;b&quot;]");
  CAF_CHECK_EQUAL(tmpl("Tom & Jerry's", true), "Tom &amp; Jerry&#39;s");
  CAF_CHECK_EQUAL(tmpl("Tom & Jerry's", false), "Tom & Jerry's");
}

CAF_TEST(rendered text is cut on a UTF - 8 boundary) {
  // "é" is two bytes, "€" three, "𝄞" four.
  CAF_CHECK_EQUAL(tmpl("ééé", false, 3), "é");
  CAF_CHECK_EQUAL(tmpl("ééé", false, 4), "éé");
  CAF_CHECK_EQUAL(tmpl("a€", false, 3), "a");
  CAF_CHECK_EQUAL(tmpl("a€", false, 4), "a€");
  CAF_CHECK_EQUAL(tmpl("𝄞𝄞", false, 7), "𝄞");
  CAF_CHECK_EQUAL(tmpl("abc", false, 0), "");
  CAF_CHECK_EQUAL(tmpl("abcdef", false, 4), "abcd");
  CAF_CHECK_EQUAL(tmpl("x{{data.text}}", false, 6), "xhello");
  CAF_CHECK_EQUAL(tmpl("{{data.status}}", false, std::string::npos), "done");
  // An entity is never cut in two.
  CAF_CHECK_EQUAL(tmpl("ab<c", true, 4), "ab");
  CAF_CHECK_EQUAL(tmpl("ab<c", true, 6), "ab&lt;");
  CAF_CHECK_EQUAL(tmpl("ab\"c", true, 7), "ab");
  CAF_CHECK_EQUAL(tmpl("ab\"c", true, 8), "ab&quot;");
  // Invalid input is cut too, never read past its end.
  CAF_CHECK_EQUAL(tmpl("\x80\x80\x80\x80\x80", false, 2), "\x80\x80");
  CAF_CHECK_EQUAL(tmpl("a\xe2\x82", false, 2), "a");
  auto long_title = tmpl(std::string(300, 'x') + "{{data.text}}", false,
                         max_title_size);
  CAF_CHECK_EQUAL(long_title.size(), max_title_size);
}

// -- recipients ---------------------------------------------------------------

CAF_TEST(direct recipients are users then field values each once) {
  auto r = rule_of(R"({"topic":"events.org_1.>","title":"t",)"
                   R"("recipients":{"users":["carol","alice"],)"
                   R"("fields":["data.assignee","data.watchers","data.n",)"
                   R"("data.missing","data.nested","source"]}})");
  CAF_CHECK_EQUAL(
    direct_recipients(r, ev, data),
    (std::vector<std::string>{"carol", "alice", "bob", "svc_tasks"}));
  auto bad = json::parse(R"({"assignee":"a\u0007b","watchers":["",)"
                         R"("ok",["nested"],"ok"]})");
  r.recipients.users.clear();
  CAF_CHECK_EQUAL(direct_recipients(r, ev, bad),
                  (std::vector<std::string>{"ok", "svc_tasks"}));
  auto many = json::object();
  many["watchers"] = json::array();
  for (int i = 0; i < 1500; ++i)
    many["watchers"].push_back("u" + std::to_string(i));
  auto out = direct_recipients(r, ev, many);
  CAF_CHECK_EQUAL(out.size(), max_direct_recipients);
  CAF_CHECK_EQUAL(out.front(), "u0");
  auto longest = json::object({{"assignee", std::string(128, 'a')}});
  auto too_long = json::object({{"assignee", std::string(129, 'a')}});
  r.recipients.fields = {"data.assignee"};
  CAF_CHECK_EQUAL(direct_recipients(r, ev, longest).size(), 1u);
  CAF_CHECK(direct_recipients(r, ev, too_long).empty());
}

// -- notification ids ---------------------------------------------------------

CAF_TEST(notification ids are stable and keep their inputs apart) {
  auto id = notification_id("r1", "ev-1", "alice");
  CAF_CHECK(hex32(id));
  // SHA-256 over 8-byte big-endian lengths and bytes, first 16 bytes.
  CAF_CHECK_EQUAL(id, "e5dfff7c5dea2f3c58d8e3db3e62cc7b");
  CAF_CHECK_EQUAL(notification_id("r1", "ev-1", "alice"), id);
  CAF_CHECK_EQUAL(notification_id("ab", "c", "u"),
                  "cbc366cbcacfb65a139fbd452f3a5e2c");
  CAF_CHECK_EQUAL(notification_id("a", "bc", "u"),
                  "4c0f0ecb2bd9a8a15d26fcea1af67ee2");
  CAF_CHECK_NOT_EQUAL(notification_id("r1", "ev-1", "bob"), id);
  CAF_CHECK_NOT_EQUAL(notification_id("r1", "ev-2", "alice"), id);
  CAF_CHECK_NOT_EQUAL(notification_id("", "", ""),
                      notification_id("", "", " "));
  CAF_CHECK(hex32(notification_id("", "", "")));
}

// -- contacts -----------------------------------------------------------------

CAF_TEST(contacts parse with every field optional) {
  std::string error;
  auto empty = parse_contact(json::object(), org, "alice", error);
  CAF_REQUIRE(empty.has_value());
  CAF_CHECK_EQUAL(empty->org, org);
  CAF_CHECK_EQUAL(empty->user, "alice");
  CAF_CHECK(empty->email.empty());
  CAF_CHECK(empty->devices.empty());
  CAF_CHECK(empty->quiet.start.empty());
  auto full = parse_contact(
    json::parse(R"({"email":"a@b.example","devices":[{"platform":"fcm",)"
                R"("token":"tok1"},{"platform":"apns","token":"tok2"},)"
                R"({"platform":"webpush","token":"{\"endpoint\":\"x\"}"}],)"
                R"("quiet_hours":{"start":"22:00","end":"07:00",)"
                R"("tz":"Europe/Berlin"}})"),
    org, "alice", error);
  REQUIRE_OR_SAY(full.has_value(), error);
  CAF_CHECK_EQUAL(full->email, "a@b.example");
  CAF_REQUIRE_EQUAL(full->devices.size(), 3u);
  CAF_CHECK_EQUAL(full->devices[1].platform, "apns");
  CAF_CHECK_EQUAL(full->devices[2].token, R"({"endpoint":"x"})");
  CAF_CHECK_EQUAL(full->quiet.start, "22:00");
  CAF_CHECK_EQUAL(full->quiet.end, "07:00");
  CAF_CHECK_EQUAL(full->quiet.tz, "Europe/Berlin");
  auto no_quiet = parse_contact(json::parse(R"({"quiet_hours":null})"), org,
                                "alice", error);
  CAF_REQUIRE(no_quiet.has_value());
  CAF_CHECK(no_quiet->quiet.start.empty());
  // A contact shown by GET may be sent back.
  full->updated_at = 5;
  auto again = parse_contact(to_json(*full), org, "alice", error);
  REQUIRE_OR_SAY(again.has_value(), error);
  CAF_CHECK_EQUAL(again->devices.size(), 3u);
}

CAF_TEST(contact errors name the field) {
  CAF_CHECK(starts(contact_error("[]"), "body: "));
  CAF_CHECK_EQUAL(contact_error(R"({"phone":"1"})"), "phone: unknown field");
  CAF_CHECK(starts(contact_error(R"({"email":1})"), "email: must be"));
  for (auto bad : {"ab.example", "@b.example", "a@", "a@b@c", "a b@c",
                   "a@b\r\nBcc: x@y", "<a@b>", "a,b@c", "a@b;c", "\"a\"@b"})
    CHECK_OR_SAY(starts(contact_error(R"({"email":)" + json(bad).dump() + "}"),
                        "email: not an email address"),
                 bad);
  CAF_CHECK(contact_error(R"({"email":""})").empty());
  CAF_CHECK(contact_error(R"({"email":null})").empty());
  CAF_CHECK(starts(
    contact_error(R"({"email":")" + std::string(250, 'a') + R"(@b.ex"})"),
    "email: "));
  CAF_CHECK(starts(contact_error(R"({"devices":{}})"), "devices: must be"));
  std::string seventeen = "[";
  for (int i = 0; i < 17; ++i)
    seventeen += std::string{i ? "," : ""}
      + R"({"platform":"fcm","token":"t"})";
  CAF_CHECK(starts(contact_error(R"({"devices":)" + seventeen + "]}"),
                   "devices: more than 16"));
  CAF_CHECK(starts(contact_error(R"({"devices":[1]})"),
                   "devices[0]: must be an object"));
  CAF_CHECK(starts(contact_error(R"({"devices":[{"platform":"fcm",)"
                                 R"("token":"t"},{"platform":"sms",)"
                                 R"("token":"t"}]})"),
                   R"(devices[1].platform: unknown platform "sms")"));
  CAF_CHECK_EQUAL(contact_error(R"({"devices":[{"token":"t"}]})"),
                  "devices[0].platform: missing");
  CAF_CHECK_EQUAL(contact_error(R"({"devices":[{"platform":"fcm"}]})"),
                  "devices[0].token: missing");
  CAF_CHECK_EQUAL(contact_error(R"({"devices":[{"platform":"fcm",)"
                                R"("token":""}]})"),
                  "devices[0].token: empty");
  CAF_CHECK(starts(contact_error(R"({"devices":[{"platform":"fcm","token":")"
                                 + std::string(2049, 't') + R"("}]})"),
                   "devices[0].token: longer than 2048"));
  CAF_CHECK(contact_error(R"({"devices":[{"platform":"fcm","token":")"
                          + std::string(2048, 't') + R"("}]})")
              .empty());
  CAF_CHECK(starts(contact_error(R"({"devices":[{"platform":"fcm",)"
                                 R"("token":"a\nb"}]})"),
                   "devices[0].token: "));
  CAF_CHECK_EQUAL(contact_error(R"({"devices":[{"platform":"fcm",)"
                                R"("token":"t","name":"x"}]})"),
                  "devices[0].name: unknown field");
  CAF_CHECK(starts(contact_error(R"({"quiet_hours":"22-07"})"),
                   "quiet_hours: must be"));
  auto quiet = [](const std::string& start, const std::string& end,
                  const std::string& tz) {
    return contact_error(R"({"quiet_hours":{"start":")" + start + R"(","end":")"
                         + end + R"(","tz":")" + tz + R"("}})");
  };
  CAF_CHECK(quiet("00:00", "23:59", "UTC").empty());
  CAF_CHECK(quiet("07:00", "07:00", "America/New_York").empty());
  for (auto bad : {"24:00", "7:00", "07:60", "0700", "07:00:00", "aa:bb",
                   "-1:00", " 7:00"})
    CHECK_OR_SAY(starts(quiet(bad, "07:00", "UTC"), "quiet_hours.start: "),
                 bad);
  CAF_CHECK(starts(quiet("22:00", "25:00", "UTC"), "quiet_hours.end: "));
  CAF_CHECK_EQUAL(quiet("22:00", "07:00", "Mars/Olympus"),
                  R"(quiet_hours.tz: unknown time zone "Mars/Olympus")");
  for (auto bad : {"", "localtime", "zone.tab", "../../etc/passwd",
                   "Europe/../Europe/Berlin", "right/UTC"})
    CHECK_OR_SAY(starts(quiet("22:00", "07:00", bad), "quiet_hours.tz: "), bad);
  CAF_CHECK_EQUAL(contact_error(R"({"quiet_hours":{"start":"22:00",)"
                                R"("end":"07:00"}})"),
                  "quiet_hours.tz: missing");
  CAF_CHECK_EQUAL(contact_error(R"({"quiet_hours":{"start":"22:00",)"
                                R"("end":"07:00","tz":"UTC","x":1}})"),
                  "quiet_hours.x: unknown field");
  CAF_CHECK(starts(contact_error(R"({"org":"org_2"})"), "org: "));
  CAF_CHECK(starts(contact_error(R"({"user":"bob"})"), "user: "));
}

CAF_TEST(contacts survive to_json and contact_from_json) {
  contact c{"org_1",
            "alice",
            "a@b.example",
            {{"fcm", "t1"}, {"webpush", "t2"}},
            {"22:00", "07:00", "Europe/Berlin"},
            1700000000000};
  auto j = to_json(c);
  CAF_CHECK_EQUAL(j["quiet_hours"]["tz"], "Europe/Berlin");
  auto back = contact_from_json(j);
  CAF_REQUIRE(back.has_value());
  CAF_CHECK_EQUAL(back->org, c.org);
  CAF_CHECK_EQUAL(back->user, c.user);
  CAF_CHECK_EQUAL(back->email, c.email);
  CAF_REQUIRE_EQUAL(back->devices.size(), 2u);
  CAF_CHECK_EQUAL(back->devices[1].platform, "webpush");
  CAF_CHECK_EQUAL(back->devices[1].token, "t2");
  CAF_CHECK_EQUAL(back->quiet.start, "22:00");
  CAF_CHECK_EQUAL(back->quiet.end, "07:00");
  CAF_CHECK_EQUAL(back->quiet.tz, "Europe/Berlin");
  CAF_CHECK_EQUAL(back->updated_at, c.updated_at);
  CAF_CHECK_EQUAL(to_json(*back), j);
  c.quiet = {};
  j = to_json(c);
  CAF_CHECK(j["quiet_hours"].is_null());
  back = contact_from_json(j);
  CAF_REQUIRE(back.has_value());
  CAF_CHECK(back->quiet.start.empty());
  for (auto key :
       {"org", "user", "email", "devices", "quiet_hours", "updated_at"}) {
    auto missing = j;
    missing.erase(key);
    CHECK_OR_SAY(!contact_from_json(missing), key);
  }
  j["devices"][0].erase("token");
  CAF_CHECK(!contact_from_json(j));
}

// -- quiet hours --------------------------------------------------------------

CAF_TEST(quiet hours over midnight end at the next local end) {
  // Winter, CET (UTC+1): 2024-01-15 23:30 local is 22:30Z; 07:00 CET on the
  // next day is 06:00Z.
  CAF_CHECK_EQUAL(quiet_until(berlin(), 1705357800000), 1705384800000);
  // 05:00 CET (04:00Z) the next morning: the same end.
  CAF_CHECK_EQUAL(quiet_until(berlin(), 1705377600000), 1705384800000);
  CAF_CHECK_EQUAL(quiet_until(berlin(), 1705384799999), 1705384800000);
  // Quiet from the start on, not any more at the end.
  CAF_CHECK_EQUAL(quiet_until(berlin(), 1705352400000), 1705384800000);
  CAF_CHECK_EQUAL(quiet_until(berlin(), 1705352400000 - 1), 0);
  CAF_CHECK_EQUAL(quiet_until(berlin(), 1705384800000), 0);
  // Summer, CEST (UTC+2): 2024-07-15 23:30 local is 21:30Z; 07:00 CEST is
  // 05:00Z.
  CAF_CHECK_EQUAL(quiet_until(berlin(), 1721079000000), 1721106000000);
  // Noon: not quiet.
  CAF_CHECK_EQUAL(quiet_until(berlin(), 1721044800000), 0);
}

CAF_TEST(quiet hours within a day) {
  auto office = berlin("09:00", "17:00");
  // 10:00 CEST (08:00Z) to 17:00 CEST (15:00Z).
  CAF_CHECK_EQUAL(quiet_until(office, 1721030400000), 1721055600000);
  CAF_CHECK_EQUAL(quiet_until(office, 1721055600000), 0); // 17:00
  CAF_CHECK_EQUAL(quiet_until(office, 1721059200000), 0); // 18:00
  CAF_CHECK_EQUAL(quiet_until(office, 1721026740000), 0); // 08:59
  // start == end is never quiet.
  for (auto t : {1721030400000, 1721044800000, 1705357800000})
    CAF_CHECK_EQUAL(quiet_until(berlin("09:00", "09:00"), t), 0);
  // UTC, the plainest zone: 2024-07-15 12:00Z in 11:00-13:00 ends 13:00Z.
  CAF_CHECK_EQUAL(quiet_until({"11:00", "13:00", "UTC"}, 1721044800000),
                  1721044800000 + 3600000);
  CAF_CHECK_EQUAL(quiet_until({"11:00", "13:00", "America/New_York"},
                              1721044800000),
                  0); // 08:00 EDT
  CAF_CHECK_EQUAL(quiet_until({"07:00", "09:00", "America/New_York"},
                              1721044800000),
                  1721044800000 + 3600000); // until 09:00 EDT = 13:00Z
}

CAF_TEST(quiet hours follow daylight saving time) {
  // Spring forward, 2024-03-31 02:00 CET -> 03:00 CEST. From 23:00 CET
  // (22:00Z) the night ends at 07:00 CEST = 05:00Z.
  CAF_CHECK_EQUAL(quiet_until(berlin(), 1711836000000), 1711861200000);
  // An end that does not exist (02:30): the instant of the skip, 01:00Z.
  CAF_CHECK_EQUAL(quiet_until(berlin("22:00", "02:30"), 1711845000000),
                  1711846800000);
  // Fall back, 2024-10-27 03:00 CEST -> 02:00 CET. From 23:00 CEST (21:00Z)
  // the night ends at 07:00 CET = 06:00Z.
  CAF_CHECK_EQUAL(quiet_until(berlin(), 1729976400000), 1730008800000);
  // An end that comes twice (02:30): the first while in the first pass
  // (02:15 CEST = 00:15Z -> 02:30 CEST = 00:30Z), ...
  auto late = berlin("22:00", "02:30");
  CAF_CHECK_EQUAL(quiet_until(late, 1729988100000), 1729989000000);
  // ... not quiet between the two (02:40 CEST), ...
  CAF_CHECK_EQUAL(quiet_until(late, 1729989600000), 0);
  // ... and the second in the second pass (02:15 CET = 01:15Z -> 01:30Z).
  CAF_CHECK_EQUAL(quiet_until(late, 1729991700000), 1729992600000);
}

CAF_TEST(no quiet hours or unknown zones are never quiet) {
  CAF_CHECK_EQUAL(quiet_until({}, 1705357800000), 0);
  CAF_CHECK_EQUAL(
    quiet_until({"22:00", "07:00", "Mars/Olympus"}, 1705357800000), 0);
  CAF_CHECK_EQUAL(quiet_until({"22:00", "07:00", ""}, 1705357800000), 0);
  CAF_CHECK_EQUAL(quiet_until({"25:00", "07:00", "UTC"}, 1705357800000), 0);
  CAF_CHECK_EQUAL(quiet_until({"00:00", "23:59", "UTC"}, -1), 0);
  CAF_CHECK_EQUAL(quiet_until({"00:00", "23:59", "UTC"},
                              std::numeric_limits<int64_t>::max()),
                  0);
  CAF_CHECK_EQUAL(quiet_until({"00:00", "23:59", "UTC"}, 0), 86340000);
}

// -- notifications ------------------------------------------------------------

namespace {

notification sample_notification() {
  notification x;
  x.id = notification_id("r1", "ev-1", "alice");
  x.org = "org_1";
  x.user = "alice";
  x.rule_id = "r1";
  x.event_id = "ev-1";
  x.topic = ev.topic;
  x.title = "Done \"t\"";
  x.body = "by <svc>";
  x.html_body = "by &lt;svc&gt;";
  x.priority = "high";
  x.data = R"({"a":[1,{"b":null}]})";
  x.ts = 1700000000456;
  x.channels = {"websocket", "email"};
  x.websocket = {"waiting", 1, 0, 1700000000500, ""};
  x.push = {"skipped", 0, 0, 1700000000500, "not allowed"};
  x.email = {"failed", 3, 1700000009000, 1700000001000, "550 no such user"};
  x.acked = false;
  x.read = true;
  x.read_at = 1700000002000;
  return x;
}

} // namespace

CAF_TEST(notifications survive to_json and notification_from_json) {
  auto x = sample_notification();
  auto j = to_json(x);
  CAF_CHECK_EQUAL(j["data"]["a"][1]["b"], nullptr);
  CAF_CHECK_EQUAL(j["email"]["error"], "550 no such user");
  CAF_CHECK_EQUAL(j["email"]["next_at"], 1700000009000);
  auto back = notification_from_json(j);
  CAF_REQUIRE(back.has_value());
  CAF_CHECK_EQUAL(back->id, x.id);
  CAF_CHECK_EQUAL(back->org, x.org);
  CAF_CHECK_EQUAL(back->user, x.user);
  CAF_CHECK_EQUAL(back->rule_id, x.rule_id);
  CAF_CHECK_EQUAL(back->event_id, x.event_id);
  CAF_CHECK_EQUAL(back->topic, x.topic);
  CAF_CHECK_EQUAL(back->title, x.title);
  CAF_CHECK_EQUAL(back->body, x.body);
  CAF_CHECK_EQUAL(back->html_body, x.html_body);
  CAF_CHECK_EQUAL(back->priority, x.priority);
  CAF_CHECK_EQUAL(back->data, x.data);
  CAF_CHECK_EQUAL(back->ts, x.ts);
  CAF_CHECK_EQUAL(back->channels, x.channels);
  for (auto [a, b] :
       {std::pair{&back->websocket, &x.websocket},
        std::pair{&back->push, &x.push}, std::pair{&back->email, &x.email}}) {
    CAF_CHECK_EQUAL(a->state, b->state);
    CAF_CHECK_EQUAL(a->attempts, b->attempts);
    CAF_CHECK_EQUAL(a->next_at, b->next_at);
    CAF_CHECK_EQUAL(a->at, b->at);
    CAF_CHECK_EQUAL(a->error, b->error);
  }
  CAF_CHECK_EQUAL(back->acked, x.acked);
  CAF_CHECK_EQUAL(back->read, x.read);
  CAF_CHECK_EQUAL(back->read_at, x.read_at);
  CAF_CHECK_EQUAL(to_json(*back), j);
  for (auto key : {"id", "user", "data", "channels", "websocket", "push",
                   "email", "acked", "read_at", "ts"}) {
    auto missing = j;
    missing.erase(key);
    CHECK_OR_SAY(!notification_from_json(missing), key);
  }
  auto wrong = j;
  wrong["push"]["attempts"] = 4294967296;
  CAF_CHECK(!notification_from_json(wrong));
  // Data that is no JSON is shown as null.
  x.data = "{not json";
  CAF_CHECK(to_json(x)["data"].is_null());
  x.data.clear();
  CAF_CHECK(to_json(x)["data"].is_null());
}

CAF_TEST(the notification frame has the fields a client reads) {
  auto x = sample_notification();
  x.data = "{ \"a\" : [1, {\"b\":null}] }";
  CAF_CHECK_EQUAL(notification_frame(x),
                  R"({"type":"notification","id":")" + x.id
                    + R"(","title":"Done \"t\"","body":"by <svc>",)"
                      R"("priority":"high","data":{"a":[1,{"b":null}]},)"
                      R"("ts":1700000000456})");
  x.data = "nope";
  auto frame = json::parse(notification_frame(x));
  CAF_CHECK(frame["data"].is_null());
  CAF_CHECK_EQUAL(frame.size(), 7u);
}

CAF_TEST(a notification is settled when acked read or every channel is done) {
  notification x;
  x.channels = {"websocket", "push"};
  CAF_CHECK(allows(x, "websocket"));
  CAF_CHECK(allows(x, "push"));
  CAF_CHECK(!allows(x, "email"));
  CAF_CHECK(!settled(x));
  x.websocket.state = "waiting";
  x.push.state = "sent";
  CAF_CHECK(!settled(x));
  x.websocket.state = "failed";
  CAF_CHECK(settled(x)); // email is not allowed: nothing to do there
  x.push.state = "pending";
  CAF_CHECK(!settled(x));
  x.push.state = "skipped";
  CAF_CHECK(settled(x));
  x.push.state = "pending";
  x.acked = true;
  CAF_CHECK(settled(x));
  x.acked = false;
  x.read = true;
  CAF_CHECK(settled(x));
  notification all;
  all.channels = {"websocket", "push", "email"};
  all.websocket.state = "sent";
  all.push.state = "sent";
  CAF_CHECK(!settled(all));
  all.email.state = "sent";
  CAF_CHECK(settled(all));
}
