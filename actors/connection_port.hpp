// What an actor may do with a client connection. The WebSocket I/O object in
// net/ implements it; unit tests under CAF's deterministic scheduler use a
// recording fake. All members are thread-safe and never block.

#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "schemas/frames.hpp"

namespace switchyard {

class frame_sink;

/// Sinks handed one frame together (see `frame_sink::push_all`).
using sink_list = std::vector<std::shared_ptr<frame_sink>>;

/// Receives encoded frames for one client. Topic actors push into it directly
/// (no actor message per recipient); the socket drains it in batched writes.
class frame_sink {
public:
  virtual ~frame_sink() = default;

  /// The subprotocol the client chose; fixed for the connection's life.
  virtual frames::wire_format format() const = 0;

  /// Sinks with the same group are served by one thread and may be handed
  /// a frame together, with `push_all`.
  virtual const void* group() const = 0;

  /// Queues one message encoded for `format()` (`frames::encode_event`): a
  /// complete frame for json, a bare message for the batched formats.
  /// Returns false when the message was dropped (connection closing or its
  /// outbound queue over the limit; the latter closes the connection with
  /// 4409).
  virtual bool push(const frames::frame_ptr& frame) = 0;

  /// Queues `frame` for every sink of `sinks`, all of this sink's group and
  /// format, as `push` would, on the group's thread: one hand-off for them
  /// all, so that the frame's reference count and the sinks' queues are
  /// touched by that thread alone. Counts the deliveries in
  /// `events_out`.
  virtual void
  push_all(frames::frame_ptr frame, std::shared_ptr<const sink_list> sinks)
    = 0;
};

/// The control surface the session actor uses to own its connection.
class connection_port : public frame_sink {
public:
  /// Queues one server message given as JSON text, encoded here for
  /// `format()` (control traffic only).
  virtual void send_text(const std::string& json) = 0;

  /// Bytes queued for the client and not yet written: how far it lags.
  virtual size_t backlog() = 0;

  /// Queues a WebSocket ping.
  virtual void send_ping() = 0;

  /// Tells the connection that an inbound text message of `capacity` bytes
  /// (as it was handed over) is handled: a connection stops reading while
  /// too many bytes wait in the session's mailbox, and resumes here.
  virtual void consumed(size_t capacity) = 0;

  /// Starts the closing handshake with `code`. With `drop_pending`, frames
  /// not yet written are discarded first (slow consumer).
  virtual void
  close(uint16_t code, const std::string& reason, bool drop_pending = false)
    = 0;
};

} // namespace switchyard
