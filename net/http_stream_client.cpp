#include "net/http_stream_client.hpp"

#include <array>
#include <atomic>
#include <cctype>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <openssl/ssl.h>

#include "actors/log.hpp"
#include "net/io_thread.hpp"
#include "net/sse.hpp"
#include "schemas/http_url.hpp"

namespace switchyard::net {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
namespace http = boost::beast::http;
using boost::system::error_code;
using tcp = asio::ip::tcp;

namespace {

/// The TLS context of https requests: verifies against the system's trust
/// store. Each request holds a reference, so the context outlives every
/// request still pending on the I/O thread at exit (net/io_thread.hpp).
std::shared_ptr<ssl::context> client_tls() {
  static auto instance = [] {
    auto tls = std::make_shared<ssl::context>(ssl::context::tls_client);
    error_code ec;
    tls->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2
                       | ssl::context::no_sslv3 | ssl::context::no_tlsv1
                       | ssl::context::no_tlsv1_1,
                     ec);
    tls->set_verify_mode(ssl::verify_peer, ec);
    tls->set_default_verify_paths(ec);
    if (ec)
      logger("http")->error("cannot load the system's trust store: {}; "
                            "https requests will fail verification",
                            ec.message());
    return tls;
  }();
  return instance;
}

/// Whether the media type of `content_type` (parameters aside) is
/// text/event-stream, in any case.
bool is_event_stream(std::string_view content_type) {
  auto end = content_type.find(';');
  auto type = content_type.substr(0, end);
  while (!type.empty() && (type.back() == ' ' || type.back() == '\t'))
    type.remove_suffix(1);
  constexpr std::string_view want = "text/event-stream";
  if (type.size() != want.size())
    return false;
  for (size_t i = 0; i < want.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(type[i])) != want[i])
      return false;
  return true;
}

std::string ms(std::chrono::milliseconds d) {
  return std::to_string(d.count()) + " ms";
}

class exchange final : public http_stream_client,
                       public std::enable_shared_from_this<exchange> {
public:
  exchange(http_url url, header_list headers, std::string body,
           http_stream_options opts, event_handler on_event,
           done_handler on_done)
    : io_(client_io()),
      tls_context_(client_tls()),
      url_(std::move(url)),
      opts_(opts),
      on_event_(std::move(on_event)),
      on_done_(std::move(on_done)),
      resolver_(io_),
      socket_(io_),
      timer_(io_),
      // Room for the largest header the parser accepts plus one read.
      buffer_(header_limit + chunk_size) {
    parser_.header_limit(header_limit);
    parser_.body_limit(opts_.max_response_size);
    req_.method(http::verb::post);
    req_.target(url_.target);
    req_.version(11);
    auto host = url_.host.find(':') == std::string::npos
      ? url_.host
      : "[" + url_.host + "]";
    if (url_.explicit_port)
      host += ":" + url_.port;
    req_.set(http::field::host, host);
    req_.set(http::field::user_agent, "switchyard");
    req_.set(http::field::content_type, "application/json");
    req_.set(http::field::accept,
             opts_.event_stream ? "text/event-stream" : "application/json");
    for (auto& [name, value] : headers)
      req_.set(name, value);
    req_.keep_alive(false);
    req_.body() = std::move(body);
    req_.prepare_payload();
  }

  /// Begins on the I/O thread: the request, or its failure with `error`.
  void start(std::string error) {
    asio::post(io_,
               [self = shared_from_this(), error = std::move(error)]() mutable {
                 if (error.empty())
                   self->resolve();
                 else
                   self->finish(std::move(error));
               });
  }

  void cancel() override {
    if (cancelled_.exchange(true))
      return;
    asio::post(io_, [self = shared_from_this()] {
      self->finish("cancelled");
    });
  }

private:
  static constexpr size_t header_limit = 16 * 1024;
  static constexpr size_t chunk_size = 16 * 1024;

  /// Runs `f` with the stream the request speaks over.
  template<class F>
  void with_stream(F&& f) {
    if (tls_)
      f(*tls_);
    else
      f(socket_);
  }

  /// Starts the timer of one phase; `what` is the error should it fire.
  void arm(std::chrono::milliseconds timeout, std::string what) {
    timer_.expires_after(timeout);
    timer_.async_wait(
      [self = shared_from_this(), what = std::move(what)](error_code ec) {
        // A timer re-armed after it expired still runs the old handler
        // without an error: only a deadline still past counts.
        if (ec || self->timer_.expiry() > asio::steady_timer::clock_type::now())
          return;
        self->timed_out_ = what;
        self->close();
      });
  }

  void resolve() {
    if (done_)
      return;
    arm(opts_.connect_timeout,
        "no connection to " + url_.host + ":" + url_.port + " within "
          + ms(opts_.connect_timeout));
    resolver_.async_resolve(
      url_.host, url_.port,
      [self = shared_from_this()](error_code ec,
                                  tcp::resolver::results_type hosts) {
        if (ec)
          return self->fail(ec, "cannot resolve " + self->url_.host);
        self->connect(hosts);
      });
  }

  // Each step begins by checking done_: the handler of an operation that
  // completed just before a cancel or a timeout still runs, and must not
  // start the next one (async_connect would reopen the closed socket).

  void connect(const tcp::resolver::results_type& hosts) {
    if (done_)
      return;
    asio::async_connect(
      socket_, hosts,
      [self = shared_from_this()](error_code ec, const tcp::endpoint&) {
        if (ec)
          return self->fail(
            ec, "cannot connect to " + self->url_.host + ":" + self->url_.port);
        self->handshake();
      });
  }

  void handshake() {
    if (done_)
      return;
    if (!url_.tls)
      return send();
    tls_.emplace(socket_, *tls_context_);
    auto* ssl = tls_->native_handle();
    error_code ec;
    asio::ip::make_address(url_.host, ec);
    // SNI names hosts only; an IP address is verified as such.
    if (ec && SSL_set_tlsext_host_name(ssl, url_.host.c_str()) != 1)
      return finish("TLS with " + url_.host + ": cannot set the server name");
    tls_->set_verify_callback(ssl::host_name_verification(url_.host), ec);
    if (ec)
      return fail(ec, "TLS with " + url_.host);
    tls_->async_handshake(
      ssl::stream_base::client, [self = shared_from_this()](error_code ec) {
        if (ec)
          return self->fail(ec, "TLS with " + self->url_.host);
        self->send();
      });
  }

  void send() {
    if (done_)
      return;
    arm(opts_.first_byte_timeout,
        "no response within " + ms(opts_.first_byte_timeout));
    with_stream([this](auto& stream) {
      http::async_write(stream, req_,
                        [self = shared_from_this()](error_code ec, size_t) {
                          if (ec)
                            return self->fail(ec, "sending the request");
                          self->read_header();
                        });
    });
  }

  void read_header() {
    if (done_)
      return;
    with_stream([this](auto& stream) {
      http::async_read_header(stream, buffer_, parser_,
                              [self = shared_from_this()](error_code ec,
                                                          size_t) {
                                if (ec)
                                  return self->fail(ec, "reading the response");
                                self->on_header();
                              });
    });
  }

  void on_header() {
    if (done_)
      return;
    auto& res = parser_.get();
    auto status = res.result_int();
    if (status < 200 || status > 299) {
      error_prefix_ = "HTTP " + std::to_string(status) + ": ";
    } else if (auto type = res[http::field::content_type]; opts_.event_stream
               && !type.empty()
               && !is_event_stream({type.data(), type.size()})) {
      error_prefix_ = "unexpected content type "
        + std::string{type.data(), type.size()} + " (want text/event-stream): ";
    }
    if (parser_.is_done())
      return on_body_done();
    read_body();
  }

  void read_body() {
    if (done_)
      return;
    arm(opts_.idle_timeout, "no data for " + ms(opts_.idle_timeout));
    auto& body = parser_.get().body();
    body.data = chunk_.data();
    body.size = chunk_.size();
    with_stream([this](auto& stream) {
      http::async_read_some(stream, buffer_, parser_,
                            [self = shared_from_this()](error_code ec, size_t) {
                              self->on_body(ec);
                            });
    });
  }

  void on_body(error_code ec) {
    if (done_)
      return;
    if (ec == http::error::need_buffer)
      ec = {};
    if (ec) {
      if (ec == http::error::body_limit)
        return finish("response over " + std::to_string(opts_.max_response_size)
                      + " bytes");
      return fail(ec, "reading the response");
    }
    // The body's free size shrinks by what the parser wrote into chunk_.
    std::string_view got{chunk_.data(),
                         chunk_.size() - parser_.get().body().size};
    if (!error_prefix_.empty()) {
      // error_body_ never exceeds max_error_body.
      auto room = max_error_body - error_body_.size();
      error_body_.append(got.substr(0, room));
      if (error_body_.size() == max_error_body)
        return on_body_done();
    } else if (opts_.event_stream && !deliver(got)) {
      return;
    }
    if (parser_.is_done())
      return on_body_done();
    read_body();
  }

  /// Parses body bytes and hands on each event; false when it finished the
  /// request.
  bool deliver(std::string_view bytes) {
    events_.clear();
    bool ok = sse_.feed(bytes, events_);
    for (auto& ev : events_) {
      if (done_ || cancelled_)
        return false;
      if (ev.type == "error") {
        finish("the server sent an error event: " + ev.data);
        return false;
      }
      if (ev.type == "message" && on_event_)
        on_event_(std::move(ev.data));
    }
    if (!ok) {
      finish(sse_.error());
      return false;
    }
    return !done_;
  }

  void on_body_done() {
    if (!error_prefix_.empty())
      return finish(error_prefix_ + error_body_);
    if (sse_.in_event())
      return finish("the response ended within an event");
    finish({});
  }

  /// Fails with the reason of the timer when it closed the socket.
  void fail(error_code ec, const std::string& during) {
    if (!timed_out_.empty())
      return finish(timed_out_);
    finish(during + ": " + ec.message());
  }

  void close() {
    error_code ignored;
    resolver_.cancel();
    socket_.shutdown(tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
  }

  /// Ends the request once: closes the connection and reports `error`
  /// unless cancelled. Handlers of operations still pending then see
  /// `done_` or an aborted operation and stop.
  void finish(std::string error) {
    if (done_)
      return;
    done_ = true;
    timer_.cancel();
    close();
    auto on_done = std::move(on_done_);
    // The callbacks' captures go now, not with the handle the caller keeps.
    on_event_ = nullptr;
    on_done_ = nullptr;
    if (!cancelled_ && on_done)
      on_done(std::move(error));
  }

  asio::io_context& io_;
  /// Declared before the stream, so destroyed after it.
  std::shared_ptr<ssl::context> tls_context_;
  http_url url_;
  http_stream_options opts_;
  event_handler on_event_;
  done_handler on_done_;
  /// Set by any thread; everything else belongs to the I/O thread.
  std::atomic<bool> cancelled_{false};
  bool done_ = false;
  /// Why the timer closed the socket; empty while it did not.
  std::string timed_out_;
  tcp::resolver resolver_;
  tcp::socket socket_;
  std::optional<ssl::stream<tcp::socket&>> tls_;
  asio::steady_timer timer_;
  http::request<http::string_body> req_;
  http::response_parser<http::buffer_body> parser_;
  std::array<char, chunk_size> chunk_;
  boost::beast::flat_buffer buffer_;
  sse_parser sse_;
  std::vector<sse_event> events_;
  /// Set for a response that is no event stream: its body is an error.
  std::string error_prefix_;
  std::string error_body_;
};

} // namespace

http_stream_client::~http_stream_client() = default;

std::shared_ptr<http_stream_client>
http_stream_client::post(std::string_view url, header_list headers,
                         std::string body, http_stream_options opts,
                         event_handler on_event, done_handler on_done) {
  std::string error;
  auto parsed = parse_http_url(url, error);
  auto result = std::make_shared<exchange>(parsed.value_or(http_url{}),
                                           std::move(headers), std::move(body),
                                           opts, std::move(on_event),
                                           std::move(on_done));
  // An invalid URL fails like any request: on the I/O thread, after post
  // returned.
  result->start(parsed ? std::string{} : "invalid URL: " + error);
  return result;
}

namespace {

class stream_port : public http_port {
public:
  std::shared_ptr<http_request> post(std::string_view url, header_list headers,
                                     std::string body, http_stream_options opts,
                                     event_handler on_event,
                                     done_handler on_done) override {
    return http_stream_client::post(url, std::move(headers), std::move(body),
                                    opts, std::move(on_event),
                                    std::move(on_done));
  }
};

} // namespace

std::shared_ptr<http_port> make_http_port() {
  return std::make_shared<stream_port>();
}

} // namespace switchyard::net
