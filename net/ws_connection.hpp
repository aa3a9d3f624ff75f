// The I/O half of a WebSocket client: reads and parses client frames and
// hands them to the session actor; drains the outbound queue in batched
// gather-writes. Policy (auth, subscriptions, heartbeats) lives in the
// session actor, which owns this object through `connection_port`.

#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <sys/uio.h>

#include <boost/asio.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <caf/all.hpp>

#include "actors/connection_port.hpp"
#include "actors/node_context.hpp"
#include "net/spin_lock.hpp"
#include "net/ws_codec.hpp"

namespace switchyard::net {

/// One upgraded WebSocket connection. Thread-safe entry points: `push`,
/// `push_all`, `send_text`, `send_ping`, `consumed`, `close`; everything else
/// runs on the single thread of the socket's io_context.
class ws_connection final : public connection_port,
                            public std::enable_shared_from_this<ws_connection> {
public:
  using tcp = boost::asio::ip::tcp;

  using tls_stream = boost::beast::ssl_stream<boost::beast::tcp_stream>;

  // -- constructors -----------------------------------------------------------

  /// A connection speaking the subprotocol `format`.
  ws_connection(tcp::socket socket, node_context_ptr ctx,
                frames::wire_format format);

  /// A connection over TLS; `stream` has completed its handshake.
  ws_connection(std::unique_ptr<tls_stream> stream, node_context_ptr ctx,
                frames::wire_format format);

  ~ws_connection() override;

  // -- lifecycle --------------------------------------------------------------

  /// Starts reading; inbound frames go to `session`.
  /// `leftover` holds bytes the client sent right after the upgrade request.
  void start(session_actor session, std::string leftover);

  // -- connection_port --------------------------------------------------------

  frames::wire_format format() const override {
    return format_;
  }

  const void* group() const override {
    return ioc_;
  }

  bool push(const frames::frame_ptr& frame) override;

  void push_all(frames::frame_ptr frame,
                std::shared_ptr<const sink_list> sinks) override;

  void send_text(const std::string& json) override;

  size_t backlog() override;

  void send_ping() override;

  void consumed(size_t capacity) override;

  void close(uint16_t code, const std::string& reason,
             bool drop_pending = false) override;

private:
  // -- reading ----------------------------------------------------------------

  void do_read();
  void on_readable(boost::system::error_code ec);
  void on_tls_read(boost::system::error_code ec, size_t n);
  /// Parses `n` bytes read from the client (discarded once the connection
  /// failed); false when reading must stop.
  bool take_input(const char* data, size_t n);
  /// Parses the bytes fed to the parser; false when reading must stop.
  bool parse();
  void handle(ws_message& msg);
  /// Takes one frame off the inbound rate; false when over it. A flood
  /// ends in 4429; refused data frames get a `rate_limited` error frame.
  bool admit_inbound(bool control);
  /// Stops reading while too many inbound bytes wait for the session;
  /// true when paused (`consumed` resumes).
  bool pause_reading();
  /// Fails the connection after a protocol violation: the close frame goes
  /// out, input is discarded unread, and TCP is closed as soon as the close
  /// frame is written and the peer is gone (or at the close timeout).
  void fail(uint16_t code, const char* why);
  /// Queues a pong for the latest ping; at most one is ever pending.
  void queue_pong(const std::string& payload);

  // -- writing ----------------------------------------------------------------

  /// One queued item: a complete WebSocket frame, or (batched formats only)
  /// a bare message that `frame_batch` frames together with its neighbours.
  struct queued {
    frames::frame_ptr bytes;
    bool framed;
  };

  /// Queues `frame`. With `idle`, a writer that was idle is not started
  /// but `self` (this connection) added there, for the caller to start.
  bool enqueue(frames::frame_ptr frame, bool framed, bool enforce_limit,
               sink_list* idle = nullptr,
               const std::shared_ptr<frame_sink>& self = nullptr);
  /// Lays `writing_` out as the byte ranges to write, in `out`: complete
  /// frames as they are; each run of bare messages as few frames of at most
  /// `batch_frame_size` bytes, their headers kept in `headers_`; counts
  /// the frames in `writing_frames_`.
  void frame_batch(std::vector<iovec>& out);
  /// Writes on the socket's thread (guarded), at once or, when the socket
  /// was written to within `write_gather`, once that time has passed.
  void do_write();
  /// Whether the next write should wait for more to gather.
  bool should_gather();
  /// Defers the next write to this I/O thread's next gather tick.
  void gather();
  /// Writes queued batches until the queue is empty or the socket is full.
  void write_batches();
  /// TLS: writes the next part of `writing_`, from `tls_next_` on.
  void tls_write_next();
  void on_write(boost::system::error_code ec);
  /// Accounts for the finished batch in `writing_`; false if the connection
  /// finished (closing handshake complete).
  bool written();

  // -- closing ----------------------------------------------------------------

  void finish(uint16_t code);

  /// Runs `f`, a handler on the socket's thread: an exception ends this
  /// connection with 1011 (logged, counted), never the I/O thread.
  template<class F>
  void guarded(F&& f);

  /// Sets up the socket; both constructors end here.
  void init();

  // -- member variables -------------------------------------------------------

  /// The plain socket, or the TLS stream over one: exactly one is set.
  std::optional<tcp::socket> plain_;
  std::unique_ptr<tls_stream> tls_;
  /// The TCP socket underneath, plain or TLS.
  tcp::socket& socket_;
  /// The single-threaded context the socket lives on.
  boost::asio::io_context* ioc_ = nullptr;
  /// "ip:port" of the client, for logs.
  std::string peer_;
  node_context_ptr ctx_;
  session_actor session_;
  ws_parser parser_;
  std::unique_ptr<boost::asio::steady_timer> close_timer_;

  // Guarded by mtx_: touched by topic actors and the session actor.
  spin_lock mtx_;
  std::vector<queued> queue_;
  size_t queued_bytes_ = 0; // queued plus in flight
  bool write_scheduled_ = false;
  bool closing_ = false;
  uint16_t close_code_ = frames::close_code::abnormal;
  frames::frame_ptr close_frame_;
  /// Payload of the latest unanswered ping, when `pong_pending_`.
  std::string pong_payload_;
  bool pong_pending_ = false;

  // Shared with the session actor (`consumed`).
  /// Capacity of the text messages handed to the session and not yet
  /// handled; reading pauses at `max_frame_size`.
  std::atomic<size_t> inbound_bytes_{0};
  std::atomic<bool> read_paused_{false};

  // Strand only.
  /// TLS only: decrypted bytes (plain sockets read into a per-thread
  /// buffer) and the batch being written, linearized (freed when idle).
  std::unique_ptr<std::array<char, 4096>> tls_in_;
  std::string tls_out_;
  /// TLS only: the ranges of the batch being written, and the next one.
  std::vector<iovec> tls_ranges_;
  size_t tls_next_ = 0;
  std::vector<queued> writing_;
  /// Queued bytes of `writing_` (frame headers and left-out separators of
  /// batched frames not counted).
  size_t writing_bytes_ = 0;
  /// WebSocket frames `writing_` makes.
  size_t writing_frames_ = 0;
  /// Headers of the batched frames being written (freed when idle).
  std::string headers_;
  const frames::wire_format format_;
  /// When the socket was last written to.
  std::chrono::steady_clock::time_point last_write_;
  bool close_sent_ = false;
  bool peer_closed_ = false;
  /// A protocol violation: input is discarded from now on.
  bool failed_ = false;
  bool finished_ = false;
  double rate_tokens_;
  uint32_t rate_strikes_ = 0;
  std::chrono::steady_clock::time_point rate_refill_;
};

} // namespace switchyard::net
