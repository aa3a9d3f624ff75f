// Incremental parser for client-to-server WebSocket frames (RFC 6455):
// masked frames, fragmentation, control frames, UTF-8 of text messages and
// close reasons, close codes, size limits. Writing uses schemas/frames.hpp:
// server frames are plain bytes shared by all recipients.
//
// The parser streams: it never buffers raw input. Header bytes go to a
// 14-byte array, payload bytes are unmasked straight into the message being
// assembled, so a connection holds at most one message (bounded by
// `max_message_size`) plus one control payload (125 bytes), whatever the
// client sends and however it splits it.

#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <boost/beast/websocket/detail/utf8_checker.hpp>

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
    /// Every byte given to `feed` is consumed; more are needed.
    need_more,
    /// Protocol violation: fail the connection with `close_code()`. Sticky:
    /// every later call returns `error` again.
    error,
  };

  explicit ws_parser(size_t max_message_size) : max_(max_message_size) {
    // nop
  }

  /// Hands the parser bytes received from the socket. The parser reads them
  /// in place: they must stay valid until `next()` returns `need_more` or
  /// `error`, and `feed` may be called again only after that.
  void feed(const char* data, size_t size) {
    in_ = data;
    in_end_ = data + size;
  }

  /// Parses up to the next complete message of the bytes fed.
  status next();

  /// The message after `next()` returned `status::message`.
  ws_message& message() {
    return msg_;
  }

  /// From now on, data messages are skipped without being assembled or
  /// checked (control frames still parse): for a connection that is closing.
  void skip_data() {
    skip_data_ = true;
    skipping_ = true;
    std::string{}.swap(partial_);
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

  /// `fail` for the checks that answer whether the frame may go on.
  bool refuse(uint16_t code, const char* why);

  /// Validates the collected header; false after `fail`.
  bool start_frame();

  /// Validates a complete close frame's payload; false after `fail`.
  bool check_close();

  /// Unmasks and appends up to `n` payload bytes of the current frame.
  void take_payload(size_t n);

  // -- limits -----------------------------------------------------------------

  size_t max_;
  bool skip_data_ = false;

  // -- input ------------------------------------------------------------------

  const char* in_ = nullptr;
  const char* in_end_ = nullptr;

  // -- current frame ----------------------------------------------------------

  /// Header bytes collected so far (2 to 14 bytes with the masking key).
  std::array<uint8_t, 14> header_{};
  size_t header_size_ = 0;
  /// Whether the header is complete and `remaining_` payload bytes follow.
  bool in_payload_ = false;
  bool fin_ = false;
  frames::opcode op_ = frames::opcode::text;
  uint64_t remaining_ = 0;
  std::array<uint8_t, 4> mask_{};
  size_t mask_pos_ = 0;
  /// Whether the current frame's payload is dropped (see skip_data).
  bool skipping_ = false;

  // -- messages ---------------------------------------------------------------

  /// Control frame payload being collected.
  std::string control_;
  /// Data message being assembled from fragments.
  std::string partial_;
  frames::opcode partial_op_ = frames::opcode::text;
  bool in_message_ = false;
  /// UTF-8 state of the text message (across fragments) or close reason.
  boost::beast::websocket::detail::utf8_checker utf8_;
  ws_message msg_;
  uint16_t close_code_ = 0;
  const char* error_ = "";
};

/// Decodes the code of a close frame's payload (1005 when absent).
uint16_t close_code_of(std::string_view payload);

/// Whether a client may send `code` in a close frame (RFC 6455 7.4).
bool valid_close_code(uint16_t code);

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key` (SHA-1 and base64 via
/// OpenSSL).
std::string websocket_accept(std::string_view key);

} // namespace switchyard::net
