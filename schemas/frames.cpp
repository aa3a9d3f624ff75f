#include "schemas/frames.hpp"

#include <algorithm>

#include <nlohmann/json.hpp>

namespace switchyard::frames {

std::string ws_frame(opcode op, std::string_view payload) {
  std::string out;
  auto n = payload.size();
  out.reserve(n + 10);
  out.push_back(static_cast<char>(0x80 | static_cast<uint8_t>(op)));
  if (n < 126) {
    out.push_back(static_cast<char>(n));
  } else if (n <= 0xFFFF) {
    out.push_back(static_cast<char>(126));
    out.push_back(static_cast<char>((n >> 8) & 0xFF));
    out.push_back(static_cast<char>(n & 0xFF));
  } else {
    out.push_back(static_cast<char>(127));
    for (int shift = 56; shift >= 0; shift -= 8)
      out.push_back(
        static_cast<char>((static_cast<uint64_t>(n) >> shift) & 0xFF));
  }
  out.append(payload.data(), payload.size());
  return out;
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
  out += R"(,"data":)";
  out += ev.data.empty() ? std::string_view{"null"} : std::string_view{ev.data};
  out += '}';
  return out;
}

frame_ptr event_frame(std::string_view subscription, const event& ev) {
  return std::make_shared<const std::string>(
    ws_frame(opcode::text, event_json(subscription, ev)));
}

std::string ok_json(std::string_view id) {
  return R"({"type":"ok","id":)" + json_string(id) + "}";
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
                         int64_t expires_at) {
  nlohmann::json j{{"type", "welcome"},
                   {"protocol", 1},
                   {"session", session},
                   {"user", user},
                   {"org", org},
                   {"heartbeat_ms", heartbeat_ms},
                   {"expires_at", expires_at}};
  return j.dump();
}

} // namespace switchyard::frames
