// Incremental parser of `text/event-stream` (server-sent events, as the
// WHATWG HTML standard defines them): lines ending in CR, LF or CRLF,
// `field: value` lines, `:` comments, a blank line ending each event. A
// response body arrives in chunks cut anywhere, a CRLF included, so the
// parser keeps the unfinished line between calls.
//
// Memory is bounded whatever the server sends: a line over `max_line` bytes
// and an event whose data exceeds `max_event` bytes are errors, and nothing
// is buffered beyond one line and one event.

#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace switchyard::net {

/// One dispatched event.
struct sse_event {
  /// The `event:` field; "message" when the event named none.
  std::string type;
  /// The `data:` lines joined with LF.
  std::string data;
  /// The last `id:` seen so far in the stream (it carries over events).
  std::string id;
};

class sse_parser {
public:
  static constexpr size_t default_max_line = 64 * 1024;
  static constexpr size_t default_max_event = 256 * 1024;

  explicit sse_parser(size_t max_line = default_max_line,
                      size_t max_event = default_max_event)
    : max_line_(max_line), max_event_(max_event) {
    // nop
  }

  /// Parses `chunk`, appending every event it completes to `out`. Returns
  /// false once the stream broke a limit, with `error()` saying how; the
  /// parser is then spent and every later call returns false at once.
  bool feed(std::string_view chunk, std::vector<sse_event>& out);

  /// Why `feed` returned false; empty while the stream is fine.
  const std::string& error() const {
    return error_;
  }

  /// Whether an event is half-read: the stream ending here would drop it
  /// (the standard discards an event without its blank line).
  bool in_event() const {
    return !line_.empty() || !data_.empty();
  }

private:
  /// Handles one complete line, terminator stripped.
  bool on_line(std::string_view line, std::vector<sse_event>& out);

  bool fail(std::string reason);

  size_t max_line_;
  size_t max_event_;
  /// The unfinished line, when a chunk ended within it.
  std::string line_;
  /// The last byte seen was a CR: an LF right after it ends no second line.
  bool after_cr_ = false;
  /// The first line may start with a byte order mark, to be skipped.
  bool first_line_ = true;
  std::string type_;
  /// Each `data:` value with an LF after it, as the standard's data buffer:
  /// an empty `data:` line still makes an event.
  std::string data_;
  std::string last_id_;
  std::string error_;
};

} // namespace switchyard::net
