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

/// The sinks one fan-out woke up (their writer was idle). Started together by
/// `frame_sink::wake`: one hand-off per I/O thread instead of one per socket.
using wake_list = std::vector<std::shared_ptr<frame_sink>>;

/// Receives encoded frames for one client. Topic actors push into it directly
/// (no actor message per recipient); the socket drains it in batched writes.
class frame_sink {
public:
  virtual ~frame_sink() = default;

  /// The subprotocol the client chose; fixed for the connection's life.
  virtual frames::wire_format format() const = 0;

  /// Queues one message encoded for `format()` (`frames::encode_event`): a
  /// complete frame for json, a bare message for the batched formats.
  /// Returns false when the message was dropped (connection closing or its
  /// outbound queue over the limit; the latter closes the connection with
  /// 4409). With `woken`, a sink whose writer was idle adds itself there
  /// instead of starting the writer; the caller then passes the list to `wake`.
  virtual bool push(const std::shared_ptr<const std::string>& frame,
                    wake_list* woken = nullptr)
    = 0;

  /// Starts the writers of every sink in `woken` (sinks of this kind) and
  /// clears the list.
  virtual void wake(wake_list& woken) = 0;
};

/// The control surface the session actor uses to own its connection.
class connection_port : public frame_sink {
public:
  /// Queues one server message given as JSON text, encoded here for
  /// `format()` (control traffic only).
  virtual void send_text(const std::string& json) = 0;

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
