// Incremental parser for client-to-server WebSocket frames (RFC 6455):
// masked frames, fragmentation, control frames, size limits. Writing uses
// schemas/frames.hpp: server frames are plain bytes shared by all recipients.

#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "schemas/frames.hpp"

namespace switchyard::net {

/// One complete message or control frame from the client.
struct ws_message {
  frames::opcode op = frames::opcode::text; // text, binary, ping, pong, close
  std::string payload;
};

/// Parses frames from the bytes a client sent.
class ws_parser {
public:
  enum class status {
    /// A message is ready in `message()`.
    message,
    /// More bytes are needed.
    need_more,
    /// Protocol violation: close with `close_code()`.
    error,
  };

  explicit ws_parser(size_t max_message_size) : max_(max_message_size) {
    // nop
  }

  /// Appends bytes received from the socket.
  void feed(const char* data, size_t size) {
    buf_.append(data, size);
  }

  /// Parses the next message out of the buffered bytes.
  status next();

  /// The message after `next()` returned `status::message`.
  ws_message& message() {
    return msg_;
  }

  /// Close code after `next()` returned `status::error`.
  uint16_t close_code() const {
    return close_code_;
  }

  /// Human-readable reason after an error.
  const char* error() const {
    return error_;
  }

private:
  status fail(uint16_t code, const char* why);

  size_t max_;
  std::string buf_;
  size_t pos_ = 0;
  /// Data message being reassembled from fragments.
  std::string partial_;
  frames::opcode partial_op_ = frames::opcode::text;
  bool in_message_ = false;
  ws_message msg_;
  uint16_t close_code_ = 0;
  const char* error_ = "";
};

/// Decodes the code of a close frame's payload (1005 when absent).
uint16_t close_code_of(std::string_view payload);

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key` (SHA-1 and base64 via
/// OpenSSL).
std::string websocket_accept(std::string_view key);

} // namespace switchyard::net
