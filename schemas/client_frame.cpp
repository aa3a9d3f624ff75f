#include "schemas/client_frame.hpp"

#include <optional>

#include "schemas/json_limits.hpp"
#include "schemas/messages.hpp"

namespace switchyard {

namespace {

/// Reads the request id, which clients may send as a string or a number.
std::string request_id(const nlohmann::json& j) {
  auto i = j.find("id");
  if (i == j.end())
    return {};
  if (i->is_string())
    return i->get<std::string>();
  if (i->is_number_integer())
    return std::to_string(i->get<int64_t>());
  return {};
}

std::optional<std::string> string_field(const nlohmann::json& j,
                                        const char* name) {
  auto i = j.find(name);
  if (i == j.end() || !i->is_string())
    return std::nullopt;
  return i->get<std::string>();
}

void refuse(client_frame& frame, std::string message) {
  frame.error_code = "bad_request";
  frame.error = std::move(message);
}

/// Longest epoch a client may send back: the node's are 16 hex digits.
constexpr size_t max_epoch_size = 64;

/// Reads `recover` of a subscribe: `{"since": <seq>, "epoch": "..."}` or
/// `{"since_ts": <unix ms>}`.
void read_recover(client_frame& frame, const nlohmann::json& r) {
  auto unsigned_field = [&r](const char* key) -> const nlohmann::json* {
    auto i = r.find(key);
    return i != r.end() && i->is_number_unsigned() ? &*i : nullptr;
  };
  if (!r.is_object()) {
    refuse(frame, "recover must be an object");
    return;
  }
  if (auto* ts = unsigned_field("since_ts");
      ts != nullptr && r.find("since") == r.end()) {
    if (ts->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX / 1'000'000)) {
      refuse(frame, "recover.since_ts is out of range");
      return;
    }
    frame.recover = true;
    frame.recover_by_time = true;
    frame.recover_since_ts = ts->get<int64_t>();
    return;
  }
  auto* since = unsigned_field("since");
  auto epoch = r.find("epoch");
  if (since == nullptr || epoch == r.end() || !epoch->is_string()
      || epoch->get_ref<const std::string&>().size() > max_epoch_size) {
    refuse(frame,
           "recover needs 'since' (a sequence) and 'epoch' (a string "
           "of at most 64 bytes), or 'since_ts' (unix ms)");
    return;
  }
  frame.recover = true;
  frame.recover_since = since->get<uint64_t>();
  frame.recover_epoch = epoch->get<std::string>();
}

} // namespace

client_frame decode_client_frame(std::string_view text, size_t max_depth) {
  auto parsed = json_limits::parse_json(text, max_depth);
  if (parsed.error == json_limits::failure::too_deep) {
    client_frame frame;
    frame.too_deep = true;
    refuse(frame, "frame has " + json_limits::too_deep_message(max_depth));
    return frame;
  }
  if (parsed.error != json_limits::failure::none) {
    client_frame frame;
    refuse(frame, "frame is not a JSON object");
    return frame;
  }
  return client_frame_from_json(parsed.value);
}

client_frame client_frame_from_json(const nlohmann::json& j) {
  client_frame frame;
  if (!j.is_object()) {
    refuse(frame, "frame is not a JSON object");
    return frame;
  }
  frame.id = request_id(j);
  auto type = string_field(j, "type");
  if (!type) {
    refuse(frame, "frame has no string field 'type'");
    return frame;
  }
  if (*type == "auth") {
    frame.type = client_frame_type::auth;
    if (auto token = string_field(j, "token"))
      frame.token = std::move(*token);
    else
      refuse(frame, "auth needs a string field 'token'");
    return frame;
  }
  if (*type == "ack") {
    frame.type = client_frame_type::ack;
    if (auto i = j.find("id"); i == j.end() || !i->is_string()
        || i->get_ref<const std::string&>().empty())
      refuse(frame, "ack needs the notification's id as a string field 'id'");
    return frame;
  }
  if (*type == "presence") {
    frame.type = client_frame_type::presence;
    auto topic = string_field(j, "topic");
    auto room = string_field(j, "room");
    if (topic.has_value() == room.has_value())
      refuse(frame,
             "presence needs a string field 'topic' (an exact topic) "
             "or 'room' (a room id), not both");
    else if (topic)
      frame.topic = std::move(*topic);
    else
      frame.room = std::move(*room);
    return frame;
  }
  if (*type == "subscribe") {
    frame.type = client_frame_type::subscribe;
  } else if (*type == "unsubscribe") {
    frame.type = client_frame_type::unsubscribe;
  } else if (*type == "publish") {
    frame.type = client_frame_type::publish;
  } else {
    refuse(frame, "unknown frame type '" + *type + "'");
    return frame;
  }
  if (auto topic = string_field(j, "topic")) {
    frame.topic = std::move(*topic);
  } else {
    refuse(frame, *type + " needs a string field 'topic'");
    return frame;
  }
  if (frame.type == client_frame_type::subscribe)
    if (auto i = j.find("recover"); i != j.end())
      read_recover(frame, *i);
  if (frame.type != client_frame_type::publish)
    return frame;
  if (auto i = j.find("event_id"); i != j.end()) {
    if (!i->is_string() || !valid_event_id(i->get_ref<const std::string&>())) {
      refuse(frame,
             "event_id must be a string of 1 to "
               + std::to_string(max_event_id_size) + " bytes");
      return frame;
    }
    frame.event_id = i->get<std::string>();
  }
  frame.data = json_limits::field_text(j, "data");
  return frame;
}

} // namespace switchyard
