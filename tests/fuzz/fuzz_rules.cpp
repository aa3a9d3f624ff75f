// Notification rules, contacts and notifications (schemas/notifications.hpp):
// the input up to its first NUL byte, read as JSON with the node's depth
// limit, goes through parse_rule and parse_contact as an HTTP body and
// through the *_from_json readers as a store record; the rest (or, without
// a NUL, the same value) is the data of an event on a topic the rule
// matches. Whatever parses must survive a round trip through to_json;
// rendered templates must fit their limit and stay valid UTF-8 (HTML ones
// escaped, no entity cut); recipients must be valid and distinct.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_set>

#include <nlohmann/json.hpp>

#include "schemas/json_limits.hpp"
#include "schemas/messages.hpp"
#include "schemas/notifications.hpp"
#include "schemas/rooms.hpp"
#include "schemas/topic.hpp"

using namespace switchyard;
using nlohmann::json;

namespace {

void check(bool condition) {
  if (!condition)
    __builtin_trap();
}

bool valid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1
      : (c >> 5) == 6   ? 2
      : (c >> 4) == 14  ? 3
      : (c >> 3) == 30  ? 4
                        : 0;
    if (n == 0 || i + n > s.size())
      return false;
    uint32_t cp = n == 1 ? c : c & (0x7F >> n);
    for (size_t k = 1; k < n; ++k) {
      auto d = static_cast<unsigned char>(s[i + k]);
      if ((d & 0xC0) != 0x80)
        return false;
      cp = (cp << 6) | (d & 0x3F);
    }
    constexpr uint32_t least[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < least[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    i += n;
  }
  return true;
}

/// Whether every `&` of `s` starts a whole entity and no character that
/// needs escaping is left.
bool escaped(std::string_view s) {
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '<' || s[i] == '>' || s[i] == '"' || s[i] == '\'')
      return false;
    if (s[i] == '&') {
      auto rest = s.substr(i);
      if (rest.rfind("&amp;", 0) != 0 && rest.rfind("&lt;", 0) != 0
          && rest.rfind("&gt;", 0) != 0 && rest.rfind("&quot;", 0) != 0
          && rest.rfind("&#39;", 0) != 0)
        return false;
    }
  }
  return true;
}

/// A concrete topic that `pattern` matches.
std::string concrete(std::string_view pattern) {
  std::string out;
  for (auto tok : topic::split(pattern)) {
    if (!out.empty())
      out += '.';
    out += tok == "*" ? "x" : tok == ">" ? "x.y" : std::string{tok};
  }
  return out;
}

void exercise(const notification_rule& rule, const json& data,
              const std::string& data_text, size_t limit) {
  event ev;
  ev.id = "ev-1";
  ev.topic = concrete(rule.topic);
  ev.ts = 1700000000000;
  ev.source = "svc_fuzz";
  ev.data = data_text;
  ev.headers["trace"] = "t-1";
  (void)matches(rule, ev, data);
  for (auto& c : rule.when)
    (void)event_field(ev, data, c.field);
  bool utf8 = valid_utf8(rule.title) && valid_utf8(rule.body);
  for (bool html : {false, true}) {
    for (auto n : {limit, max_title_size, max_body_size}) {
      auto title = render(rule.title, ev, data, html, n);
      auto body = render(rule.body, ev, data, html, n);
      check(title.size() <= n && body.size() <= n);
      check(!utf8 || (valid_utf8(title) && valid_utf8(body)));
      check(!html || (escaped(title) && escaped(body)));
    }
  }
  auto users = direct_recipients(rule, ev, data);
  check(users.size() <= max_direct_recipients);
  std::unordered_set<std::string> seen;
  for (auto& u : users) {
    check(rooms::valid_participant_id(u, false));
    check(seen.insert(u).second);
  }
  if (!users.empty()) {
    auto id = notification_id(rule.id, ev.id, users.front());
    check(id.size() == 32 && id == notification_id(rule.id, ev.id, users[0]));
  }
}

void check_quiet(const quiet_hours& q, int64_t t) {
  auto until = quiet_until(q, t);
  check(until == 0 || until > t);
  // Quiet hours last less than a day, plus whatever a zone's clock moved
  // back meanwhile (a whole day, in some zones' history).
  check(until == 0 || until - t <= int64_t{50} * 3600 * 1000);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  std::string_view in{reinterpret_cast<const char*>(bytes), size};
  auto nul = in.find('\0');
  auto body_text = in.substr(0, nul);
  auto parsed = json_limits::parse_json(body_text, 64);
  if (parsed.error != json_limits::failure::none)
    return 0;
  auto& body = parsed.value;
  json data = body;
  if (nul != std::string_view::npos) {
    auto more = json_limits::parse_json(in.substr(nul + 1), 64);
    data = more.error == json_limits::failure::none ? std::move(more.value)
                                                    : json(nullptr);
  }
  auto data_text = data.dump(-1, ' ', false, json::error_handler_t::replace);
  size_t limit = size % 97;
  const std::string org = "org_1";
  std::string error;

  for (auto& id : {std::string{}, std::string{"r_1"}}) {
    auto rule = parse_rule(body, org, id, error);
    if (!rule) {
      check(!error.empty());
      continue;
    }
    check(valid_rule_id(rule->id) && (id.empty() || rule->id == id));
    check(topic::valid_pattern(rule->topic));
    auto j = to_json(*rule);
    auto again = rule_from_json(j);
    check(again.has_value());
    check(to_json(*again) == j);
    check(again->when.size() == rule->when.size());
    for (size_t i = 0; i < rule->when.size(); ++i)
      check(again->when[i].value == rule->when[i].value);
    // What GET shows parses again as a PUT body.
    auto put = parse_rule(j, org, rule->id, error);
    check(put.has_value() && to_json(*put) == j);
    exercise(*rule, data, data_text, limit);
  }
  if (auto stored = rule_from_json(body)) {
    auto j = to_json(*stored);
    auto again = rule_from_json(j);
    check(again.has_value() && to_json(*again) == j);
    exercise(*stored, data, data_text, limit);
  }

  int64_t t = 1700000000000;
  if (data.is_number_integer() && !data.is_number_unsigned())
    t = std::max<int64_t>(data.get<int64_t>(), -(int64_t{1} << 60));
  else if (data.is_number_unsigned())
    t = static_cast<int64_t>(
      std::min<uint64_t>(data.get<uint64_t>(), uint64_t{1} << 60));
  if (auto c = parse_contact(body, org, "alice", error)) {
    auto j = to_json(*c);
    auto again = contact_from_json(j);
    check(again.has_value() && to_json(*again) == j);
    check(parse_contact(j, org, "alice", error).has_value());
    for (int64_t dt : {int64_t{0}, int64_t{3600000}, int64_t{43200000}})
      check_quiet(c->quiet, t + dt);
  } else {
    check(!error.empty());
  }
  if (auto c = contact_from_json(body)) {
    auto again = contact_from_json(to_json(*c));
    check(again.has_value() && to_json(*again) == to_json(*c));
    check_quiet(c->quiet, t);
  }

  if (auto n = notification_from_json(body)) {
    auto j = to_json(*n);
    auto again = notification_from_json(j);
    check(again.has_value() && to_json(*again) == j);
    auto frame = json_limits::parse_json(notification_frame(*n), 64 + 1);
    check(frame.error == json_limits::failure::none);
    check(frame.value.size() == 7 && frame.value["type"] == "notification");
    (void)settled(*n);
    (void)allows(*n, "push");
  }
  return 0;
}
