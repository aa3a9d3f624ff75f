// Stand-in for the JSON forms of schemas/rooms.cpp, linked into
// jetstream_store_test only while switchyard_core lacks that file (see
// tests/CMakeLists.txt): the store test needs some JSON form that round-trips,
// not that one. Delete this file once schemas/rooms.cpp is in the library.

#include <nlohmann/json.hpp>

#include "schemas/rooms.hpp"

namespace switchyard {

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
  } else {
    if (!i->is_number_integer())
      return false;
  }
  out = i->get<T>();
  return true;
}

} // namespace

nlohmann::json to_json(const participant& x) {
  return {{"id", x.id},
          {"kind", x.kind},
          {"behavior", x.behavior},
          {"auto_respond", x.auto_respond},
          {"config", x.config},
          {"joined_at", x.joined_at}};
}

nlohmann::json to_json(const room_record& x) {
  auto participants = nlohmann::json::array();
  for (auto& p : x.participants)
    participants.push_back(to_json(p));
  return {{"id", x.id},
          {"org", x.org},
          {"name", x.name},
          {"private", x.is_private},
          {"created_by", x.created_by},
          {"created_at", x.created_at},
          {"participants", std::move(participants)}};
}

nlohmann::json to_json(const room_message& x) {
  return {{"message_id", x.message_id},
          {"seq", x.seq},
          {"author", x.author},
          {"author_kind", x.author_kind},
          {"text", x.text},
          {"ts", x.ts},
          {"state", x.state},
          {"reason", x.reason},
          {"reply_to", x.reply_to}};
}

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
        || !read(pj, "behavior", p.behavior)
        || !read(pj, "auto_respond", p.auto_respond)
        || !read(pj, "config", p.config) || !read(pj, "joined_at", p.joined_at))
      return std::nullopt;
    x.participants.push_back(std::move(p));
  }
  return x;
}

std::optional<room_message> message_from_json(const nlohmann::json& j) {
  room_message x;
  if (!j.is_object() || !read(j, "message_id", x.message_id)
      || !read(j, "seq", x.seq) || !read(j, "author", x.author)
      || !read(j, "author_kind", x.author_kind) || !read(j, "text", x.text)
      || !read(j, "ts", x.ts) || !read(j, "state", x.state)
      || !read(j, "reason", x.reason) || !read(j, "reply_to", x.reply_to))
    return std::nullopt;
  return x;
}

} // namespace switchyard
