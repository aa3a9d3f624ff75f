#include "schemas/rooms.hpp"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "schemas/messages.hpp"
#include "schemas/topic.hpp"

namespace switchyard {

const participant* room_record::find(std::string_view pid) const {
  for (auto& p : participants)
    if (p.id == pid)
      return &p;
  return nullptr;
}

bool room_record::has_user(std::string_view user) const {
  auto p = find(user);
  return p != nullptr && !p->is_agent();
}

bool room_record::visible_to(const caller& who) const {
  if (who.org != org)
    return false;
  return !is_private || who.admin || has_user(who.user);
}

std::vector<std::string> room_record::audience() const {
  std::vector<std::string> out;
  for (auto& p : participants)
    if (!p.is_agent())
      out.push_back(p.id);
  return out;
}

nlohmann::json to_json(const participant& x) {
  nlohmann::json j{{"id", x.id}, {"kind", x.kind}, {"joined_at", x.joined_at}};
  if (x.is_agent()) {
    j["behavior"] = x.behavior;
    j["auto_respond"] = x.auto_respond;
    j["config"] = x.config.empty()
      ? nlohmann::json::object()
      : nlohmann::json::parse(x.config, nullptr, false);
  }
  return j;
}

nlohmann::json to_json(const room_record& x) {
  auto parts = nlohmann::json::array();
  for (auto& p : x.participants)
    parts.push_back(to_json(p));
  return {{"id", x.id},
          {"org", x.org},
          {"name", x.name},
          {"private", x.is_private},
          {"created_by", x.created_by},
          {"created_at", x.created_at},
          {"participants", std::move(parts)}};
}

nlohmann::json to_json(const room_message& x) {
  nlohmann::json j{
    {"message_id", x.message_id},   {"seq", x.seq},   {"author", x.author},
    {"author_kind", x.author_kind}, {"text", x.text}, {"ts", x.ts}};
  if (!x.state.empty())
    j["state"] = x.state;
  if (!x.reason.empty())
    j["reason"] = x.reason;
  if (!x.reply_to.empty())
    j["reply_to"] = x.reply_to;
  return j;
}

namespace {

template<class T>
bool read(const nlohmann::json& j, const char* key, T& out) {
  auto i = j.find(key);
  if (i == j.end())
    return false;
  if constexpr (std::is_same_v<T, std::string>) {
    if (!i->is_string())
      return false;
  } else if constexpr (std::is_same_v<T, bool>) {
    if (!i->is_boolean())
      return false;
  } else if constexpr (std::is_unsigned_v<T>) {
    // Sequence numbers: unsigned, and far from overflowing when counted on.
    if (!i->is_number_unsigned() || i->template get<T>() > (T{1} << 53))
      return false;
  } else {
    if (!i->is_number_integer())
      return false;
  }
  out = i->get<T>();
  return true;
}

} // namespace

std::optional<room_record> room_from_json(const nlohmann::json& j) {
  room_record x;
  if (!j.is_object() || !read(j, "id", x.id) || !read(j, "org", x.org)
      || !read(j, "name", x.name) || !read(j, "private", x.is_private)
      || !read(j, "created_by", x.created_by)
      || !read(j, "created_at", x.created_at))
    return std::nullopt;
  auto ps = j.find("participants");
  if (ps == j.end() || !ps->is_array())
    return std::nullopt;
  for (auto& pj : *ps) {
    participant p;
    if (!pj.is_object() || !read(pj, "id", p.id) || !read(pj, "kind", p.kind)
        || !read(pj, "joined_at", p.joined_at))
      return std::nullopt;
    if (p.is_agent()) {
      auto cfg = pj.find("config");
      if (!read(pj, "behavior", p.behavior)
          || !read(pj, "auto_respond", p.auto_respond) || cfg == pj.end())
        return std::nullopt;
      p.config = cfg->dump();
    }
    x.participants.push_back(std::move(p));
  }
  return x;
}

std::optional<room_message> message_from_json(const nlohmann::json& j) {
  room_message x;
  if (!j.is_object() || !read(j, "message_id", x.message_id)
      || !read(j, "seq", x.seq) || !read(j, "author", x.author)
      || !read(j, "author_kind", x.author_kind) || !read(j, "text", x.text)
      || !read(j, "ts", x.ts))
    return std::nullopt;
  read(j, "state", x.state);
  read(j, "reason", x.reason);
  read(j, "reply_to", x.reply_to);
  return x;
}

namespace rooms {

namespace {

constexpr std::string_view source_token = "conversations";
constexpr std::string_view resource_token = "conversation";

bool token_may_be(std::string_view pattern_token, std::string_view value) {
  return pattern_token == "*" || pattern_token == ">" || pattern_token == value;
}

bool id_chars(std::string_view id) {
  return std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
      || (c >= '0' && c <= '9') || c == '_' || c == '-';
  });
}

} // namespace

std::string topic(std::string_view org, std::string_view event,
                  std::string_view room) {
  std::string out = "events.";
  out.append(org).append(".conversations.conversation.");
  out.append(event).append(".").append(room);
  return out;
}

bool is_room_topic(std::string_view t) {
  auto parts = topic::split(t);
  return parts.size() == 6 && parts[0] == "events" && parts[2] == source_token
    && parts[3] == resource_token;
}

std::string_view event_of(std::string_view room_topic) {
  auto parts = topic::split(room_topic);
  return parts.size() == 6 ? parts[4] : std::string_view{};
}

std::string_view room_of(std::string_view room_topic) {
  auto parts = topic::split(room_topic);
  return parts.size() == 6 ? parts[5] : std::string_view{};
}

std::string_view room_of_pattern(std::string_view pattern) {
  auto parts = topic::split(pattern);
  // A `>` before the last token stands for the room token too: no room.
  if (parts.size() != 6 || parts[0] != "events")
    return {};
  for (size_t i = 2; i < 5; ++i)
    if (parts[i] == ">")
      return {};
  if (!token_may_be(parts[2], source_token)
      || !token_may_be(parts[3], resource_token))
    return {};
  if (parts[5] == "*" || parts[5] == ">")
    return {};
  return parts[5];
}

bool may_match_streams(std::string_view pattern, std::string_view org) {
  auto parts = topic::split(pattern);
  std::string_view wanted[]
    = {"events", org, source_token, resource_token, "message_stream", "*"};
  for (size_t i = 0; i < parts.size(); ++i) {
    if (parts[i] == ">")
      return i < 6;
    if (i >= 6)
      return false;
    if (i < 5 && !token_may_be(parts[i], wanted[i]))
      return false;
  }
  return parts.size() == 6;
}

bool valid_room_id(std::string_view id) {
  constexpr std::string_view prefix = "conv_";
  if (id.size() != prefix.size() + 24 || id.substr(0, prefix.size()) != prefix)
    return false;
  auto hex = id.substr(prefix.size());
  return std::all_of(hex.begin(), hex.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
  });
}

bool valid_participant_id(std::string_view id, bool agent) {
  if (id.empty() || id.size() > 128)
    return false;
  if (agent)
    return id.size() <= 64 && id_chars(id);
  return std::none_of(id.begin(), id.end(), [](char c) {
    return static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
  });
}

bool in_audience(const event& ev, const std::string& user) {
  auto i = ev.headers.find(std::string{audience_header});
  if (i == ev.headers.end())
    return false;
  if (i->second == "*")
    return true;
  auto list = nlohmann::json::parse(i->second, nullptr, false);
  if (!list.is_array())
    return false;
  for (auto& x : list)
    if (x.is_string() && x.get_ref<const std::string&>() == user)
      return true;
  return false;
}

} // namespace rooms

} // namespace switchyard
