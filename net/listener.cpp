#include "net/listener.hpp"

#include <unistd.h>

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket/rfc6455.hpp>

#include "actors/log.hpp"
#include "net/ws_codec.hpp"

namespace switchyard::net {

namespace asio = boost::asio;
namespace beast = boost::beast;

namespace {

auto& log() {
  static auto instance = logger("net");
  return instance;
}

/// Time a client has to send a complete HTTP request head (slowloris guard).
constexpr auto http_read_timeout = std::chrono::seconds(30);

/// Pause before accepting again after a failed accept (EMFILE...).
constexpr auto accept_retry_delay = std::chrono::milliseconds(100);

/// Largest HTTP request head.
constexpr uint32_t http_header_limit = 16 * 1024;

using tls_stream = beast::ssl_stream<beast::tcp_stream>;

/// One HTTP/1.1 connection until it upgrades or closes. `Stream` is
/// `beast::tcp_stream` (plain, served on the HTTP thread) or `tls_stream`
/// (served on the I/O thread it was accepted on, since a TLS session cannot
/// move between threads' contexts).
template<class Stream>
class http_session : public std::enable_shared_from_this<http_session<Stream>> {
public:
  static constexpr bool is_tls = std::is_same_v<Stream, tls_stream>;

  http_session(Stream stream, io_pool& pool, caf::actor_system& sys,
               node_context_ptr ctx, std::weak_ptr<const session_deps> sessions,
               std::shared_ptr<http_router> router)
    : stream_(std::move(stream)),
      pool_(pool),
      sys_(sys),
      ctx_(std::move(ctx)),
      sessions_(std::move(sessions)),
      router_(std::move(router)) {
    // nop
  }

  void run() {
    asio::dispatch(stream_.get_executor(), [self = this->shared_from_this()] {
      if constexpr (is_tls)
        self->do_handshake();
      else
        self->do_read();
    });
  }

private:
  void do_handshake() {
    beast::get_lowest_layer(stream_).expires_after(http_read_timeout);
    stream_.async_handshake(
      asio::ssl::stream_base::server,
      [self = this->shared_from_this()](beast::error_code ec) {
        if (ec) {
          log()->debug("TLS handshake failed: {}", ec.message());
          self->shutdown();
          return;
        }
        self->do_read();
      });
  }

  // The head first, then the body with the limit of its target: webhooks
  // (`max_ingest_body`) may be larger than every other body
  // (`max_frame_size`).
  void do_read() {
    parser_.emplace();
    parser_->header_limit(http_header_limit);
    // Checked against Content-Length as the head completes; the target's
    // own limit follows in on_header.
    parser_->body_limit(router_->largest_body_limit());
    beast::get_lowest_layer(stream_).expires_after(http_read_timeout);
    http::async_read_header(
      stream_, buffer_, *parser_,
      beast::bind_front_handler(&http_session::on_header,
                                this->shared_from_this()));
  }

  void on_header(beast::error_code ec, size_t bytes) {
    if (ec) {
      on_read(ec, bytes);
      return;
    }
    auto target = parser_->get().target();
    auto limit = router_->body_limit({target.data(), target.size()});
    if (auto announced = parser_->content_length();
        announced && *announced > limit) {
      on_read(http::error::body_limit, bytes);
      return;
    }
    // What the body may still add (nothing of it is parsed yet).
    parser_->body_limit(limit);
    http::async_read(stream_, buffer_, *parser_,
                     beast::bind_front_handler(&http_session::on_read,
                                               this->shared_from_this()));
  }

  void on_read(beast::error_code ec, size_t) {
    if (ec == http::error::end_of_stream || ec == beast::error::timeout
        || ec == asio::error::operation_aborted) {
      shutdown();
      return;
    }
    if (ec == http::error::body_limit) {
      // The head parsed (the limit is checked only after it), so its target
      // is known.
      auto target = parser_->get().target();
      write(router_->too_large({target.data(), target.size()}, 11));
      return;
    }
    if (ec) {
      write(http_router::error(http::status::bad_request, "bad_request",
                               "malformed HTTP request", 11, false));
      return;
    }
    auto req = parser_->release();
    if (beast::websocket::is_upgrade(req)) {
      upgrade(req);
      return;
    }
    router_->handle(req, [self = this->shared_from_this()](http_response res) {
      asio::post(self->stream_.get_executor(),
                 [self, res = std::move(res)]() mutable {
                   self->write(std::move(res));
                 });
    });
  }

  void write(http_response res) {
    auto ptr = std::make_shared<http_response>(std::move(res));
    bool close = !ptr->keep_alive();
    http::async_write(stream_, *ptr,
                      [self = this->shared_from_this(), ptr,
                       close](beast::error_code ec, size_t) {
                        if (ec || close)
                          self->shutdown();
                        else
                          self->do_read();
                      });
  }

  void upgrade(const http_request& req) {
    auto target = std::string_view{req.target().data(), req.target().size()};
    auto reject = [&](http::status status, const char* msg) {
      write(
        http_router::error(status, "bad_request", msg, req.version(), false));
    };
    if (target.substr(0, target.find('?')) != "/v1/ws") {
      reject(http::status::not_found, "WebSocket endpoint is /v1/ws");
      return;
    }
    // A browser always names the page's origin; other clients send none.
    auto origin = req.find(http::field::origin);
    if (origin != req.end()
        && !origin_allowed(ctx_->cfg,
                           {origin->value().data(), origin->value().size()})) {
      ctx_->stats.origin_rejected.fetch_add(1, std::memory_order_relaxed);
      log()->debug("refused a WebSocket upgrade from origin {}",
                   std::string_view{origin->value().data(),
                                    origin->value().size()});
      write(http_router::error(http::status::forbidden, "forbidden",
                               "origin not allowed", req.version(), false));
      return;
    }
    if (req.method() != http::verb::get
        || req[http::field::sec_websocket_version] != "13") {
      reject(http::status::upgrade_required, "WebSocket version 13 required");
      return;
    }
    auto key = req[http::field::sec_websocket_key];
    if (key.empty()) {
      reject(http::status::bad_request, "missing Sec-WebSocket-Key");
      return;
    }
    // The client may list its subprotocols over several header lines.
    std::string offered;
    auto [first, last] = req.equal_range(http::field::sec_websocket_protocol);
    for (auto i = first; i != last; ++i) {
      offered.append(i->value().data(), i->value().size());
      offered += ',';
    }
    auto format = frames::negotiate_subprotocol(offered);
    // Weak here: a connection that never finishes its upgrade must not keep
    // the node's actors (their handles in the deps) from stopping.
    auto deps = sessions_.lock();
    if (!deps) {
      write(http_router::error(http::status::service_unavailable, "unavailable",
                               "the node is stopping", req.version(), false));
      return;
    }
    if (!format) {
      write(http_router::error(http::status::bad_request,
                               "unsupported_subprotocol",
                               "no supported subprotocol offered; this node "
                               "speaks switchyard.v1.json, "
                               "switchyard.v1.ndjson and switchyard.v1.msgpack",
                               req.version(), false));
      return;
    }
    auto token = bearer_token(req);
    if (token.empty())
      token = query_param(target, "token");
    std::string chosen;
    if (!offered.empty())
      chosen = "Sec-WebSocket-Protocol: "
        + std::string{frames::subprotocol_name(*format)} + "\r\n";
    auto response = std::make_shared<std::string>(
      "HTTP/1.1 101 Switching Protocols\r\n"
      "Upgrade: websocket\r\n"
      "Connection: Upgrade\r\n"
      "Server: switchyard\r\n"
      + chosen + "Sec-WebSocket-Accept: "
      + websocket_accept({key.data(), key.size()}) + "\r\n\r\n");
    beast::get_lowest_layer(stream_).expires_never();
    asio::async_write(stream_, asio::buffer(*response),
                      [self = this->shared_from_this(), response,
                       deps = std::move(deps), token = std::move(token),
                       format = *format](beast::error_code ec, size_t) mutable {
                        if (ec)
                          return;
                        self->start_websocket(std::move(deps), std::move(token),
                                              format);
                      });
  }

  void start_websocket(session_deps_ptr deps, std::string token,
                       frames::wire_format format) {
    auto leftover = beast::buffers_to_string(buffer_.data());
    std::shared_ptr<ws_connection> conn;
    if constexpr (is_tls) {
      // Already on an I/O thread: the connection takes the TLS stream over.
      conn = std::make_shared<ws_connection>(
        std::make_unique<tls_stream>(std::move(stream_)), ctx_, format);
    } else {
      // Move the socket from the HTTP thread to an I/O thread: fan-outs
      // never delay publishes, health checks or introspection.
      auto http_sock = stream_.release_socket();
      beast::error_code ec;
      auto protocol = http_sock.local_endpoint(ec).protocol();
      if (ec)
        return;
      auto fd = http_sock.release(ec);
      if (ec)
        return;
      asio::ip::tcp::socket sock{pool_.next()};
      sock.assign(protocol, fd, ec);
      if (ec) {
        log()->warn("cannot move an upgraded socket to its I/O thread: {}",
                    ec.message());
        ::close(fd);
        return;
      }
      conn = std::make_shared<ws_connection>(std::move(sock), ctx_, format);
    }
    auto session = sys_.spawn<session_server>(conn, std::move(deps),
                                              std::move(token));
    conn->start(std::move(session), std::move(leftover));
  }

  void shutdown() {
    beast::error_code ignored;
    auto& lowest = beast::get_lowest_layer(stream_);
    lowest.socket().shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
    lowest.close();
  }

  Stream stream_;
  io_pool& pool_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  caf::actor_system& sys_;
  node_context_ptr ctx_;
  std::weak_ptr<const session_deps> sessions_;
  std::shared_ptr<http_router> router_;
};

} // namespace

listener::listener(io_pool& pool, caf::actor_system& sys, node_context_ptr ctx,
                   std::shared_ptr<tls_config> tls)
  : pool_(pool),
    sys_(sys),
    ctx_(std::move(ctx)),
    tls_(std::move(tls)),
    router_(std::make_shared<http_router>(sys, ctx_)),
    acceptor_(pool.http()),
    retry_timer_(pool.http()) {
  // nop
}

void listener::open(const tcp::endpoint& ep) {
  acceptor_.open(ep.protocol());
  acceptor_.set_option(asio::socket_base::reuse_address(true));
  acceptor_.bind(ep);
  acceptor_.listen(asio::socket_base::max_listen_connections);
}

void listener::run(std::weak_ptr<const session_deps> sessions) {
  sessions_ = std::move(sessions);
  do_accept();
}

void listener::stop() {
  asio::post(acceptor_.get_executor(), [self = shared_from_this()] {
    beast::error_code ignored;
    self->acceptor_.close(ignored);
    self->retry_timer_.cancel();
  });
}

unsigned short listener::port() const {
  return acceptor_.local_endpoint().port();
}

void listener::do_accept() {
  // A TLS connection lives on one I/O thread from its first byte on.
  acceptor_.async_accept(
    tls_ ? pool_.next() : pool_.http(),
    [self = shared_from_this()](beast::error_code ec,
                                asio::ip::tcp::socket socket) {
      if (ec == asio::error::operation_aborted || !self->acceptor_.is_open())
        return;
      if (!ec) {
        if (self->tls_) {
          std::make_shared<http_session<tls_stream>>(
            tls_stream{std::move(socket), *self->tls_->current()}, self->pool_,
            self->sys_, self->ctx_, self->sessions_, self->router_)
            ->run();
        } else {
          std::make_shared<http_session<beast::tcp_stream>>(
            beast::tcp_stream{std::move(socket)}, self->pool_, self->sys_,
            self->ctx_, self->sessions_, self->router_)
            ->run();
        }
        self->do_accept();
        return;
      }
      // Out of file descriptors (EMFILE) and the like: the pending
      // connection stays in the backlog, so accepting again at once would
      // spin. Log (at most once per pause) and retry after a pause.
      log()->warn("accept failed: {}; retrying in {} ms", ec.message(),
                  accept_retry_delay.count());
      self->retry_timer_.expires_after(accept_retry_delay);
      self->retry_timer_.async_wait([self](beast::error_code wait_ec) {
        if (!wait_ec)
          self->do_accept();
      });
    });
}

} // namespace switchyard::net
