// Decoding of protocol v1 client frames: one JSON object per text frame,
// with `type` auth, subscribe, unsubscribe or publish. A pure function of the
// text, so the session actor and the fuzzer run the same code. The decoded
// `client_frame` holds plain fields: a decoder of another encoding of the
// same frames fills the same struct.

#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

namespace switchyard {

/// What a client frame asks for.
enum class client_frame_type : uint8_t {
  none,
  auth,
  subscribe,
  unsubscribe,
  publish,
  ack,
  presence
};

/// A decoded client frame, or why it was refused.
struct client_frame {
  /// The request; `none` unless the frame names a known type. A subscribe,
  /// unsubscribe or publish with missing or invalid fields keeps its type
  /// (and has an error), so a session that is not authenticated yet can say
  /// so first.
  client_frame_type type = client_frame_type::none;
  /// Request id for the reply: a string, or an integer in decimal; empty
  /// when absent or of another type. For `ack`, the notification's id.
  std::string id;
  /// `token` of an auth frame.
  std::string token;
  /// `topic`: a pattern for subscribe and unsubscribe, the topic of the
  /// event for publish (its grammar is checked by the session, not here).
  std::string topic;
  /// `room` of a presence frame asking about a room (then `topic` is empty).
  std::string room;
  /// `event_id` of a publish frame, 1 to `max_event_id_size` bytes; empty
  /// when the client chose none and the node is to assign one.
  std::string event_id;
  /// `data` of a publish frame as JSON text, the form an event's payload
  /// has inside the node; `null` when absent.
  std::string data;
  /// `recover` of a subscribe frame: replay what was missed since
  /// (`since`, `epoch`) or since unix ms `since_ts` (`recover_by_time`).
  bool recover = false;
  bool recover_by_time = false;
  uint64_t recover_since = 0;
  std::string recover_epoch;
  int64_t recover_since_ts = 0;
  /// Error code for the error frame; null when the frame is usable.
  const char* error_code = nullptr;
  /// Error message for the error frame.
  std::string error;
  /// Whether the frame was refused for nesting deeper than the limit.
  bool too_deep = false;
};

/// Decodes one text frame, refusing JSON nested deeper than `max_depth`.
client_frame decode_client_frame(std::string_view text, size_t max_depth);

/// Reads the frame from an already parsed JSON value (within the depth
/// limit); anything but an object is refused.
client_frame client_frame_from_json(const nlohmann::json& j);

} // namespace switchyard
