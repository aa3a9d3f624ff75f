#include "net/ws_connection.hpp"

#include <algorithm>

#include "actors/log.hpp"
#include "schemas/messages.hpp"

namespace switchyard::net {

namespace asio = boost::asio;
using frames::opcode;

namespace {

auto& log() {
  static auto instance = logger("net");
  return instance;
}

} // namespace

// -- constructors -------------------------------------------------------------

ws_connection::ws_connection(tcp::socket socket, node_context_ptr ctx,
                             frames::wire_format format)
  : plain_(std::move(socket)),
    socket_(*plain_),
    ctx_(std::move(ctx)),
    parser_(ctx_->cfg.max_frame_size),
    format_(format),
    rate_tokens_(ctx_->cfg.max_inbound_rate),
    rate_refill_(std::chrono::steady_clock::now()) {
  // Plain sockets are written with non-blocking writev (the fast path).
  boost::system::error_code ec;
  socket_.non_blocking(true, ec);
  init();
}

ws_connection::ws_connection(std::unique_ptr<tls_stream> stream,
                             node_context_ptr ctx, frames::wire_format format)
  : tls_(std::move(stream)),
    socket_(tls_->next_layer().socket()),
    ctx_(std::move(ctx)),
    parser_(ctx_->cfg.max_frame_size),
    format_(format),
    rate_tokens_(ctx_->cfg.max_inbound_rate),
    rate_refill_(std::chrono::steady_clock::now()) {
  init();
}

void ws_connection::init() {
  boost::system::error_code ec;
  socket_.set_option(tcp::no_delay{true}, ec);
  ioc_ = &static_cast<asio::io_context&>(
    asio::query(socket_.get_executor(), asio::execution::context));
  auto ep = socket_.remote_endpoint(ec);
  if (!ec)
    peer_ = ep.address().to_string() + ":" + std::to_string(ep.port());
  ctx_->stats.connections.fetch_add(1, std::memory_order_relaxed);
}

ws_connection::~ws_connection() {
  // nop
}

void ws_connection::start(session_actor session, std::string leftover) {
  session_ = std::move(session);
  asio::dispatch(socket_.get_executor(),
                 [self = shared_from_this(), leftover = std::move(leftover)] {
                   self->guarded([&] {
                     if (self->take_input(leftover.data(), leftover.size()))
                       self->do_read();
                   });
                 });
}

template<class F>
void ws_connection::guarded(F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    ctx_->stats.handler_failures.fetch_add(1, std::memory_order_relaxed);
    log()->error("{}: I/O handler failed: {}; closing the connection", peer_,
                 e.what());
    finish(frames::close_code::internal_error);
  }
}

// -- connection_port ----------------------------------------------------------

bool ws_connection::push(const frames::frame_ptr& frame) {
  return enqueue(frame, !frames::batched(format_), true);
}

void ws_connection::push_all(frames::frame_ptr frame,
                             std::shared_ptr<const sink_list> sinks) {
  asio::post(
    *ioc_, [frame = std::move(frame), sinks = std::move(sinks), ctx = ctx_] {
      uint64_t delivered = 0;
      sink_list idle;
      for (auto& sink : *sinks) {
        // Every sink of a list shares this one's group: a connection of this
        // thread.
        auto& conn = static_cast<ws_connection&>(*sink);
        conn.guarded([&] {
          if (conn.enqueue(frame, !frames::batched(conn.format_), true, &idle,
                           sink))
            ++delivered;
        });
      }
      ctx->stats.events_out.fetch_add(delivered, std::memory_order_relaxed);
      if (idle.empty())
        return;
      // The writers start in a job of their own, queued behind the hand-offs
      // of the events published meanwhile: under load, a write carries all of
      // them.
      auto& ioc = *static_cast<ws_connection&>(*idle.front()).ioc_;
      asio::post(ioc, [idle = std::move(idle)] {
        for (auto& sink : idle)
          static_cast<ws_connection&>(*sink).do_write();
      });
    });
}

void ws_connection::send_text(const std::string& json) {
  enqueue(
    std::make_shared<const std::string>(frames::encode_message(format_, json)),
    !frames::batched(format_), true);
}

size_t ws_connection::backlog() {
  std::lock_guard<spin_lock> guard{mtx_};
  return queued_bytes_;
}

void ws_connection::send_ping() {
  static const auto ping
    = std::make_shared<const std::string>(frames::ws_frame(opcode::ping, ""));
  enqueue(ping, true, false);
}

void ws_connection::close(uint16_t code, const std::string& reason,
                          bool drop_pending) {
  bool post_write = false;
  {
    std::lock_guard<spin_lock> guard{mtx_};
    if (closing_)
      return;
    closing_ = true;
    close_code_ = code;
    if (drop_pending) {
      ctx_->stats.dropped.fetch_add(queue_.size(), std::memory_order_relaxed);
      for (auto& item : queue_)
        queued_bytes_ -= item.bytes->size();
      queue_.clear();
    }
    close_frame_
      = std::make_shared<const std::string>(frames::ws_close(code, reason));
    queue_.push_back(queued{close_frame_, true});
    queued_bytes_ += close_frame_->size();
    post_write = !write_scheduled_;
    write_scheduled_ = true;
  }
  asio::post(socket_.get_executor(), [self = shared_from_this(), post_write] {
    self->guarded([&] {
      if (self->finished_)
        return;
      if (post_write)
        self->do_write();
      // Created only now: an open connection carries no timer.
      self->close_timer_ = std::make_unique<asio::steady_timer>(
        self->socket_.get_executor(), self->ctx_->cfg.close_timeout);
      self->close_timer_->async_wait([self](boost::system::error_code ec) {
        if (!ec)
          self->finish(self->close_code_);
      });
    });
  });
}

// -- reading ------------------------------------------------------------------

void ws_connection::do_read() {
  if (tls_) {
    if (!tls_in_)
      tls_in_ = std::make_unique<std::array<char, 4096>>();
    tls_->async_read_some(
      asio::buffer(*tls_in_),
      [self = shared_from_this()](boost::system::error_code ec, size_t n) {
        self->on_tls_read(ec, n);
      });
    return;
  }
  // Wait for readability without a buffer: an idle connection holds no read
  // buffer at all; bytes are read into the I/O thread's buffer below.
  socket_.async_wait(tcp::socket::wait_read,
                     [self = shared_from_this()](boost::system::error_code ec) {
                       self->on_readable(ec);
                     });
}

void ws_connection::on_readable(boost::system::error_code ec) {
  if (finished_)
    return;
  guarded([&] {
    // One buffer per I/O thread, parsed in place before the next read: a
    // connection itself keeps no read buffer.
    static thread_local std::array<char, 64 * 1024> buf;
    // At most this many full reads per turn: a peer that keeps the receive
    // buffer full still lets the thread's other sockets and timers run.
    constexpr int max_reads = 16;
    for (int reads = 0; reads < max_reads; ++reads) {
      if (ec) {
        // EOF after our close frame is the normal end of a closing
        // handshake.
        finish(close_sent_ ? close_code_ : frames::close_code::abnormal);
        return;
      }
      auto n = socket_.read_some(asio::buffer(buf), ec);
      if (ec == asio::error::would_block || ec == asio::error::try_again)
        break;
      if (ec)
        continue;
      if (!take_input(buf.data(), n))
        return;
      if (n < buf.size())
        break;
    }
    do_read();
  });
}

bool ws_connection::pause_reading() {
  auto limit = ctx_->cfg.max_frame_size;
  if (inbound_bytes_.load() < limit)
    return false;
  read_paused_.store(true);
  // `consumed` may have brought the count down before it could see the
  // pause: then resume right here.
  return !(inbound_bytes_.load() < limit && read_paused_.exchange(false));
}

void ws_connection::consumed(size_t capacity) {
  auto left = inbound_bytes_.fetch_sub(capacity) - capacity;
  if (left >= ctx_->cfg.max_frame_size || !read_paused_.exchange(false))
    return;
  asio::post(socket_.get_executor(), [self = shared_from_this()] {
    self->guarded([&] {
      if (!self->finished_)
        self->do_read();
    });
  });
}

void ws_connection::on_tls_read(boost::system::error_code ec, size_t n) {
  if (finished_)
    return;
  guarded([&] {
    if (ec) {
      finish(close_sent_ ? close_code_ : frames::close_code::abnormal);
      return;
    }
    if (take_input(tls_in_->data(), n))
      do_read();
  });
}

bool ws_connection::take_input(const char* data, size_t n) {
  if (failed_)
    return true; // discarded unread: the peer is past listening to
  parser_.feed(data, n);
  return parse() && !pause_reading();
}

bool ws_connection::parse() {
  for (;;) {
    switch (parser_.next()) {
      case ws_parser::status::need_more: return true;
      case ws_parser::status::error:
        fail(parser_.close_code(), parser_.error());
        return !finished_;
      case ws_parser::status::message:
        handle(parser_.message());
        if (peer_closed_ || finished_)
          return false;
    }
  }
}

void ws_connection::fail(uint16_t code, const char* why) {
  // The one line this connection logs about its violation.
  log()->info("{}: closing connection with {}: {}", peer_, code, why);
  ctx_->stats.protocol_errors.fetch_add(1, std::memory_order_relaxed);
  failed_ = true;
  close(code, why, false);
}

bool ws_connection::admit_inbound(bool control) {
  auto rate = static_cast<double>(ctx_->cfg.max_inbound_rate);
  auto now = std::chrono::steady_clock::now();
  std::chrono::duration<double> elapsed = now - rate_refill_;
  rate_refill_ = now;
  rate_tokens_ = std::min(rate, rate_tokens_ + elapsed.count() * rate);
  if (rate_tokens_ >= 1.0) {
    rate_tokens_ -= 1.0;
    rate_strikes_ = 0;
    return true;
  }
  // Over the limit: refuse the frame; a client that keeps flooding for
  // another full burst is closed.
  if (++rate_strikes_ > ctx_->cfg.max_inbound_rate) {
    close(frames::close_code::too_many, "inbound rate limit exceeded");
  } else if (!control) {
    send_text(frames::error_json("", "rate_limited",
                                 "more than "
                                   + std::to_string(ctx_->cfg.max_inbound_rate)
                                   + " frames per second"));
  }
  return false;
}

void ws_connection::handle(ws_message& msg) {
  ctx_->stats.frames_in.fetch_add(1, std::memory_order_relaxed);
  bool closing;
  {
    std::lock_guard<spin_lock> guard{mtx_};
    closing = closing_;
  }
  if (closing && msg.op != opcode::close) {
    // Decided to close: nothing more is assembled, answered or forwarded;
    // only the peer's close frame still matters.
    parser_.skip_data();
    return;
  }
  switch (msg.op) {
    case opcode::text:
      if (admit_inbound(false)) {
        inbound_bytes_ += msg.payload.capacity();
        caf::anon_send(session_, text_atom::value, std::move(msg.payload));
      }
      break;
    case opcode::binary:
      if (admit_inbound(false)) {
        // Client frames are msgpack maps in msgpack; other subprotocols
        // have no binary frames, and the session only needs to refuse it.
        std::string payload;
        if (format_ == frames::wire_format::msgpack)
          payload = std::move(msg.payload);
        inbound_bytes_ += payload.capacity();
        caf::anon_send(session_, binary_atom::value, std::move(payload));
      }
      break;
    // Control frames count against the rate like data, or a ping flood
    // would be free (a flood ends in 4429), but are never refused: every
    // ping gets its pong (RFC 6455 5.5.2), every pong reaches the session.
    case opcode::ping:
      admit_inbound(true);
      queue_pong(msg.payload);
      break;
    case opcode::pong:
      admit_inbound(true);
      caf::anon_send(session_, pong_atom::value);
      break;
    case opcode::close: {
      peer_closed_ = true;
      auto code = close_code_of(msg.payload);
      if (closing) {
        // Our close frame is out or on its way: the handshake is complete
        // once it is written (RFC 6455 7.1.1: the server closes TCP first).
        if (close_sent_)
          finish(close_code_);
        // else: written() finishes once our close frame is out
      } else {
        // Echo the peer's code, as RFC 6455 5.5.1 asks; the parser has
        // checked it is one a peer may send.
        close(code == frames::close_code::no_status ? frames::close_code::normal
                                                    : code,
              "", false);
      }
      break;
    }
    default: break;
  }
}

void ws_connection::queue_pong(const std::string& payload) {
  bool post_write = false;
  {
    std::lock_guard<spin_lock> guard{mtx_};
    if (closing_)
      return;
    // RFC 6455 5.5.3: answering only the latest of several pings is fine;
    // a client that pings without reading makes the node hold one pong.
    pong_payload_ = payload;
    if (!pong_pending_) {
      pong_pending_ = true;
      post_write = !write_scheduled_;
      write_scheduled_ = true;
    }
  }
  if (post_write)
    asio::post(socket_.get_executor(), [self = shared_from_this()] {
      self->do_write();
    });
}

// -- writing ------------------------------------------------------------------

bool ws_connection::enqueue(frames::frame_ptr frame, bool framed,
                            bool enforce_limit, sink_list* idle,
                            const std::shared_ptr<frame_sink>& self) {
  bool post_write = false;
  {
    std::lock_guard<spin_lock> guard{mtx_};
    if (closing_)
      return false;
    if (enforce_limit
        && queued_bytes_ + frame->size() > ctx_->cfg.outbound_queue_limit) {
      // Fall through to the slow-consumer close below, outside the lock.
    } else {
      queued_bytes_ += frame->size();
      queue_.push_back(queued{std::move(frame), framed});
      post_write = !write_scheduled_;
      write_scheduled_ = true;
      frame = nullptr;
    }
  }
  if (frame) {
    ctx_->stats.dropped.fetch_add(1, std::memory_order_relaxed);
    log()->info("{}: slow consumer, outbound queue over {} bytes, closing",
                peer_, ctx_->cfg.outbound_queue_limit);
    close(frames::close_code::slow_consumer, "slow consumer", true);
    // The session ends now, not when the socket is finally cut: its
    // subscriptions go at once and the client can reconnect right away.
    caf::anon_send(session_, closed_atom::value,
                   frames::close_code::slow_consumer);
    return false;
  }
  if (post_write) {
    if (idle != nullptr)
      idle->push_back(self);
    else
      asio::post(socket_.get_executor(), [self = shared_from_this()] {
        self->do_write();
      });
  }
  return true;
}

void ws_connection::do_write() {
  guarded([this] {
    if (should_gather())
      gather();
    else
      write_batches();
  });
}

bool ws_connection::should_gather() {
  auto window = ctx_->cfg.write_gather;
  if (window.count() == 0
      || std::chrono::steady_clock::now() - last_write_ >= window)
    return false;
  std::lock_guard<spin_lock> guard{mtx_};
  return !closing_ && !pong_pending_
    && queued_bytes_ < ctx_->cfg.write_gather_bytes;
}

void ws_connection::gather() {
  // One timer per I/O thread serves every socket that waits: it fires one
  // `write_gather` after the first of them, and writes them all.
  struct gathering {
    explicit gathering(asio::io_context& ioc) : timer(ioc) {
      // nop
    }
    asio::steady_timer timer;
    std::vector<std::shared_ptr<ws_connection>> due;
  };
  static thread_local std::unique_ptr<gathering> state;
  if (!state)
    state = std::make_unique<gathering>(*ioc_);
  state->due.emplace_back(shared_from_this());
  if (state->due.size() > 1)
    return;
  state->timer.expires_after(ctx_->cfg.write_gather);
  state->timer.async_wait([g = state.get()](boost::system::error_code ec) {
    if (ec)
      return;
    auto due = std::move(g->due);
    g->due.clear();
    for (auto& conn : due)
      conn->guarded([&] {
        conn->write_batches();
      });
  });
}

void ws_connection::frame_batch(std::vector<iovec>& out) {
  auto range = [&out](const char* data, size_t size) {
    out.push_back(iovec{const_cast<char*>(data), size});
  };
  // At most one header per item: the reserve keeps headers_ in place while
  // `out` points into it.
  headers_.clear();
  headers_.reserve(writing_.size() * 10);
  writing_frames_ = writing_.size();
  auto op = format_ == frames::wire_format::msgpack ? opcode::binary
                                                    : opcode::text;
  // ndjson separates objects: the `\n` queued after each is left out after
  // the last one of a frame.
  size_t separator = format_ == frames::wire_format::ndjson ? 1 : 0;
  auto cap = ctx_->cfg.batch_frame_size;
  for (size_t i = 0; i < writing_.size();) {
    if (writing_[i].framed) {
      range(writing_[i].bytes->data(), writing_[i].bytes->size());
      ++i;
      continue;
    }
    auto end = i;
    size_t size = 0;
    while (end < writing_.size() && !writing_[end].framed
           && (end == i || size + writing_[end].bytes->size() <= cap))
      size += writing_[end++].bytes->size();
    size -= separator;
    char header[10];
    auto len = frames::frame_header(op, size, header);
    range(headers_.data() + headers_.size(), len);
    headers_.append(header, len);
    for (auto k = i; k < end; ++k) {
      auto& bytes = *writing_[k].bytes;
      range(bytes.data(), bytes.size() - (k + 1 == end ? separator : 0));
    }
    writing_frames_ -= end - i - 1;
    i = end;
  }
}

void ws_connection::write_batches() {
  for (int rounds = 0; !finished_; ++rounds) {
    if (rounds == 8) {
      // A busy stream yields the I/O thread to the other connections.
      asio::post(socket_.get_executor(), [self = shared_from_this()] {
        self->do_write();
      });
      return;
    }
    {
      std::lock_guard<spin_lock> guard{mtx_};
      if (queue_.empty() && !pong_pending_) {
        write_scheduled_ = false;
        // Going idle: give back the batch buffers (queue_ keeps its own),
        // so an idle connection holds one small buffer, not several.
        std::vector<queued>{}.swap(writing_);
        std::string{}.swap(headers_);
        std::string{}.swap(tls_out_);
        std::vector<iovec>{}.swap(tls_ranges_);
        return;
      }
      writing_.swap(queue_);
      if (pong_pending_) {
        pong_pending_ = false;
        auto pong = std::make_shared<const std::string>(
          frames::ws_frame(opcode::pong, pong_payload_));
        queued_bytes_ += pong->size(); // taken off again in written()
        writing_.insert(writing_.begin(), queued{std::move(pong), true});
      }
    }
    writing_bytes_ = 0;
    for (auto& item : writing_)
      writing_bytes_ += item.bytes->size();
    // The ranges to write are the I/O thread's scratch: an idle connection
    // keeps none (TLS keeps them until its records are out).
    static thread_local std::vector<iovec> ranges;
    auto& out = tls_ ? tls_ranges_ : ranges;
    out.clear();
    frame_batch(out);
    if (tls_) {
      last_write_ = std::chrono::steady_clock::now();
      tls_next_ = 0;
      tls_write_next();
      return;
    }
    // Fast path: non-blocking gather-writes right here, no completion
    // handler; sendmsg takes up to IOV_MAX ranges at once (Asio's write_some
    // only 64), and MSG_NOSIGNAL turns a reset peer into EPIPE, not SIGPIPE.
    last_write_ = std::chrono::steady_clock::now();
    size_t next = 0;
    bool full = false;
    while (next < out.size() && !full) {
      msghdr msg{};
      msg.msg_iov = out.data() + next;
      msg.msg_iovlen = std::min<size_t>(out.size() - next, IOV_MAX);
      auto n = ::sendmsg(socket_.native_handle(), &msg, MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR)
          continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
          break;
        finish(frames::close_code::abnormal);
        return;
      }
      auto left = static_cast<size_t>(n);
      auto last = next + msg.msg_iovlen;
      while (next < last && left >= out[next].iov_len)
        left -= out[next++].iov_len;
      if (next < last) {
        // A short write: the kernel buffer is full.
        out[next].iov_base = static_cast<char*>(out[next].iov_base) + left;
        out[next].iov_len -= left;
        full = true;
      }
    }
    if (next == out.size()) {
      if (!written())
        return;
      continue;
    }
    // The rest waits for Asio (the frames stay alive in writing_, the
    // headers in headers_, until on_write).
    auto rest = std::make_shared<std::vector<asio::const_buffer>>();
    rest->reserve(out.size() - next);
    for (; next < out.size(); ++next)
      rest->emplace_back(out[next].iov_base, out[next].iov_len);
    asio::async_write(socket_, *rest,
                      [self = shared_from_this(),
                       rest](boost::system::error_code ec, size_t) {
                        self->on_write(ec);
                      });
    return;
  }
}

void ws_connection::tls_write_next() {
  // The ranges are copied into one buffer of up to one TLS record (16 KiB),
  // so that a batch becomes few records (Asio's SSL stream writes one
  // buffer at a time) while the copy stays small; a larger range goes alone.
  constexpr size_t record = 16 * 1024;
  tls_out_.clear();
  while (tls_next_ < tls_ranges_.size()
         && (tls_out_.empty()
             || tls_out_.size() + tls_ranges_[tls_next_].iov_len <= record)) {
    auto& r = tls_ranges_[tls_next_++];
    tls_out_.append(static_cast<const char*>(r.iov_base), r.iov_len);
  }
  asio::async_write(*tls_, asio::buffer(tls_out_),
                    [self = shared_from_this()](boost::system::error_code ec,
                                                size_t) {
                      self->guarded([&] {
                        if (!ec && self->tls_next_ < self->tls_ranges_.size())
                          self->tls_write_next();
                        else
                          self->on_write(ec);
                      });
                    });
}

void ws_connection::on_write(boost::system::error_code ec) {
  guarded([&] {
    if (ec) {
      finish(frames::close_code::abnormal);
      return;
    }
    if (written())
      write_batches();
  });
}

bool ws_connection::written() {
  ctx_->stats.socket_writes.fetch_add(1, std::memory_order_relaxed);
  ctx_->stats.frames_written.fetch_add(writing_frames_,
                                       std::memory_order_relaxed);
  ctx_->stats.messages_written.fetch_add(writing_.size(),
                                         std::memory_order_relaxed);
  bool wrote_close = false;
  {
    std::lock_guard<spin_lock> guard{mtx_};
    queued_bytes_ -= writing_bytes_;
    wrote_close = close_frame_ && !writing_.empty()
      && writing_.back().bytes == close_frame_;
  }
  writing_.clear();
  if (wrote_close) {
    close_sent_ = true;
    if (peer_closed_) {
      finish(close_code_);
      return false;
    }
    if (failed_) {
      // Nothing more to say; the peer's bytes are discarded until it closes
      // too (or the close timer cuts it).
      boost::system::error_code ignored;
      socket_.shutdown(tcp::socket::shutdown_send, ignored);
    }
    // Wait for the peer's close frame or EOF (or the close timer).
  }
  return true;
}

// -- closing ------------------------------------------------------------------

void ws_connection::finish(uint16_t code) {
  if (finished_)
    return;
  finished_ = true;
  if (close_timer_)
    close_timer_->cancel();
  boost::system::error_code ignored;
  socket_.shutdown(tcp::socket::shutdown_both, ignored);
  socket_.close(ignored);
  log()->debug("{}: connection finished with close code {}", peer_, code);
  ctx_->stats.count_close(code);
  ctx_->stats.connections.fetch_sub(1, std::memory_order_relaxed);
  {
    std::lock_guard<spin_lock> guard{mtx_};
    closing_ = true;
    ctx_->stats.dropped.fetch_add(queue_.size(), std::memory_order_relaxed);
    queue_.clear();
    queued_bytes_ = 0;
  }
  // session_ is never reset (other threads read it); the session breaks the
  // session <-> connection cycle by dropping its handle when it exits.
  caf::anon_send(session_, closed_atom::value, code);
}

} // namespace switchyard::net
