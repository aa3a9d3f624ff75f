#include "schemas/envelope.hpp"

#include <nlohmann/json.hpp>

#include "schemas/json_limits.hpp"
#include "schemas/topic.hpp"

namespace switchyard::envelope {

namespace {

using nlohmann::json;

decoded fail(std::string why) {
  decoded result;
  result.error = std::move(why);
  return result;
}

decoded too_deep(size_t max_depth) {
  auto result
    = fail("envelope has " + json_limits::too_deep_message(max_depth));
  result.too_deep = true;
  return result;
}

/// Checks the fields of a parsed envelope and builds the event. Unset `id`
/// and `ts` stay empty/zero for the caller to fill in.
decoded from_object(std::string_view subject, json& j) {
  if (!j.is_object())
    return fail("envelope is not a map");
  if (!topic::valid_topic(subject))
    return fail("subject is not a valid topic");
  event ev;
  ev.topic = std::string{subject};
  if (auto i = j.find("topic"); i != j.end()) {
    if (!i->is_string() || i->get_ref<const std::string&>() != subject)
      return fail("envelope topic differs from the subject");
  }
  if (auto i = j.find("id"); i != j.end()) {
    if (!i->is_string() || !valid_event_id(i->get_ref<const std::string&>()))
      return fail("id must be a string of 1 to 128 bytes");
    ev.id = i->get<std::string>();
  }
  if (auto i = j.find("ts"); i != j.end()) {
    if (!i->is_number_integer())
      return fail("ts must be an integer (unix ms)");
    ev.ts = i->get<int64_t>();
  }
  if (auto i = j.find("source"); i != j.end()) {
    if (!i->is_string())
      return fail("source must be a string");
    ev.source = i->get<std::string>();
  }
  if (auto i = j.find("headers"); i != j.end()) {
    if (!i->is_object())
      return fail("headers must be a map of strings");
    for (auto& [key, value] : i->items()) {
      if (!value.is_string())
        return fail("headers must be a map of strings");
      ev.headers.emplace(key, value.get<std::string>());
    }
  }
  ev.data = json_limits::field_text(j, "data");
  decoded result;
  result.value = std::move(ev);
  return result;
}

/// Builds the event of a bounded parse, or says why there is none.
decoded from_parsed(std::string_view subject, json_limits::result parsed,
                    size_t max_depth, const char* malformed) {
  if (parsed.error == json_limits::failure::too_deep)
    return too_deep(max_depth);
  if (parsed.error == json_limits::failure::not_utf8)
    return fail("envelope has a string that is not UTF-8");
  if (parsed.error != json_limits::failure::none)
    return fail(malformed);
  return from_object(subject, parsed.value);
}

} // namespace

std::string to_msgpack(const event& ev) {
  json j{{"id", ev.id},
         {"topic", ev.topic},
         {"ts", ev.ts},
         {"source", ev.source},
         {"data",
          json::parse(ev.data.empty() ? "null" : ev.data, nullptr, false)}};
  if (!ev.headers.empty())
    j["headers"] = ev.headers;
  auto bytes = json::to_msgpack(j);
  return std::string(bytes.begin(), bytes.end());
}

decoded from_msgpack(std::string_view subject, std::string_view payload,
                     size_t max_depth) {
  return from_parsed(subject, json_limits::parse_msgpack(payload, max_depth),
                     max_depth, "payload is not msgpack");
}

decoded from_json(std::string_view subject, std::string_view payload,
                  size_t max_depth) {
  return from_parsed(subject, json_limits::parse_json(payload, max_depth),
                     max_depth, "payload is not JSON");
}

} // namespace switchyard::envelope
