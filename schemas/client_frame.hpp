// Decoding of protocol v1 client frames: one JSON object per text frame,
// with `type` auth, subscribe or unsubscribe. A pure function of the text,
// so the session actor and the fuzzer run the same code.

#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace switchyard {

/// What a client frame asks for.
enum class client_frame_type : uint8_t { none, auth, subscribe, unsubscribe };

/// A decoded client frame, or why it was refused.
struct client_frame {
  /// The request; `none` unless the frame names a known type. A subscribe or
  /// unsubscribe without a topic keeps its type (and has an error), so a
  /// session that is not authenticated yet can say so first.
  client_frame_type type = client_frame_type::none;
  /// Request id for the reply: a string, or an integer in decimal; empty
  /// when absent or of another type.
  std::string id;
  /// `token` of an auth frame.
  std::string token;
  /// `topic` (a pattern) of a subscribe or unsubscribe frame.
  std::string topic;
  /// Error code for the error frame; null when the frame is usable.
  const char* error_code = nullptr;
  /// Error message for the error frame.
  std::string error;
  /// Whether the frame was refused for nesting deeper than the limit.
  bool too_deep = false;
};

/// Decodes one text frame, refusing JSON nested deeper than `max_depth`.
client_frame decode_client_frame(std::string_view text, size_t max_depth);

} // namespace switchyard
