// The history stream as the history readers use it: the events of
// `events.>` kept in JetStream, read by position. net/jetstream_history.hpp
// implements it over nats.c; its calls block, so only the history readers
// (detached actors) call them.

#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "schemas/messages.hpp"

namespace switchyard {

class history_port {
public:
  virtual ~history_port() = default;

  /// The stream's epoch: an opaque string that changes whenever the stream
  /// is created anew (its old positions then mean nothing). Empty until the
  /// stream was found or created. Does not block.
  virtual std::string epoch() const = 0;

  /// The events matching `req.pattern` after `req`'s position, when there
  /// are at most `max_events` of them in at most `max_bytes`.
  virtual replay_result
  replay(const replay_request& req, size_t max_events, size_t max_bytes)
    = 0;

  /// The last `limit` events matching `pattern` before sequence `before`
  /// (0: the end of the stream), oldest first.
  virtual history_page
  page(const std::string& pattern, uint32_t limit, uint64_t before)
    = 0;
};

/// The id of an event its publisher gave none: the same on every node and
/// in every replay, so clients can tell copies apart.
inline std::string history_event_id(const std::string& epoch, uint64_t seq) {
  return epoch + "-" + std::to_string(seq);
}

} // namespace switchyard
