#include "schemas/frames.hpp"

#include <algorithm>

#include <nlohmann/json.hpp>

namespace switchyard::frames {

size_t frame_header(opcode op, uint64_t size, char* out) {
  out[0] = static_cast<char>(0x80 | static_cast<uint8_t>(op));
  if (size < 126) {
    out[1] = static_cast<char>(size);
    return 2;
  }
  if (size <= 0xFFFF) {
    out[1] = static_cast<char>(126);
    out[2] = static_cast<char>((size >> 8) & 0xFF);
    out[3] = static_cast<char>(size & 0xFF);
    return 4;
  }
  out[1] = static_cast<char>(127);
  for (int i = 0; i < 8; ++i)
    out[2 + i] = static_cast<char>((size >> (56 - 8 * i)) & 0xFF);
  return 10;
}

std::string ws_frame(opcode op, std::string_view payload) {
  char header[10];
  auto len = frame_header(op, payload.size(), header);
  std::string out;
  out.reserve(len + payload.size());
  out.append(header, len);
  out.append(payload.data(), payload.size());
  return out;
}

std::string_view subprotocol_name(wire_format format) {
  switch (format) {
    case wire_format::ndjson: return "switchyard.v1.ndjson";
    case wire_format::msgpack: return "switchyard.v1.msgpack";
    default: return "switchyard.v1.json";
  }
}

std::optional<wire_format> negotiate_subprotocol(std::string_view offered) {
  bool any = false;
  while (!offered.empty()) {
    auto comma = offered.find(',');
    auto token = offered.substr(0, comma);
    offered = comma == std::string_view::npos ? std::string_view{}
                                              : offered.substr(comma + 1);
    while (!token.empty() && (token.front() == ' ' || token.front() == '\t'))
      token.remove_prefix(1);
    while (!token.empty() && (token.back() == ' ' || token.back() == '\t'))
      token.remove_suffix(1);
    if (token.empty())
      continue;
    any = true;
    for (auto format :
         {wire_format::json, wire_format::ndjson, wire_format::msgpack})
      if (token == subprotocol_name(format))
        return format;
  }
  if (any)
    return std::nullopt;
  return wire_format::json;
}

std::string encode_message(wire_format format, std::string_view json) {
  switch (format) {
    case wire_format::ndjson: {
      std::string out;
      out.reserve(json.size() + 1);
      out.append(json.data(), json.size());
      out += '\n';
      return out;
    }
    case wire_format::msgpack: {
      // Our own JSON text: valid, and no deeper than the input limits let
      // any event data be.
      auto bytes = nlohmann::json::to_msgpack(nlohmann::json::parse(json));
      return std::string(bytes.begin(), bytes.end());
    }
    default: return ws_frame(opcode::text, json);
  }
}

std::string ws_close(uint16_t code, std::string_view reason) {
  std::string payload;
  payload.push_back(static_cast<char>(code >> 8));
  payload.push_back(static_cast<char>(code & 0xFF));
  // Control frames carry <= 125 bytes; cut at a UTF-8 boundary, since the
  // reason must be valid UTF-8 (RFC 6455 5.5.1).
  size_t n = std::min<size_t>(reason.size(), 123);
  while (n < reason.size() && n > 0
         && (static_cast<uint8_t>(reason[n]) & 0xC0) == 0x80)
    --n;
  payload.append(reason.substr(0, n));
  return ws_frame(opcode::close, payload);
}

std::string json_string(std::string_view str) {
  return nlohmann::json(std::string{str})
    .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string event_json(std::string_view subscription, const event& ev) {
  // Topics and patterns are [A-Za-z0-9_-.*>] by grammar and `data` is
  // validated JSON text, so only the id needs escaping.
  std::string out;
  out.reserve(64 + subscription.size() + ev.topic.size() + ev.id.size()
              + ev.data.size());
  out += R"({"type":"event","subscription":")";
  out += subscription;
  out += R"(","topic":")";
  out += ev.topic;
  out += R"(","id":)";
  out += json_string(ev.id);
  out += R"(,"ts":)";
  out += std::to_string(ev.ts);
  if (ev.seq != 0) {
    out += R"(,"seq":)";
    out += std::to_string(ev.seq);
    out += R"(,"epoch":)";
    out += json_string(ev.epoch);
  }
  out += R"(,"data":)";
  out += ev.data.empty() ? std::string_view{"null"} : std::string_view{ev.data};
  out += '}';
  return out;
}

frame_ptr encode_event(wire_format format, std::string_view subscription,
                       const event& ev) {
  return std::make_shared<const std::string>(
    encode_message(format, event_json(subscription, ev)));
}

std::string ok_json(std::string_view id) {
  return R"({"type":"ok","id":)" + json_string(id) + "}";
}

std::string recovered_json(std::string_view id, const replay_result& res) {
  nlohmann::json j{{"type", "ok"},
                   {"id", id},
                   {"recovered", res.complete},
                   {"epoch", res.epoch},
                   {"seq", res.last_seq}};
  if (!res.complete)
    j["reason"] = res.reason;
  return j.dump();
}

nlohmann::json presence_object(const presence_info& info) {
  auto members = nlohmann::json::array();
  for (auto& m : info.members)
    members.push_back(
      {{"user", m.user}, {"sessions", m.sessions}, {"nodes", m.nodes}});
  return {{"presence_topic", info.key},
          {"users", info.users},
          {"sessions", info.sessions},
          {"capped", info.capped},
          {"members", std::move(members)}};
}

std::string presence_json(std::string_view id, const presence_info& info) {
  auto j = presence_object(info);
  j["type"] = "presence";
  j["id"] = id;
  return j.dump();
}

std::string published_json(std::string_view id, std::string_view event_id) {
  return R"({"type":"ok","id":)" + json_string(id) + R"(,"event_id":)"
    + json_string(event_id) + "}";
}

std::string error_json(std::string_view id, std::string_view code,
                       std::string_view message) {
  std::string out = R"({"type":"error",)";
  if (!id.empty())
    out += R"("id":)" + json_string(id) + ",";
  out += R"("code":)" + json_string(code) + R"(,"message":)"
    + json_string(message) + "}";
  return out;
}

std::string welcome_json(std::string_view session, std::string_view user,
                         std::string_view org, int64_t heartbeat_ms,
                         int64_t expires_at, wire_format format) {
  nlohmann::json j{{"type", "welcome"},
                   {"protocol", 1},
                   {"subprotocol", subprotocol_name(format)},
                   {"session", session},
                   {"user", user},
                   {"org", org},
                   {"heartbeat_ms", heartbeat_ms},
                   {"expires_at", expires_at}};
  return j.dump();
}

} // namespace switchyard::frames
