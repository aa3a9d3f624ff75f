#define CAF_SUITE client_frame

#include <caf/test/dsl.hpp>

#include <string>

#include <nlohmann/json.hpp>

#include "schemas/client_frame.hpp"

using namespace switchyard;

namespace {

constexpr size_t limit = 64;

client_frame decode(std::string_view text) {
  return decode_client_frame(text, limit);
}

/// Whether `f` is refused as a bad request with `message`.
bool refused(const client_frame& f, std::string_view message) {
  return f.error_code != nullptr
    && std::string_view{f.error_code} == "bad_request" && f.error == message;
}

} // namespace

CAF_TEST(usable frames carry their fields) {
  auto auth = decode(R"({"type":"auth","id":"a1","token":"t.k.n"})");
  CAF_CHECK(auth.type == client_frame_type::auth);
  CAF_CHECK(auth.error_code == nullptr);
  CAF_CHECK_EQUAL(auth.id, "a1");
  CAF_CHECK_EQUAL(auth.token, "t.k.n");
  auto sub = decode(R"({"type":"subscribe","id":7,"topic":"events.o.>"})");
  CAF_CHECK(sub.type == client_frame_type::subscribe);
  CAF_CHECK(sub.error_code == nullptr);
  CAF_CHECK_EQUAL(sub.id, "7");
  CAF_CHECK_EQUAL(sub.topic, "events.o.>");
  auto unsub = decode(R"({"type":"unsubscribe","topic":"events.o.*"})");
  CAF_CHECK(unsub.type == client_frame_type::unsubscribe);
  CAF_CHECK(unsub.error_code == nullptr);
  CAF_CHECK_EQUAL(unsub.id, "");
  CAF_CHECK_EQUAL(unsub.topic, "events.o.*");
}

CAF_TEST(ids are strings or integers) {
  CAF_CHECK_EQUAL(decode(R"({"type":"x","id":-3})").id, "-3");
  CAF_CHECK_EQUAL(decode(R"({"type":"x","id":1.5})").id, "");
  CAF_CHECK_EQUAL(decode(R"({"type":"x","id":["a"]})").id, "");
  CAF_CHECK_EQUAL(decode(R"({"type":"x","id":null})").id, "");
}

CAF_TEST(anything but a JSON object is refused without an id) {
  for (auto text : {"nope", "", "[1]", "\"auth\"", "{\"id\":\"1\"", "{} {}"}) {
    auto f = decode(text);
    CAF_CHECK(refused(f, "frame is not a JSON object"));
    CAF_CHECK(f.type == client_frame_type::none);
    CAF_CHECK_EQUAL(f.id, "");
    CAF_CHECK(!f.too_deep);
  }
}

CAF_TEST(a frame needs a string type) {
  auto missing = decode(R"({"id":"1"})");
  CAF_CHECK(refused(missing, "frame has no string field 'type'"));
  CAF_CHECK_EQUAL(missing.id, "1");
  auto number = decode(R"({"id":"2","type":5})");
  CAF_CHECK(refused(number, "frame has no string field 'type'"));
  CAF_CHECK_EQUAL(number.id, "2");
  CAF_CHECK(number.type == client_frame_type::none);
}

CAF_TEST(unknown types are refused by name) {
  auto f = decode(R"({"id":"3","type":"Publish","topic":"events.o.a"})");
  CAF_CHECK(refused(f, "unknown frame type 'Publish'"));
  CAF_CHECK(f.type == client_frame_type::none);
  CAF_CHECK_EQUAL(f.id, "3");
}

CAF_TEST(auth needs a string token) {
  auto f = decode(R"({"id":"4","type":"auth","token":42})");
  CAF_CHECK(refused(f, "auth needs a string field 'token'"));
  CAF_CHECK(f.type == client_frame_type::auth);
  CAF_CHECK_EQUAL(f.id, "4");
}

CAF_TEST(subscribe and unsubscribe need a string topic and keep their type) {
  auto sub = decode(R"({"id":"5","type":"subscribe"})");
  CAF_CHECK(refused(sub, "subscribe needs a string field 'topic'"));
  CAF_CHECK(sub.type == client_frame_type::subscribe);
  CAF_CHECK_EQUAL(sub.id, "5");
  auto unsub = decode(R"({"id":"6","type":"unsubscribe","topic":["a"]})");
  CAF_CHECK(refused(unsub, "unsubscribe needs a string field 'topic'"));
  CAF_CHECK(unsub.type == client_frame_type::unsubscribe);
}

CAF_TEST(frames nested deeper than the limit are refused) {
  auto at_limit = R"({"type":"auth","token":"t","x":)"
    + std::string(limit - 1, '[') + std::string(limit - 1, ']') + "}";
  CAF_CHECK(decode(at_limit).error_code == nullptr);
  auto over = R"({"type":"auth","id":"7","token":"t","x":)"
    + std::string(limit, '[') + std::string(limit, ']') + "}";
  auto f = decode(over);
  CAF_CHECK(refused(f, "frame has nesting deeper than 64"));
  CAF_CHECK(f.too_deep);
  CAF_CHECK(f.type == client_frame_type::none);
  CAF_CHECK_EQUAL(f.id, "");
  auto huge = decode(std::string(100'000, '['));
  CAF_CHECK(huge.too_deep);
  CAF_CHECK(refused(huge, "frame has nesting deeper than 64"));
}

CAF_TEST(publish frames carry topic event id and data as JSON text) {
  auto f = decode(R"({"type":"publish","id":"p1","topic":"events.o.a.b",)"
                  R"("event_id":"evt-1","data":{"n":[1,2.5,"x"],"ok":true}})");
  CAF_CHECK(f.type == client_frame_type::publish);
  CAF_CHECK(f.error_code == nullptr);
  CAF_CHECK_EQUAL(f.id, "p1");
  CAF_CHECK_EQUAL(f.topic, "events.o.a.b");
  CAF_CHECK_EQUAL(f.event_id, "evt-1");
  CAF_CHECK(nlohmann::json::parse(f.data)
            == nlohmann::json::parse(R"({"n":[1,2.5,"x"],"ok":true})"));
  CAF_CHECK(f.token.empty());
}

CAF_TEST(a publish without data or event id publishes null with a node id) {
  auto f = decode(R"({"type":"publish","id":8,"topic":"events.o.a"})");
  CAF_CHECK(f.type == client_frame_type::publish);
  CAF_CHECK(f.error_code == nullptr);
  CAF_CHECK_EQUAL(f.id, "8");
  CAF_CHECK_EQUAL(f.data, "null");
  CAF_CHECK_EQUAL(f.event_id, "");
  CAF_CHECK_EQUAL(decode(R"({"type":"publish","topic":"t","data":null})").data,
                  "null");
  CAF_CHECK_EQUAL(decode(R"({"type":"publish","topic":"t","data":"s"})").data,
                  "\"s\"");
}

CAF_TEST(a publish needs a string topic and keeps its type) {
  for (auto text : {R"({"id":"9","type":"publish"})",
                    R"({"id":"9","type":"publish","topic":7,"data":1})"}) {
    auto f = decode(text);
    CAF_CHECK(refused(f, "publish needs a string field 'topic'"));
    CAF_CHECK(f.type == client_frame_type::publish);
    CAF_CHECK_EQUAL(f.id, "9");
  }
}

CAF_TEST(a publish event id is a string of 1 to 128 bytes) {
  auto with_id = [](const std::string& id_json) {
    return decode(R"({"type":"publish","id":"10","topic":"events.o.a",)"
                  R"("event_id":)"
                  + id_json + "}");
  };
  auto longest = with_id("\"" + std::string(128, 'e') + "\"");
  CAF_CHECK(longest.error_code == nullptr);
  CAF_CHECK_EQUAL(longest.event_id, std::string(128, 'e'));
  for (auto bad :
       {std::string{"\"\""}, "\"" + std::string(129, 'e') + "\"",
        std::string{"42"}, std::string{"null"}, std::string{"[\"a\"]"}}) {
    auto f = with_id(bad);
    CAF_CHECK(refused(f, "event_id must be a string of 1 to 128 bytes"));
    CAF_CHECK(f.type == client_frame_type::publish);
    CAF_CHECK_EQUAL(f.id, "10");
    CAF_CHECK_EQUAL(f.event_id, "");
  }
}

CAF_TEST(event ids and data belong to publish frames only) {
  auto f = decode(R"({"type":"subscribe","topic":"events.o.>",)"
                  R"("event_id":"","data":{"x":1}})");
  CAF_CHECK(f.error_code == nullptr);
  CAF_CHECK_EQUAL(f.event_id, "");
  CAF_CHECK_EQUAL(f.data, "");
}

CAF_TEST(an already parsed JSON value decodes as its text does) {
  auto text = R"({"type":"publish","id":"11","topic":"events.o.a",)"
              R"("event_id":"e","data":[1]})";
  auto a = decode(text);
  auto b = client_frame_from_json(nlohmann::json::parse(text));
  CAF_CHECK(b.type == a.type);
  CAF_CHECK(b.error_code == nullptr);
  CAF_CHECK_EQUAL(b.id, a.id);
  CAF_CHECK_EQUAL(b.topic, a.topic);
  CAF_CHECK_EQUAL(b.event_id, a.event_id);
  CAF_CHECK_EQUAL(b.data, a.data);
  CAF_CHECK(refused(client_frame_from_json(nlohmann::json::array()),
                    "frame is not a JSON object"));
}

CAF_TEST(a subscribe may recover from a position or a time) {
  auto by_seq = decode(R"({"type":"subscribe","topic":"events.o.*",)"
                       R"("recover":{"since":41,"epoch":"18a2f"}})");
  CAF_CHECK(by_seq.error_code == nullptr);
  CAF_CHECK(by_seq.recover && !by_seq.recover_by_time);
  CAF_CHECK_EQUAL(by_seq.recover_since, 41u);
  CAF_CHECK_EQUAL(by_seq.recover_epoch, "18a2f");
  auto by_time = decode(R"({"type":"subscribe","topic":"events.o.*",)"
                        R"("recover":{"since_ts":1700000000000}})");
  CAF_CHECK(by_time.error_code == nullptr);
  CAF_CHECK(by_time.recover && by_time.recover_by_time);
  CAF_CHECK_EQUAL(by_time.recover_since_ts, 1700000000000);
  auto plain = decode(R"({"type":"subscribe","topic":"events.o.*"})");
  CAF_CHECK(!plain.recover);
  const char* usage = "recover needs 'since' (a sequence) and 'epoch' (a "
                      "string of at most 64 bytes), or 'since_ts' (unix ms)";
  for (auto bad :
       {R"("recover":{"since":-1,"epoch":"e"})",
        R"("recover":{"since":"3","epoch":"e"})", R"("recover":{"since":3})",
        R"("recover":{"epoch":"e"})", R"("recover":{"since_ts":1.5})"})
    CAF_CHECK(refused(decode(std::string{R"({"type":"subscribe",)"} + bad
                             + R"(,"topic":"events.o.*"})"),
                      usage));
  CAF_CHECK(refused(decode(R"({"type":"subscribe","topic":"events.o.*",)"
                           R"("recover":[1]})"),
                    "recover must be an object"));
  CAF_CHECK(refused(decode(R"({"type":"subscribe","topic":"events.o.*",)"
                           R"("recover":{"since_ts":18446744073709551615}})"),
                    "recover.since_ts is out of range"));
  auto long_epoch = std::string(65, 'a');
  CAF_CHECK(refused(decode(R"({"type":"subscribe","topic":"events.o.*",)"
                           R"("recover":{"since":1,"epoch":")"
                           + long_epoch + "\"}}"),
                    usage));
}
