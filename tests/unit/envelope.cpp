#define CAF_SUITE envelope

#include <caf/test/dsl.hpp>

#include <nlohmann/json.hpp>

#include "actors/node_context.hpp"
#include "schemas/envelope.hpp"

using namespace switchyard;

namespace {

constexpr size_t limit = settings::default_max_json_depth;

std::string msgpack_of(const nlohmann::json& j) {
  auto bytes = nlohmann::json::to_msgpack(j);
  return std::string(bytes.begin(), bytes.end());
}

} // namespace

CAF_TEST(an encoded event decodes to the same event) {
  event ev;
  ev.id = "e-1";
  ev.topic = "events.o.svc.task.done.t1";
  ev.ts = 1700000000123;
  ev.source = "svc";
  ev.data = R"({"a":[1,2.5,null,"x"],"b":{"c":true}})";
  ev.headers = {{"trace", "abc"}};
  auto out = envelope::from_msgpack(ev.topic, envelope::to_msgpack(ev), limit);
  CAF_REQUIRE(out.value);
  CAF_CHECK_EQUAL(out.value->id, ev.id);
  CAF_CHECK_EQUAL(out.value->topic, ev.topic);
  CAF_CHECK_EQUAL(out.value->ts, ev.ts);
  CAF_CHECK_EQUAL(out.value->source, ev.source);
  CAF_CHECK_EQUAL(nlohmann::json::parse(out.value->data),
                  nlohmann::json::parse(ev.data));
  CAF_CHECK_EQUAL(out.value->headers.at("trace"), "abc");
}

CAF_TEST(optional fields may be left out) {
  auto out = envelope::from_msgpack("events.o.a", msgpack_of({{"data", 7}}),
                                    limit);
  CAF_REQUIRE(out.value);
  CAF_CHECK_EQUAL(out.value->topic, "events.o.a");
  CAF_CHECK_EQUAL(out.value->id, "");
  CAF_CHECK_EQUAL(out.value->ts, 0);
  CAF_CHECK_EQUAL(out.value->data, "7");
}

CAF_TEST(a JSON envelope carries the same fields) {
  auto out = envelope::from_json(
    "events.o.a", R"({"id":"j1","source":"sh","data":{"k":1}})", limit);
  CAF_REQUIRE(out.value);
  CAF_CHECK_EQUAL(out.value->id, "j1");
  CAF_CHECK_EQUAL(out.value->data, R"({"k":1})");
}

CAF_TEST(malformed envelopes are refused with a reason) {
  CAF_CHECK(!envelope::from_msgpack("events.o.a", "\x01\x02\xc1", limit).value);
  CAF_CHECK(
    !envelope::from_msgpack("events.o.a", msgpack_of({1, 2}), limit).value);
  CAF_CHECK(!envelope::from_msgpack(
               "events.o.a", msgpack_of({{"topic", "events.o.b"}}), limit)
               .value);
  CAF_CHECK(
    !envelope::from_msgpack("events.o.a", msgpack_of({{"id", 5}}), limit)
       .value);
  CAF_CHECK(
    !envelope::from_msgpack("events.o.a", msgpack_of({{"ts", "x"}}), limit)
       .value);
  CAF_CHECK(!envelope::from_msgpack(
               "events.o.a", msgpack_of({{"headers", {{"k", 1}}}}), limit)
               .value);
  CAF_CHECK(!envelope::from_json("events.o.a", "{nope", limit).value);
  auto out = envelope::from_json("events.o.a", "[1]", limit);
  CAF_CHECK(!out.value);
  CAF_CHECK_EQUAL(out.error, "envelope is not a map");
}

CAF_TEST(envelopes with strings that are not UTF - 8 are refused) {
  // {"data": {"\xfe": 1, "\xff": 2}}: two keys that, printed with U+FFFD
  // for the bad byte, would collide and lose a value.
  auto keys
    = envelope::from_msgpack("events.o.a",
                             std::string("\x81\xa4"
                                         "data\x82\xa1\xfe\x01\xa1\xff\x02"),
                             limit);
  CAF_CHECK(!keys.value);
  CAF_CHECK_EQUAL(keys.error, "envelope has a string that is not UTF-8");
  auto id = envelope::from_msgpack("events.o.a",
                                   std::string("\x81\xa2"
                                               "id\xa1\xc3"),
                                   limit);
  CAF_CHECK(!id.value);
  CAF_CHECK_EQUAL(id.error, "envelope has a string that is not UTF-8");
}

CAF_TEST(envelopes nested deeper than the limit are refused as too deep) {
  // {"data": [[...0...]]}: the envelope map is level 1.
  auto deep_msgpack = [](size_t arrays) {
    return "\x81\xa4"
           "data"
      + std::string(arrays, '\x91') + std::string(1, '\0');
  };
  auto deep_json = [](size_t arrays) {
    return R"({"data":)" + std::string(arrays, '[') + std::string(arrays, ']')
      + "}";
  };
  auto at_limit = envelope::from_msgpack("events.o.a", deep_msgpack(limit - 1),
                                         limit);
  CAF_REQUIRE(at_limit.value);
  CAF_CHECK_EQUAL(at_limit.value->data.size(), 2 * (limit - 1) + 1);
  CAF_CHECK(
    envelope::from_json("events.o.a", deep_json(limit - 1), limit).value);
  for (size_t arrays : {limit, size_t{70'000}}) {
    auto mp = envelope::from_msgpack("events.o.a", deep_msgpack(arrays), limit);
    CAF_CHECK(!mp.value);
    CAF_CHECK(mp.too_deep);
    CAF_CHECK_EQUAL(mp.error, "envelope has nesting deeper than 64");
    auto js = envelope::from_json("events.o.a", deep_json(arrays), limit);
    CAF_CHECK(!js.value);
    CAF_CHECK(js.too_deep);
    CAF_CHECK_EQUAL(js.error, "envelope has nesting deeper than 64");
  }
  auto bad = envelope::from_msgpack("events.o.a", "\xc1", limit);
  CAF_CHECK(!bad.too_deep);
}
