#include "schemas/notifications.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <limits>
#include <memory>
#include <mutex>
#include <random>
#include <shared_mutex>
#include <stdexcept>
#include <unordered_map>
#include <unordered_set>

#include <date/tz.h>
#include <nlohmann/json.hpp>
#include <openssl/evp.h>

#include "schemas/json_limits.hpp"
#include "schemas/messages.hpp"
#include "schemas/rooms.hpp"
#include "schemas/token.hpp"
#include "schemas/topic.hpp"

namespace switchyard {

using nlohmann::json;

namespace {

// -- helpers ------------------------------------------------------------------

/// The deepest an event's `data` can be: the most `--max-json-depth`
/// allows (the node checked the data against its own limit on the way in).
constexpr size_t max_data_depth = 1024;

/// How much of a client's string an error message repeats.
constexpr size_t max_quoted_size = 64;

constexpr std::string_view all_channels[] = {"websocket", "push", "email"};

constexpr std::string_view operators[] = {
  "equals", "not_equals", "in", "exists", "contains", "gt", "gte", "lt", "lte",
};

constexpr std::string_view field_roots
  = "data.<path>, headers.<name>, topic, id, source or ts";

bool is_continuation(char c) {
  return (static_cast<unsigned char>(c) & 0xC0) == 0x80;
}

/// The length of `str`'s longest prefix of at most `n` bytes that ends on
/// a UTF-8 boundary (looking back at most three bytes, so that invalid
/// input is cut at `n`).
size_t utf8_prefix(std::string_view str, size_t n) {
  if (n >= str.size())
    return str.size();
  size_t i = n;
  while (i > 0 && n - i < 3 && is_continuation(str[i]))
    --i;
  return is_continuation(str[i]) ? n : i;
}

/// JSON text of `x`, never throwing on invalid UTF-8.
std::string dump(const json& x) {
  return x.dump(-1, ' ', false, json::error_handler_t::replace);
}

/// `str` as a JSON string for an error message, cut when long.
std::string quote(std::string_view str) {
  auto n = utf8_prefix(str, max_quoted_size);
  auto out = dump(json(std::string{str.substr(0, n)}));
  if (n < str.size())
    out.insert(out.size() - 1, "...");
  return out;
}

/// A field name of a client's object for an error message.
std::string name_of(const std::string& key) {
  auto n = utf8_prefix(key, max_quoted_size);
  return n < key.size() ? key.substr(0, n) + "..." : key;
}

std::string at(const std::string& field, size_t i) {
  return field + "[" + std::to_string(i) + "]";
}

template<size_t N>
bool one_of(const std::string_view (&names)[N], std::string_view name) {
  return std::find(std::begin(names), std::end(names), name) != std::end(names);
}

/// Sets `error` to `field: what` and returns nothing.
struct failer {
  std::string& error;

  std::nullopt_t operator()(const std::string& field, const std::string& what) {
    error = field + ": " + what;
    return std::nullopt;
  }
};

/// The first field of object `j` not among `names`, or null.
template<size_t N>
const std::string*
unknown_field(const json& j, const std::string_view (&names)[N]) {
  for (auto& item : j.items())
    if (!one_of(names, item.key()))
      return &item.key();
  return nullptr;
}

/// Reads `j[key]` when it has the type of `out` (integers: in range);
/// false when missing or of another type.
template<class T>
bool read(const json& j, const char* key, T& out) {
  auto i = j.find(key);
  if (i == j.end())
    return false;
  if constexpr (std::is_same_v<T, std::string>) {
    if (!i->is_string())
      return false;
    out = i->template get_ref<const std::string&>();
    return true;
  } else if constexpr (std::is_same_v<T, bool>) {
    if (!i->is_boolean())
      return false;
    out = i->template get<bool>();
    return true;
  } else {
    static_assert(std::is_signed_v<T>);
    if (i->is_number_unsigned()) {
      auto v = i->template get<uint64_t>();
      if (v > static_cast<uint64_t>(std::numeric_limits<T>::max()))
        return false;
      out = static_cast<T>(v);
      return true;
    }
    if (!i->is_number_integer())
      return false;
    auto v = i->template get<int64_t>();
    if (v < std::numeric_limits<T>::min() || v > std::numeric_limits<T>::max())
      return false;
    out = static_cast<T>(v);
    return true;
  }
}

/// Reads an array of strings; false when `j` is none.
bool read_strings(const json& j, std::vector<std::string>& out) {
  if (!j.is_array())
    return false;
  for (auto& x : j) {
    if (!x.is_string())
      return false;
    out.push_back(x.get<std::string>());
  }
  return true;
}

json strings_json(const std::vector<std::string>& xs) {
  auto out = json::array();
  for (auto& x : xs)
    out.push_back(x);
  return out;
}

// -- event fields -------------------------------------------------------------

bool decimal(std::string_view step) {
  // Nine digits: no overflow, and far beyond any array's length.
  return !step.empty() && step.size() <= 9
    && std::all_of(step.begin(), step.end(), [](char c) {
         return c >= '0' && c <= '9';
       });
}

/// The value at `path`, pointing into `data` or at `scratch`; null when
/// there is none.
const json* lookup(const event& ev, const json& data, std::string_view path,
                   json& scratch) {
  if (path.empty() || path.size() > max_field_path_size)
    return nullptr;
  auto dot = path.find('.');
  auto root = path.substr(0, dot);
  if (dot == std::string_view::npos) {
    if (root == "data")
      return data.is_discarded() ? nullptr : &data;
    if (root == "topic")
      scratch = ev.topic;
    else if (root == "id")
      scratch = ev.id;
    else if (root == "source")
      scratch = ev.source;
    else if (root == "ts")
      scratch = ev.ts;
    else
      return nullptr;
    return &scratch;
  }
  auto rest = path.substr(dot + 1);
  if (root == "headers") {
    // Who may see a private room's event is for the node alone: as a
    // field it would show a room's participants, or test for them.
    if (rest == rooms::audience_header || !valid_field_path(path))
      return nullptr;
    auto i = ev.headers.find(std::string{rest});
    if (i == ev.headers.end())
      return nullptr;
    scratch = i->second;
    return &scratch;
  }
  if (root != "data" || data.is_discarded())
    return nullptr;
  const json* cur = &data;
  size_t steps = 1;
  for (;;) {
    dot = rest.find('.');
    auto step = rest.substr(0, dot);
    if (step.empty() || ++steps > max_field_path_steps)
      return nullptr;
    if (cur->is_object()) {
      auto i = cur->find(std::string{step});
      if (i == cur->end())
        return nullptr;
      cur = &*i;
    } else if (cur->is_array() && decimal(step)) {
      auto index = std::stoul(std::string{step});
      if (index >= cur->size())
        return nullptr;
      cur = &(*cur)[index];
    } else {
      return nullptr;
    }
    if (dot == std::string_view::npos)
      return cur;
    rest = rest.substr(dot + 1);
  }
}

// -- conditions ---------------------------------------------------------------

/// -1, 0 or 1 as `a` is less than, equal to or greater than `b` (both
/// numbers): integers exactly, anything with a float as doubles.
int compare_numbers(const json& a, const json& b) {
  if (a.is_number_float() || b.is_number_float()) {
    auto x = a.get<double>();
    auto y = b.get<double>();
    return x < y ? -1 : (x > y ? 1 : 0);
  }
  auto negative = [](const json& x) {
    return !x.is_number_unsigned() && x.get<int64_t>() < 0;
  };
  bool an = negative(a);
  bool bn = negative(b);
  if (an && bn) {
    auto x = a.get<int64_t>();
    auto y = b.get<int64_t>();
    return x < y ? -1 : (x > y ? 1 : 0);
  }
  if (an != bn)
    return an ? -1 : 1;
  auto x = a.get<uint64_t>();
  auto y = b.get<uint64_t>();
  return x < y ? -1 : (x > y ? 1 : 0);
}

/// JSON equality, numbers by value. Recurses as deep as the shallower of
/// the two goes: an operand nests at most `max_condition_value_depth`.
bool equal(const json& a, const json& b) {
  if (a.is_number() && b.is_number())
    return compare_numbers(a, b) == 0;
  if (a.type() != b.type())
    return false;
  if (a.is_array()) {
    if (a.size() != b.size())
      return false;
    for (size_t i = 0; i < a.size(); ++i)
      if (!equal(a[i], b[i]))
        return false;
    return true;
  }
  if (a.is_object()) {
    if (a.size() != b.size())
      return false;
    for (auto i = a.begin(); i != a.end(); ++i) {
      auto j = b.find(i.key());
      if (j == b.end() || !equal(*i, *j))
        return false;
    }
    return true;
  }
  return a == b; // null, boolean, string
}

bool holds(const rule_condition& c, const event& ev, const json& data) {
  if (c.value.size() > max_condition_value_size)
    return false;
  auto parsed = json_limits::parse_json(c.value, max_condition_value_depth);
  if (parsed.error != json_limits::failure::none)
    return false;
  auto& operand = parsed.value;
  json scratch;
  auto field = lookup(ev, data, c.field, scratch);
  if (c.op == "exists")
    return operand.is_boolean() && (field != nullptr) == operand.get<bool>();
  if (field == nullptr)
    return false;
  if (c.op == "equals")
    return equal(*field, operand);
  if (c.op == "not_equals")
    return !equal(*field, operand);
  if (c.op == "in")
    return operand.is_array()
      && std::any_of(operand.begin(), operand.end(), [&](const json& x) {
             return equal(*field, x);
           });
  if (c.op == "contains") {
    if (field->is_string())
      return operand.is_string()
        && field->get_ref<const std::string&>().find(
             operand.get_ref<const std::string&>())
        != std::string::npos;
    if (field->is_array())
      return std::any_of(field->begin(), field->end(), [&](const json& x) {
        return equal(x, operand);
      });
    return false;
  }
  if (!field->is_number() || !operand.is_number())
    return false;
  auto cmp = compare_numbers(*field, operand);
  if (c.op == "gt")
    return cmp > 0;
  if (c.op == "gte")
    return cmp >= 0;
  if (c.op == "lt")
    return cmp < 0;
  if (c.op == "lte")
    return cmp <= 0;
  return false;
}

/// The JSON text of an operand, checked against the limits; empty (and
/// `why` set) when it exceeds them.
std::string operand_text(const json& value, std::string& why) {
  auto text = dump(value);
  if (text.size() > max_condition_value_size) {
    why = "longer than " + std::to_string(max_condition_value_size)
      + " bytes as JSON";
    return {};
  }
  auto again = json_limits::parse_json(text, max_condition_value_depth);
  if (again.error != json_limits::failure::none) {
    why = json_limits::too_deep_message(max_condition_value_depth);
    return {};
  }
  return text;
}

/// What type `op` wants for its operand, or null for any.
const char* operand_type_error(std::string_view op, const json& value) {
  if (op == "in" && !value.is_array())
    return "must be an array for in";
  if (op == "exists" && !value.is_boolean())
    return "must be a boolean for exists";
  if ((op == "gt" || op == "gte" || op == "lt" || op == "lte")
      && !value.is_number())
    return "must be a number for gt, gte, lt and lte";
  return nullptr;
}

// -- templates ----------------------------------------------------------------

std::string_view trim(std::string_view str) {
  auto first = str.find_first_not_of(" \t");
  if (first == std::string_view::npos)
    return {};
  auto last = str.find_last_not_of(" \t");
  return str.substr(first, last - first + 1);
}

/// Calls `on_text(text)` for each literal part of `tmpl` and
/// `on_field(path)` for each placeholder, in order, while they return
/// true. A `{{` without a `}}` after it is text.
template<class OnText, class OnField>
void scan(std::string_view tmpl, OnText on_text, OnField on_field) {
  size_t pos = 0;
  while (pos < tmpl.size()) {
    auto open = tmpl.find("{{", pos);
    auto close = open == std::string_view::npos ? std::string_view::npos
                                                : tmpl.find("}}", open + 2);
    if (close == std::string_view::npos) {
      on_text(tmpl.substr(pos));
      return;
    }
    if (!on_text(tmpl.substr(pos, open - pos))
        || !on_field(trim(tmpl.substr(open + 2, close - open - 2))))
      return;
    pos = close + 2;
  }
}

bool valid_template(std::string_view tmpl, std::string& why) {
  bool ok = true;
  scan(
    tmpl,
    [](std::string_view) {
      return true;
    },
    [&](std::string_view path) {
      std::string what;
      if (valid_field_path(path, &what))
        return true;
      why = "placeholder " + quote("{{" + std::string{path} + "}}") + ": "
        + what;
      ok = false;
      return false;
    });
  return ok;
}

/// Appends `text` to `out`, HTML-escaped when `html`, until `out` holds
/// more than `limit` bytes.
void append(std::string& out, std::string_view text, bool html, size_t limit) {
  if (out.size() > limit)
    return;
  if (!html) {
    // One byte more than fits, so that the cut sees where it is.
    auto room = limit - out.size();
    out.append(text.substr(0, room < text.size() ? room + 1 : text.size()));
    return;
  }
  for (auto c : text) {
    if (out.size() > limit)
      return;
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
}

// -- time zones ---------------------------------------------------------------

/// Minutes after midnight of "HH:MM" (00:00 to 23:59), or -1.
int minutes_of(std::string_view hhmm) {
  auto digit = [&](size_t i) {
    return hhmm[i] >= '0' && hhmm[i] <= '9' ? hhmm[i] - '0' : -100;
  };
  if (hhmm.size() != 5 || hhmm[2] != ':')
    return -1;
  int h = digit(0) * 10 + digit(1);
  int m = digit(3) * 10 + digit(4);
  if (h < 0 || h > 23 || m < 0 || m > 59)
    return -1;
  return h * 60 + m;
}

bool plausible_zone_name(std::string_view name) {
  // `localtime` is the host's own zone: it would move with the machine.
  return !name.empty() && name.size() <= max_tz_size && name != "localtime"
    && std::all_of(name.begin(), name.end(), [](char c) {
         return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
           || (c >= '0' && c <= '9') || c == '/' || c == '_' || c == '-'
           || c == '+';
       });
}

/// The zone `name` of the system's tz database, or null. Found zones stay
/// cached (their number is bounded by the database); the database itself
/// is read once, on the first lookup, by the date library.
const date::time_zone* find_zone(const std::string& name) {
  static std::shared_mutex mtx;
  static std::unordered_map<std::string, const date::time_zone*> cache;
  {
    std::shared_lock<std::shared_mutex> guard{mtx};
    auto i = cache.find(name);
    if (i != cache.end())
      return i->second;
  }
  if (!plausible_zone_name(name))
    return nullptr;
  const date::time_zone* zone = nullptr;
  try {
    zone = date::locate_zone(name);
    // Reads the zone's file now, so that a broken one counts as unknown.
    (void)zone->get_info(date::sys_seconds{});
  } catch (...) {
    return nullptr;
  }
  std::unique_lock<std::shared_mutex> guard{mtx};
  cache.emplace(name, zone);
  return zone;
}

/// Unix ms of the end of the year 9999: later times are no one's.
constexpr int64_t max_unix_ms = 253402300799999;

// -- notifications ------------------------------------------------------------

json state_json(const channel_state& x) {
  return {{"state", x.state},
          {"attempts", x.attempts},
          {"next_at", x.next_at},
          {"at", x.at},
          {"error", x.error}};
}

bool read_state(const json& j, const char* key, channel_state& x) {
  auto i = j.find(key);
  return i != j.end() && i->is_object() && read(*i, "state", x.state)
    && read(*i, "attempts", x.attempts) && read(*i, "next_at", x.next_at)
    && read(*i, "at", x.at) && read(*i, "error", x.error);
}

/// A notification's data as JSON; null when it is none.
json data_json(const std::string& text) {
  if (text.empty())
    return nullptr;
  auto parsed = json_limits::parse_json(text, max_data_depth);
  if (parsed.error != json_limits::failure::none)
    return nullptr;
  return std::move(parsed.value);
}

bool done(const notification& x, std::string_view channel,
          const channel_state& st) {
  return !allows(x, channel) || st.state == "sent" || st.state == "skipped"
    || st.state == "failed";
}

std::string random_rule_id() {
  static thread_local std::mt19937_64 gen{std::random_device{}()};
  static constexpr char hex[] = "0123456789abcdef";
  auto n = gen();
  std::string out(16, '0');
  for (auto& c : out) {
    c = hex[n & 0xF];
    n >>= 4;
  }
  return out;
}

} // namespace

// -- priorities and channels --------------------------------------------------

int priority_rank(std::string_view priority) {
  constexpr std::string_view names[] = {"low", "normal", "high", "urgent"};
  for (int i = 0; i < 4; ++i)
    if (priority == names[i])
      return i;
  return -1;
}

bool valid_channel(std::string_view channel) {
  return one_of(all_channels, channel);
}

// -- rules --------------------------------------------------------------------

bool valid_rule_id(std::string_view id) {
  return !id.empty() && id.size() <= 64
    && std::all_of(id.begin(), id.end(), [](char c) {
         return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
           || (c >= '0' && c <= '9') || c == '_' || c == '-';
       });
}

bool valid_field_path(std::string_view path, std::string* why) {
  auto fail = [why](std::string msg) {
    if (why != nullptr)
      *why = std::move(msg);
    return false;
  };
  if (path.empty())
    return fail("empty field path");
  if (path.size() > max_field_path_size)
    return fail("field path longer than " + std::to_string(max_field_path_size)
                + " bytes");
  auto steps = topic::split(path);
  if (steps.size() > max_field_path_steps)
    return fail("field path has more than "
                + std::to_string(max_field_path_steps) + " steps");
  if (std::any_of(steps.begin(), steps.end(), [](std::string_view s) {
        return s.empty();
      }))
    return fail("field path has an empty step");
  auto root = steps[0];
  if (root == "data")
    return true;
  if (root == "headers") {
    if (steps.size() < 2)
      return fail("headers needs a name: headers.<name>");
    return true;
  }
  if (root == "topic" || root == "id" || root == "source" || root == "ts") {
    if (steps.size() > 1)
      return fail(std::string{root} + " has no fields");
    return true;
  }
  return fail("unknown field " + quote(root) + " (fields are "
              + std::string{field_roots} + ")");
}

std::optional<notification_rule>
parse_rule(const json& body, const std::string& org, const std::string& id,
           std::string& error) {
  constexpr std::string_view fields[] = {
    "id",       "topic",    "when",    "recipients", "title",      "body",
    "priority", "channels", "enabled", "org",        "created_at", "updated_at",
  };
  failer fail{error};
  if (!body.is_object())
    return fail("body", "must be a JSON object");
  if (auto key = unknown_field(body, fields))
    return fail(name_of(*key), "unknown field");
  notification_rule r;
  r.org = org;
  auto end = body.end();
  // The fields to_json adds; set by whoever stores the rule.
  if (auto i = body.find("org"); i != end && (!i->is_string() || *i != org))
    return fail("org", "not the org of the token");
  for (auto key : {"created_at", "updated_at"})
    if (auto i = body.find(key); i != end && !i->is_number_integer())
      return fail(key, "must be an integer");
  // id
  auto i = body.find("id");
  if (i != end && !i->is_string())
    return fail("id", "must be a string");
  if (!id.empty()) {
    if (!valid_rule_id(id))
      return fail("id", "not a rule id (1 to 64 of A-Z, a-z, 0-9, _ and -)");
    if (i != end && *i != id)
      return fail("id", "differs from the id in the path");
    r.id = id;
  } else if (i != end) {
    r.id = i->get<std::string>();
    if (!valid_rule_id(r.id))
      return fail("id", "not a rule id (1 to 64 of A-Z, a-z, 0-9, _ and -)");
  } else {
    r.id = random_rule_id();
  }
  // topic
  i = body.find("topic");
  if (i == end)
    return fail("topic", "missing");
  if (!i->is_string())
    return fail("topic", "must be a string");
  r.topic = i->get<std::string>();
  std::string why;
  if (!topic::valid_pattern(r.topic, &why))
    return fail("topic", why);
  claims token;
  token.org = org;
  if (!may_subscribe(token, r.topic))
    return fail("topic", "not inside events." + org + ".>");
  // when
  if (i = body.find("when"); i != end) {
    if (!i->is_array())
      return fail("when", "must be an array");
    if (i->size() > max_rule_conditions)
      return fail("when",
                  "more than " + std::to_string(max_rule_conditions)
                    + " conditions");
    constexpr std::string_view condition_fields[] = {"field", "op", "value"};
    for (size_t n = 0; n < i->size(); ++n) {
      auto& cj = (*i)[n];
      auto where = at("when", n);
      if (!cj.is_object())
        return fail(where, "must be an object");
      if (auto key = unknown_field(cj, condition_fields))
        return fail(where + "." + name_of(*key), "unknown field");
      rule_condition c;
      auto f = cj.find("field");
      if (f == cj.end())
        return fail(where + ".field", "missing");
      if (!f->is_string())
        return fail(where + ".field", "must be a string");
      c.field = f->get<std::string>();
      if (!valid_field_path(c.field, &why))
        return fail(where + ".field", why);
      auto op = cj.find("op");
      if (op == cj.end())
        return fail(where + ".op", "missing");
      if (!op->is_string())
        return fail(where + ".op", "must be a string");
      c.op = op->get<std::string>();
      if (!one_of(operators, c.op))
        return fail(where + ".op", "unknown operator " + quote(c.op));
      auto v = cj.find("value");
      if (v == cj.end())
        return fail(where + ".value", "missing");
      if (auto what = operand_type_error(c.op, *v))
        return fail(where + ".value", what);
      c.value = operand_text(*v, why);
      if (c.value.empty())
        return fail(where + ".value", why);
      r.when.push_back(std::move(c));
    }
  }
  // recipients
  i = body.find("recipients");
  if (i == end)
    return fail("recipients", "missing (users, fields or room_participants)");
  if (!i->is_object())
    return fail("recipients", "must be an object");
  constexpr std::string_view recipient_fields[] = {"users", "fields",
                                                   "room_participants"};
  if (auto key = unknown_field(*i, recipient_fields))
    return fail("recipients." + name_of(*key), "unknown field");
  auto& rj = *i;
  auto too_many = [&] {
    return fail("recipients",
                "more than " + std::to_string(max_rule_recipients)
                  + " users and fields");
  };
  if (auto u = rj.find("users"); u != rj.end()) {
    if (!u->is_array())
      return fail("recipients.users", "must be an array");
    if (u->size() > max_rule_recipients)
      return too_many();
    for (size_t n = 0; n < u->size(); ++n) {
      auto& x = (*u)[n];
      if (!x.is_string())
        return fail(at("recipients.users", n), "must be a string");
      if (!rooms::valid_participant_id(x.get_ref<const std::string&>(), false))
        return fail(at("recipients.users", n),
                    "not a user id (1 to 128 bytes, no control characters)");
      r.recipients.users.push_back(x.get<std::string>());
    }
  }
  if (auto fs = rj.find("fields"); fs != rj.end()) {
    if (!fs->is_array())
      return fail("recipients.fields", "must be an array");
    if (fs->size() + r.recipients.users.size() > max_rule_recipients)
      return too_many();
    for (size_t n = 0; n < fs->size(); ++n) {
      auto& x = (*fs)[n];
      if (!x.is_string())
        return fail(at("recipients.fields", n), "must be a string");
      if (!valid_field_path(x.get_ref<const std::string&>(), &why))
        return fail(at("recipients.fields", n), why);
      r.recipients.fields.push_back(x.get<std::string>());
    }
  }
  if (auto rp = rj.find("room_participants"); rp != rj.end()) {
    if (!rp->is_boolean())
      return fail("recipients.room_participants", "must be a boolean");
    r.recipients.room_participants = rp->get<bool>();
  }
  if (r.recipients.users.empty() && r.recipients.fields.empty()
      && !r.recipients.room_participants)
    return fail("recipients",
                "names no one (users, fields or room_participants)");
  // title and body
  i = body.find("title");
  if (i == end)
    return fail("title", "missing");
  if (!i->is_string())
    return fail("title", "must be a string");
  r.title = i->get<std::string>();
  if (r.title.empty())
    return fail("title", "empty");
  if (r.title.size() > max_title_size)
    return fail("title",
                "longer than " + std::to_string(max_title_size) + " bytes");
  if (!valid_template(r.title, why))
    return fail("title", why);
  if (i = body.find("body"); i != end) {
    if (!i->is_string())
      return fail("body", "must be a string");
    r.body = i->get<std::string>();
    if (r.body.size() > max_body_size)
      return fail("body",
                  "longer than " + std::to_string(max_body_size) + " bytes");
    if (!valid_template(r.body, why))
      return fail("body", why);
  }
  // priority, channels, enabled
  if (i = body.find("priority"); i != end) {
    if (!i->is_string())
      return fail("priority", "must be a string");
    r.priority = i->get<std::string>();
    if (priority_rank(r.priority) < 0)
      return fail("priority",
                  "unknown priority " + quote(r.priority)
                    + " (low, normal, high or urgent)");
  }
  if (i = body.find("channels"); i != end) {
    if (!i->is_array())
      return fail("channels", "must be an array");
    for (size_t n = 0; n < i->size(); ++n) {
      auto& x = (*i)[n];
      if (!x.is_string())
        return fail(at("channels", n), "must be a string");
      auto& ch = x.get_ref<const std::string&>();
      if (!valid_channel(ch))
        return fail(at("channels", n),
                    "unknown channel " + quote(ch)
                      + " (websocket, push or email)");
      if (std::find(r.channels.begin(), r.channels.end(), ch)
          != r.channels.end())
        return fail(at("channels", n), quote(ch) + " twice");
      r.channels.push_back(ch);
    }
  } else {
    r.channels.assign(std::begin(all_channels), std::end(all_channels));
  }
  if (i = body.find("enabled"); i != end) {
    if (!i->is_boolean())
      return fail("enabled", "must be a boolean");
    r.enabled = i->get<bool>();
  }
  return r;
}

json to_json(const notification_rule& x) {
  auto when = json::array();
  for (auto& c : x.when) {
    auto value = json_limits::parse_json(c.value, max_condition_value_depth);
    when.push_back(
      json{{"field", c.field},
           {"op", c.op},
           {"value",
            value.error == json_limits::failure::none ? std::move(value.value)
                                                      : json(nullptr)}});
  }
  return {{"id", x.id},
          {"org", x.org},
          {"topic", x.topic},
          {"when", std::move(when)},
          {"recipients",
           {{"users", strings_json(x.recipients.users)},
            {"fields", strings_json(x.recipients.fields)},
            {"room_participants", x.recipients.room_participants}}},
          {"title", x.title},
          {"body", x.body},
          {"priority", x.priority},
          {"channels", strings_json(x.channels)},
          {"enabled", x.enabled},
          {"created_at", x.created_at},
          {"updated_at", x.updated_at}};
}

std::optional<notification_rule> rule_from_json(const json& j) {
  notification_rule x;
  if (!j.is_object() || !read(j, "id", x.id) || !read(j, "org", x.org)
      || !read(j, "topic", x.topic) || !read(j, "title", x.title)
      || !read(j, "body", x.body) || !read(j, "priority", x.priority)
      || !read(j, "enabled", x.enabled) || !read(j, "created_at", x.created_at)
      || !read(j, "updated_at", x.updated_at))
    return std::nullopt;
  auto when = j.find("when");
  auto recipients = j.find("recipients");
  auto channels = j.find("channels");
  if (when == j.end() || !when->is_array() || recipients == j.end()
      || !recipients->is_object() || channels == j.end()
      || !read_strings(*channels, x.channels))
    return std::nullopt;
  for (auto& cj : *when) {
    rule_condition c;
    auto v = cj.is_object() ? cj.find("value") : cj.end();
    if (!cj.is_object() || !read(cj, "field", c.field) || !read(cj, "op", c.op)
        || v == cj.end())
      return std::nullopt;
    std::string why;
    c.value = operand_text(*v, why);
    if (c.value.empty())
      return std::nullopt;
    x.when.push_back(std::move(c));
  }
  auto users = recipients->find("users");
  auto fields = recipients->find("fields");
  if (users == recipients->end() || !read_strings(*users, x.recipients.users)
      || fields == recipients->end()
      || !read_strings(*fields, x.recipients.fields)
      || !read(*recipients, "room_participants",
               x.recipients.room_participants))
    return std::nullopt;
  return x;
}

std::optional<json> event_field(const event& ev, const json& data,
                                std::string_view path) {
  json scratch;
  if (auto p = lookup(ev, data, path, scratch))
    return *p;
  return std::nullopt;
}

bool matches(const notification_rule& rule, const event& ev, const json& data) {
  if (!topic::matches(rule.topic, ev.topic))
    return false;
  return std::all_of(rule.when.begin(), rule.when.end(),
                     [&](const rule_condition& c) {
                       return holds(c, ev, data);
                     });
}

std::string render(std::string_view tmpl, const event& ev, const json& data,
                   bool html, size_t limit) {
  std::string out;
  auto room = [&] {
    return out.size() <= limit;
  };
  scan(
    tmpl,
    [&](std::string_view text) {
      append(out, text, html, limit);
      return room();
    },
    [&](std::string_view path) {
      json scratch;
      if (auto v = lookup(ev, data, path, scratch)) {
        if (v->is_string())
          append(out, v->get_ref<const std::string&>(), html, limit);
        else
          append(out, dump(*v), html, limit);
      }
      return room();
    });
  if (out.size() <= limit)
    return out;
  auto n = utf8_prefix(out, limit);
  if (html) {
    // Every `&` of the output starts an entity (the longest, `&quot;`, has
    // six bytes): drop one the cut left open.
    auto amp = out.rfind('&', n == 0 ? 0 : n - 1);
    if (amp != std::string::npos && n - amp < 6 && out.find(';', amp) >= n)
      n = amp;
  }
  out.resize(n);
  return out;
}

std::vector<std::string> direct_recipients(const notification_rule& rule,
                                           const event& ev, const json& data) {
  std::vector<std::string> out;
  std::unordered_set<std::string> seen;
  auto add = [&](const std::string& id) {
    if (out.size() < max_direct_recipients
        && rooms::valid_participant_id(id, false) && seen.insert(id).second)
      out.push_back(id);
  };
  for (auto& user : rule.recipients.users)
    add(user);
  for (auto& path : rule.recipients.fields) {
    json scratch;
    auto v = lookup(ev, data, path, scratch);
    if (v == nullptr)
      continue;
    if (v->is_string()) {
      add(v->get_ref<const std::string&>());
    } else if (v->is_array()) {
      for (auto& x : *v) {
        if (out.size() >= max_direct_recipients)
          break;
        if (x.is_string())
          add(x.get_ref<const std::string&>());
      }
    }
  }
  return out;
}

std::string notification_id(std::string_view rule_id, std::string_view event_id,
                            std::string_view user) {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx{EVP_MD_CTX_new(),
                                                              EVP_MD_CTX_free};
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  bool ok = ctx != nullptr
    && EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) == 1;
  for (auto part : {rule_id, event_id, user}) {
    // A length prefix, so that ("ab", "c") and ("a", "bc") differ.
    unsigned char size[8];
    uint64_t n = part.size();
    for (int i = 7; i >= 0; --i, n >>= 8)
      size[i] = static_cast<unsigned char>(n & 0xFF);
    ok = ok && EVP_DigestUpdate(ctx.get(), size, sizeof(size)) == 1
      && EVP_DigestUpdate(ctx.get(), part.data(), part.size()) == 1;
  }
  ok = ok && EVP_DigestFinal_ex(ctx.get(), digest, &len) == 1 && len >= 16;
  if (!ok)
    throw std::runtime_error("notification_id: SHA-256 failed");
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  out.reserve(32);
  for (size_t i = 0; i < 16; ++i) {
    out += hex[digest[i] >> 4];
    out += hex[digest[i] & 0xF];
  }
  return out;
}

// -- contact points -----------------------------------------------------------

namespace {

bool valid_email(std::string_view email) {
  auto at_sign = email.find('@');
  if (email.size() > max_email_size || at_sign == 0
      || at_sign == std::string_view::npos || at_sign + 1 == email.size()
      || email.find('@', at_sign + 1) != std::string_view::npos)
    return false;
  constexpr std::string_view refused = "<>,;\"()\\";
  return std::none_of(email.begin(), email.end(), [&](char c) {
    return static_cast<unsigned char>(c) <= 0x20 || c == 0x7f
      || refused.find(c) != std::string_view::npos;
  });
}

bool control_free(std::string_view str) {
  return std::none_of(str.begin(), str.end(), [](char c) {
    return static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
  });
}

} // namespace

std::optional<contact> parse_contact(const json& body, const std::string& org,
                                     const std::string& user,
                                     std::string& error) {
  constexpr std::string_view fields[] = {"email", "devices", "quiet_hours",
                                         "org",   "user",    "updated_at"};
  failer fail{error};
  if (!body.is_object())
    return fail("body", "must be a JSON object");
  if (auto key = unknown_field(body, fields))
    return fail(name_of(*key), "unknown field");
  contact x;
  x.org = org;
  x.user = user;
  auto end = body.end();
  // The fields to_json adds; set by whoever stores the contact.
  if (auto i = body.find("org"); i != end && (!i->is_string() || *i != org))
    return fail("org", "not the org of the token");
  if (auto i = body.find("user"); i != end && (!i->is_string() || *i != user))
    return fail("user", "not the user of the path");
  if (auto i = body.find("updated_at"); i != end && !i->is_number_integer())
    return fail("updated_at", "must be an integer");
  if (auto i = body.find("email"); i != end && !i->is_null()) {
    if (!i->is_string())
      return fail("email", "must be a string");
    x.email = i->get<std::string>();
    if (!x.email.empty() && !valid_email(x.email))
      return fail("email", "not an email address (local@domain)");
  }
  if (auto i = body.find("devices"); i != end) {
    if (!i->is_array())
      return fail("devices", "must be an array");
    if (i->size() > max_devices)
      return fail("devices",
                  "more than " + std::to_string(max_devices) + " devices");
    constexpr std::string_view device_fields[] = {"platform", "token"};
    for (size_t n = 0; n < i->size(); ++n) {
      auto& dj = (*i)[n];
      auto where = at("devices", n);
      if (!dj.is_object())
        return fail(where, "must be an object");
      if (auto key = unknown_field(dj, device_fields))
        return fail(where + "." + name_of(*key), "unknown field");
      device d;
      auto p = dj.find("platform");
      if (p == dj.end())
        return fail(where + ".platform", "missing");
      if (!p->is_string())
        return fail(where + ".platform", "must be a string");
      d.platform = p->get<std::string>();
      if (d.platform != "fcm" && d.platform != "apns"
          && d.platform != "webpush")
        return fail(where + ".platform",
                    "unknown platform " + quote(d.platform)
                      + " (fcm, apns or webpush)");
      auto t = dj.find("token");
      if (t == dj.end())
        return fail(where + ".token", "missing");
      if (!t->is_string())
        return fail(where + ".token", "must be a string");
      d.token = t->get<std::string>();
      if (d.token.empty())
        return fail(where + ".token", "empty");
      if (d.token.size() > max_device_token_size)
        return fail(where + ".token",
                    "longer than " + std::to_string(max_device_token_size)
                      + " bytes");
      if (!control_free(d.token))
        return fail(where + ".token", "contains control characters");
      x.devices.push_back(std::move(d));
    }
  }
  if (auto i = body.find("quiet_hours"); i != end && !i->is_null()) {
    if (!i->is_object())
      return fail("quiet_hours", "must be an object or null");
    constexpr std::string_view quiet_fields[] = {"start", "end", "tz"};
    if (auto key = unknown_field(*i, quiet_fields))
      return fail("quiet_hours." + name_of(*key), "unknown field");
    for (auto key : {"start", "end", "tz"}) {
      auto f = i->find(key);
      auto where = std::string{"quiet_hours."} + key;
      if (f == i->end())
        return fail(where, "missing");
      if (!f->is_string())
        return fail(where, "must be a string");
    }
    x.quiet.start = i->at("start").get<std::string>();
    x.quiet.end = i->at("end").get<std::string>();
    x.quiet.tz = i->at("tz").get<std::string>();
    if (minutes_of(x.quiet.start) < 0)
      return fail("quiet_hours.start", "not a time HH:MM (00:00 to 23:59)");
    if (minutes_of(x.quiet.end) < 0)
      return fail("quiet_hours.end", "not a time HH:MM (00:00 to 23:59)");
    if (find_zone(x.quiet.tz) == nullptr)
      return fail("quiet_hours.tz", "unknown time zone " + quote(x.quiet.tz));
  }
  return x;
}

json to_json(const contact& x) {
  auto devices = json::array();
  for (auto& d : x.devices)
    devices.push_back({{"platform", d.platform}, {"token", d.token}});
  json quiet = nullptr;
  if (!x.quiet.start.empty())
    quiet
      = {{"start", x.quiet.start}, {"end", x.quiet.end}, {"tz", x.quiet.tz}};
  return {{"org", x.org},
          {"user", x.user},
          {"email", x.email},
          {"devices", std::move(devices)},
          {"quiet_hours", std::move(quiet)},
          {"updated_at", x.updated_at}};
}

std::optional<contact> contact_from_json(const json& j) {
  contact x;
  if (!j.is_object() || !read(j, "org", x.org) || !read(j, "user", x.user)
      || !read(j, "email", x.email) || !read(j, "updated_at", x.updated_at))
    return std::nullopt;
  auto devices = j.find("devices");
  auto quiet = j.find("quiet_hours");
  if (devices == j.end() || !devices->is_array() || quiet == j.end()
      || !(quiet->is_null() || quiet->is_object()))
    return std::nullopt;
  for (auto& dj : *devices) {
    device d;
    if (!dj.is_object() || !read(dj, "platform", d.platform)
        || !read(dj, "token", d.token))
      return std::nullopt;
    x.devices.push_back(std::move(d));
  }
  if (quiet->is_object()
      && (!read(*quiet, "start", x.quiet.start)
          || !read(*quiet, "end", x.quiet.end)
          || !read(*quiet, "tz", x.quiet.tz)))
    return std::nullopt;
  return x;
}

int64_t quiet_until(const quiet_hours& q, int64_t unix_ms) {
  using std::chrono::milliseconds;
  using std::chrono::minutes;
  auto start = minutes_of(q.start);
  auto end = minutes_of(q.end);
  if (start < 0 || end < 0 || start == end || unix_ms < 0
      || unix_ms > max_unix_ms)
    return 0;
  auto zone = find_zone(q.tz);
  if (zone == nullptr)
    return 0;
  try {
    date::sys_time<milliseconds> now{milliseconds{unix_ms}};
    auto local = zone->to_local(now);
    auto day = date::floor<date::days>(local);
    auto tod = local - day;
    auto from = minutes{start};
    auto until = minutes{end};
    bool quiet = start < end ? (tod >= from && tod < until)
                             : (tod >= from || tod < until);
    if (!quiet)
      return 0;
    // The next local `end`: today when it is still ahead, else tomorrow.
    auto target = (tod < until ? day : day + date::days{1}) + until;
    // A skipped `end` gives the instant of the skip; of a repeated one the
    // first occurrence, unless that has passed (we are in the second).
    auto t = zone->to_sys(target, date::choose::earliest);
    if (t <= now)
      t = zone->to_sys(target, date::choose::latest);
    if (t <= now)
      return 0;
    return std::chrono::duration_cast<milliseconds>(t.time_since_epoch())
      .count();
  } catch (...) {
    return 0;
  }
}

// -- notifications ------------------------------------------------------------

bool allows(const notification& x, std::string_view channel) {
  return std::find(x.channels.begin(), x.channels.end(), channel)
    != x.channels.end();
}

bool settled(const notification& x) {
  return x.acked || x.read
    || (done(x, "websocket", x.websocket) && done(x, "push", x.push)
        && done(x, "email", x.email));
}

json to_json(const notification& x) {
  return {{"id", x.id},
          {"org", x.org},
          {"user", x.user},
          {"rule_id", x.rule_id},
          {"event_id", x.event_id},
          {"topic", x.topic},
          {"title", x.title},
          {"body", x.body},
          {"html_body", x.html_body},
          {"priority", x.priority},
          {"data", data_json(x.data)},
          {"ts", x.ts},
          {"channels", strings_json(x.channels)},
          {"websocket", state_json(x.websocket)},
          {"push", state_json(x.push)},
          {"email", state_json(x.email)},
          {"acked", x.acked},
          {"read", x.read},
          {"read_at", x.read_at}};
}

std::optional<notification> notification_from_json(const json& j) {
  notification x;
  if (!j.is_object() || !read(j, "id", x.id) || !read(j, "org", x.org)
      || !read(j, "user", x.user) || !read(j, "rule_id", x.rule_id)
      || !read(j, "event_id", x.event_id) || !read(j, "topic", x.topic)
      || !read(j, "title", x.title) || !read(j, "body", x.body)
      || !read(j, "html_body", x.html_body) || !read(j, "priority", x.priority)
      || !read(j, "ts", x.ts) || !read_state(j, "websocket", x.websocket)
      || !read_state(j, "push", x.push) || !read_state(j, "email", x.email)
      || !read(j, "acked", x.acked) || !read(j, "read", x.read)
      || !read(j, "read_at", x.read_at))
    return std::nullopt;
  auto data = j.find("data");
  auto channels = j.find("channels");
  if (data == j.end() || channels == j.end()
      || !read_strings(*channels, x.channels))
    return std::nullopt;
  x.data = dump(*data);
  return x;
}

std::string notification_frame(const notification& x) {
  auto str = [](const std::string& s) {
    return dump(json(s));
  };
  std::string out = R"({"type":"notification","id":)";
  out += str(x.id);
  out += R"(,"title":)";
  out += str(x.title);
  out += R"(,"body":)";
  out += str(x.body);
  out += R"(,"priority":)";
  out += str(x.priority);
  out += R"(,"data":)";
  out += dump(data_json(x.data));
  out += R"(,"ts":)";
  out += std::to_string(x.ts);
  out += '}';
  return out;
}

} // namespace switchyard
