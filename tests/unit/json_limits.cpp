#define CAF_SUITE json_limits

#include <caf/test/dsl.hpp>

#include <string>

#include "schemas/json_limits.hpp"

using namespace switchyard;
using json_limits::failure;

namespace {

/// `depth` arrays nested inside each other: `[[...]]`.
std::string json_arrays(size_t depth) {
  return std::string(depth, '[') + std::string(depth, ']');
}

/// `depth` objects nested inside each other: `{"a":{"a":{}}}`.
std::string json_objects(size_t depth) {
  std::string out;
  for (size_t i = 1; i < depth; ++i)
    out += R"({"a":)";
  out += "{}";
  out += std::string(depth - 1, '}');
  return out;
}

/// `depth` msgpack fixarrays of one element around a 0: 0x91 0x91 ... 0x00.
std::string msgpack_arrays(size_t depth) {
  return std::string(depth, '\x91') + std::string(1, '\0');
}

/// `depth` msgpack fixmaps of one entry {"": ...} around a 0.
std::string msgpack_maps(size_t depth) {
  std::string out;
  for (size_t i = 0; i < depth; ++i)
    out += "\x81\xa0"; // fixmap(1), key: fixstr(0)
  out += '\0';
  return out;
}

constexpr size_t limit = 64;

} // namespace

CAF_TEST(JSON at the limit parses) {
  auto arrays = json_limits::parse_json(json_arrays(limit), limit);
  CAF_CHECK(arrays.error == failure::none);
  CAF_CHECK(arrays.value.is_array());
  auto objects = json_limits::parse_json(json_objects(limit), limit);
  CAF_CHECK(objects.error == failure::none);
  CAF_CHECK(objects.value.is_object());
  auto mixed = json_limits::parse_json(R"({"a":[1,{"b":[]}],"c":{}})", 4);
  CAF_CHECK(mixed.error == failure::none);
  CAF_CHECK_EQUAL(mixed.value.dump(), R"({"a":[1,{"b":[]}],"c":{}})");
}

CAF_TEST(JSON one level over the limit is refused) {
  auto arrays = json_limits::parse_json(json_arrays(limit + 1), limit);
  CAF_CHECK(arrays.error == failure::too_deep);
  CAF_CHECK(arrays.value.is_discarded());
  auto objects = json_limits::parse_json(json_objects(limit + 1), limit);
  CAF_CHECK(objects.error == failure::too_deep);
  CAF_CHECK(json_limits::parse_json(R"({"a":[1,{"b":[]}],"c":{}})", 3).error
            == failure::too_deep);
}

CAF_TEST(siblings do not add up to depth) {
  std::string wide = "[";
  for (size_t i = 0; i < 1000; ++i)
    wide += (i == 0 ? "" : ",") + json_arrays(limit - 1);
  wide += "]";
  CAF_CHECK(json_limits::parse_json(wide, limit).error == failure::none);
}

CAF_TEST(scalars have depth zero) {
  auto out = json_limits::parse_json("42", 1);
  CAF_CHECK(out.error == failure::none);
  CAF_CHECK_EQUAL(out.value, 42);
  CAF_CHECK(json_limits::parse_json("[]", 0).error == failure::too_deep);
  CAF_CHECK(json_limits::parse_json("\"x\"", 0).error == failure::none);
}

CAF_TEST(100k levels of JSON are refused without recursing) {
  CAF_CHECK(json_limits::parse_json(std::string(100'000, '['), limit).error
            == failure::too_deep);
  CAF_CHECK(json_limits::parse_json(json_objects(100'000), limit).error
            == failure::too_deep);
}

CAF_TEST(malformed JSON is malformed however deep) {
  CAF_CHECK(json_limits::parse_json("{nope", limit).error
            == failure::malformed);
  CAF_CHECK(json_limits::parse_json("", limit).error == failure::malformed);
  CAF_CHECK(json_limits::parse_json("[] []", limit).error
            == failure::malformed);
  CAF_CHECK(json_limits::parse_json("[[[}", limit).error == failure::malformed);
  auto out = json_limits::parse_json("[1,", limit);
  CAF_CHECK(out.error == failure::malformed);
  CAF_CHECK(out.value.is_discarded());
}

CAF_TEST(msgpack at the limit parses) {
  auto arrays = json_limits::parse_msgpack(msgpack_arrays(limit), limit);
  CAF_CHECK(arrays.error == failure::none);
  auto expected = nlohmann::json(0);
  for (size_t i = 0; i < limit; ++i)
    expected = nlohmann::json::array({expected});
  CAF_CHECK_EQUAL(arrays.value, expected);
  auto maps = json_limits::parse_msgpack(msgpack_maps(limit), limit);
  CAF_CHECK(maps.error == failure::none);
  CAF_CHECK(maps.value.is_object());
}

CAF_TEST(msgpack one level over the limit is refused) {
  CAF_CHECK(json_limits::parse_msgpack(msgpack_arrays(limit + 1), limit).error
            == failure::too_deep);
  CAF_CHECK(json_limits::parse_msgpack(msgpack_maps(limit + 1), limit).error
            == failure::too_deep);
}

CAF_TEST(100k levels of msgpack are refused without recursing) {
  // Unbounded, nlohmann's msgpack reader recurses once per level and
  // overflows the stack long before 100k levels.
  CAF_CHECK(json_limits::parse_msgpack(msgpack_arrays(100'000), limit).error
            == failure::too_deep);
  CAF_CHECK(json_limits::parse_msgpack(msgpack_maps(100'000), limit).error
            == failure::too_deep);
  // The wider headers too: array16 of one element (dc 00 01) inside map32
  // of one entry (df 00 00 00 01, key a0), alternating.
  std::string mixed;
  for (size_t i = 0; i < 50'000; ++i)
    mixed += i % 2 == 0 ? std::string("\xdc\x00\x01", 3)
                        : std::string("\xdf\x00\x00\x00\x01\xa0", 6);
  mixed += '\0';
  CAF_CHECK(json_limits::parse_msgpack(mixed, limit).error
            == failure::too_deep);
}

CAF_TEST(malformed msgpack is malformed) {
  CAF_CHECK(json_limits::parse_msgpack("\xc1", limit).error
            == failure::malformed);
  CAF_CHECK(json_limits::parse_msgpack("", limit).error == failure::malformed);
  // Truncated: an array of 3 with one element.
  CAF_CHECK(json_limits::parse_msgpack("\x93\x01", limit).error
            == failure::malformed);
  // Trailing bytes after a complete value.
  CAF_CHECK(json_limits::parse_msgpack(std::string("\x01\x02", 2), limit).error
            == failure::malformed);
  // A map32 claiming 4 billion entries, with none present.
  CAF_CHECK(json_limits::parse_msgpack("\xdf\xff\xff\xff\xff", limit).error
            == failure::malformed);
}

CAF_TEST(msgpack strings and keys must be UTF - 8) {
  // {"a": "\xff"}: a fixstr value that is not UTF-8.
  CAF_CHECK(json_limits::parse_msgpack("\x81\xa1"
                                       "a"
                                       "\xa1\xff",
                                       limit)
              .error
            == failure::not_utf8);
  // Two distinct keys that would both print as U+FFFD.
  CAF_CHECK(
    json_limits::parse_msgpack("\x82\xa1\xfe\x01\xa1\xff\x02", limit).error
    == failure::not_utf8);
  // A truncated sequence at the end of a string.
  CAF_CHECK(json_limits::parse_msgpack("\xa2"
                                       "a\xc3",
                                       limit)
              .error
            == failure::not_utf8);
  // Valid multi-byte text and bin payloads pass.
  auto ok = json_limits::parse_msgpack("\x82\xa2\xc3\xa9\x01\xa1"
                                       "b\xc4\x01\xff",
                                       limit);
  CAF_CHECK(ok.error == failure::none);
  CAF_CHECK_EQUAL(ok.value.size(), 2u);
}

CAF_TEST(the message names the limit) {
  CAF_CHECK_EQUAL(json_limits::too_deep_message(64), "nesting deeper than 64");
}
