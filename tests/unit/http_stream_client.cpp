#define CAF_SUITE http_stream_client

#include <caf/test/dsl.hpp>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <thread>

#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "net/http_stream_client.hpp"
#include "tests/unit/fake_http_server.hpp"

using namespace switchyard;
using namespace std::chrono_literals;
using net::http_stream_client;
using test::fake_http_server;
using tcp = boost::asio::ip::tcp;

namespace {

/// What the client's callbacks got, from its I/O thread.
struct collector {
  std::mutex mtx;
  std::condition_variable cv;
  std::vector<std::string> events;
  std::optional<std::string> done;
  int done_calls = 0;

  http_stream_client::event_handler on_event() {
    return [this](std::string data) {
      std::lock_guard<std::mutex> guard{mtx};
      events.push_back(std::move(data));
      cv.notify_all();
    };
  }

  http_stream_client::done_handler on_done() {
    return [this](std::string error) {
      std::lock_guard<std::mutex> guard{mtx};
      done = std::move(error);
      ++done_calls;
      cv.notify_all();
    };
  }

  /// The error (empty on success), or "<none>" when the request did not end
  /// within `timeout`.
  std::string wait_done(std::chrono::milliseconds timeout = 5s) {
    std::unique_lock<std::mutex> guard{mtx};
    if (!cv.wait_for(guard, timeout, [this] {
          return done.has_value();
        }))
      return "<none>";
    return *done;
  }

  bool wait_events(size_t n, std::chrono::milliseconds timeout = 5s) {
    std::unique_lock<std::mutex> guard{mtx};
    return cv.wait_for(guard, timeout, [&] {
      return events.size() >= n;
    });
  }

  std::vector<std::string> got() {
    std::lock_guard<std::mutex> guard{mtx};
    return events;
  }
};

std::shared_ptr<http_stream_client>
post(collector& c, const std::string& url, http_stream_options opts = {},
     http_stream_client::header_list headers = {}) {
  return http_stream_client::post(url, std::move(headers), R"({"a":1})", opts,
                                  c.on_event(), c.on_done());
}

using strings = std::vector<std::string>;

} // namespace

CAF_TEST(URLs parse into scheme host port and target) {
  std::string error;
  auto a = parse_http_url("https://api.openai.com/v1/chat?x=1#frag", error);
  CAF_REQUIRE(a);
  CAF_CHECK(a->tls);
  CAF_CHECK_EQUAL(a->host, "api.openai.com");
  CAF_CHECK_EQUAL(a->port, "443");
  CAF_CHECK(!a->explicit_port);
  CAF_CHECK_EQUAL(a->target, "/v1/chat?x=1");
  auto b = parse_http_url("HTTP://[::1]:8080", error);
  CAF_REQUIRE(b);
  CAF_CHECK(!b->tls);
  CAF_CHECK_EQUAL(b->host, "::1");
  CAF_CHECK_EQUAL(b->port, "8080");
  CAF_CHECK_EQUAL(b->target, "/");
  auto c = parse_http_url("http://h?q", error);
  CAF_REQUIRE(c);
  CAF_CHECK_EQUAL(c->target, "/?q");
  for (auto bad :
       {"", "ftp://h/", "http//h", "http://", "http://:80/", "http://u:p@h/",
        "http://h:0/", "http://h:65536/", "http://h:8a/", "http://h:/",
        "http://[::1/", "http://[::1]x/", "http://h /", "http://h/\n"}) {
    error.clear();
    CAF_CHECK(!parse_http_url(bad, error));
    CAF_CHECK(!error.empty());
  }
}

CAF_TEST(events arrive as the server sends them) {
  std::mutex mtx;
  std::condition_variable cv;
  bool first_seen = false;
  fake_http_server server{[&](tcp::socket& sock, const std::string&) {
    fake_http_server::write(sock, fake_http_server::sse_header);
    fake_http_server::write(sock, fake_http_server::chunk("data: one\n\n"));
    // The rest only once the client handed on the first event: a client
    // that waited for more bytes or for the end would time out here.
    std::unique_lock<std::mutex> guard{mtx};
    if (!cv.wait_for(guard, 5s, [&] {
          return first_seen;
        }))
      return;
    fake_http_server::write(sock, fake_http_server::chunk("data: t"));
    fake_http_server::write(sock, fake_http_server::chunk("wo\r\n\r\n: x\n"));
    fake_http_server::write(
      sock, fake_http_server::chunk("data: [DONE]\n\n") + "0\r\n\r\n");
  }};
  collector c;
  auto req = post(c, server.url("/v1/chat/completions"));
  CAF_REQUIRE(c.wait_events(1));
  {
    std::lock_guard<std::mutex> guard{mtx};
    first_seen = true;
    cv.notify_all();
  }
  CAF_CHECK_EQUAL(c.wait_done(), "");
  CAF_CHECK_EQUAL(c.got(), (strings{"one", "two", "[DONE]"}));
}

CAF_TEST(the request is a JSON POST with the given headers) {
  fake_http_server server{[](tcp::socket& sock, const std::string&) {
    fake_http_server::write(sock,
                            "HTTP/1.1 200 OK\r\nContent-Type: "
                            "text/event-stream; charset=utf-8\r\n"
                            "Content-Length: 9\r\n\r\ndata: x\n\n");
  }};
  collector c;
  auto req = post(c, server.url("/v1/chat/completions?debug=1"), {},
                  {{"Authorization", "Bearer sk-test"}});
  CAF_CHECK_EQUAL(c.wait_done(), "");
  CAF_CHECK_EQUAL(c.got(), (strings{"x"}));
  auto reqs = server.requests();
  CAF_REQUIRE_EQUAL(reqs.size(), 1u);
  auto& r = reqs[0];
  CAF_CHECK_EQUAL(r.substr(0, r.find("\r\n")),
                  "POST /v1/chat/completions?debug=1 HTTP/1.1");
  CAF_CHECK_NOT_EQUAL(r.find("\r\nAuthorization: Bearer sk-test\r\n"),
                      std::string::npos);
  CAF_CHECK_NOT_EQUAL(r.find("\r\nContent-Type: application/json\r\n"),
                      std::string::npos);
  CAF_CHECK_NOT_EQUAL(
    r.find("\r\nHost: 127.0.0.1:" + std::to_string(server.port()) + "\r\n"),
    std::string::npos);
  CAF_CHECK_EQUAL(r.substr(r.size() - 7), R"({"a":1})");
}

CAF_TEST(a body that ends without a length ends the stream) {
  fake_http_server server{[](tcp::socket& sock, const std::string&) {
    fake_http_server::write(sock,
                            "HTTP/1.1 200 OK\r\nContent-Type: "
                            "text/event-stream\r\n\r\ndata: a\r\rdata: b"
                            "\r\n\r\n");
  }};
  collector c;
  auto req = post(c, server.url());
  CAF_CHECK_EQUAL(c.wait_done(), "");
  CAF_CHECK_EQUAL(c.got(), (strings{"a", "b"}));
}

CAF_TEST(a stream that ends within an event fails) {
  fake_http_server server{[](tcp::socket& sock, const std::string&) {
    fake_http_server::write(sock, fake_http_server::sse_header);
    fake_http_server::write(
      sock, fake_http_server::chunk("data: a\n\ndata: b") + "0\r\n\r\n");
  }};
  collector c;
  auto req = post(c, server.url());
  CAF_CHECK_EQUAL(c.wait_done(), "the response ended within an event");
  CAF_CHECK_EQUAL(c.got(), (strings{"a"}));
}

CAF_TEST(a non - 2xx answer reports its status and at most 4 KiB of body) {
  std::string body(10000, 'e');
  body.replace(0, 5, "oops:");
  fake_http_server server{[&](tcp::socket& sock, const std::string&) {
    fake_http_server::write(sock,
                            "HTTP/1.1 503 Service Unavailable\r\n"
                            "Content-Type: text/plain\r\n"
                            "Content-Length: "
                              + std::to_string(body.size()) + "\r\n\r\n"
                              + body);
  }};
  collector c;
  auto req = post(c, server.url());
  CAF_CHECK_EQUAL(c.wait_done(), "HTTP 503: " + body.substr(0, 4096));
  CAF_CHECK(c.got().empty());
}

CAF_TEST(a short error body is quoted whole) {
  fake_http_server server{[](tcp::socket& sock, const std::string&) {
    fake_http_server::write(sock,
                            "HTTP/1.1 401 Unauthorized\r\n"
                            "Transfer-Encoding: chunked\r\n\r\n"
                              + fake_http_server::chunk("{\"error\":")
                              + fake_http_server::chunk("1}") + "0\r\n\r\n");
  }};
  collector c;
  auto req = post(c, server.url());
  CAF_CHECK_EQUAL(c.wait_done(), R"(HTTP 401: {"error":1})");
}

CAF_TEST(a 2xx answer that is no event stream fails) {
  fake_http_server server{[](tcp::socket& sock, const std::string&) {
    fake_http_server::write(sock,
                            "HTTP/1.1 200 OK\r\nContent-Type: "
                            "application/json\r\nContent-Length: "
                            "2\r\n\r\n{}");
  }};
  collector c;
  auto req = post(c, server.url());
  CAF_CHECK_EQUAL(c.wait_done(),
                  "unexpected content type application/json "
                  "(want text/event-stream): {}");
}

CAF_TEST(an error event fails the request) {
  fake_http_server server{[](tcp::socket& sock, const std::string&) {
    fake_http_server::write(sock, fake_http_server::sse_header);
    fake_http_server::write(
      sock, fake_http_server::chunk("data: a\n\nevent: error\ndata: boom\n\n"));
    fake_http_server::wait_closed(sock);
  }};
  collector c;
  auto req = post(c, server.url());
  CAF_CHECK_EQUAL(c.wait_done(), "the server sent an error event: boom");
  CAF_CHECK_EQUAL(c.got(), (strings{"a"}));
  CAF_CHECK(server.wait_served(1));
}

CAF_TEST(a server that never answers times out) {
  fake_http_server server{[](tcp::socket& sock, const std::string&) {
    fake_http_server::wait_closed(sock);
  }};
  collector c;
  http_stream_options opts;
  opts.first_byte_timeout = 200ms;
  auto start = std::chrono::steady_clock::now();
  auto req = post(c, server.url(), opts);
  CAF_CHECK_EQUAL(c.wait_done(), "no response within 200 ms");
  CAF_CHECK_GREATER_OR_EQUAL(std::chrono::steady_clock::now() - start, 200ms);
  // The client closed the connection: the script ended.
  CAF_CHECK(server.wait_served(1));
}

CAF_TEST(a stream that falls silent times out) {
  fake_http_server server{[](tcp::socket& sock, const std::string&) {
    fake_http_server::write(sock, fake_http_server::sse_header);
    for (int i = 0; i < 3; ++i) {
      fake_http_server::write(sock, fake_http_server::chunk("data: x\n\n"));
      fake_http_server::sleep(100);
    }
    fake_http_server::wait_closed(sock);
  }};
  collector c;
  http_stream_options opts;
  // Shorter than the whole stream, longer than each pause: only the
  // silence at the end counts.
  opts.idle_timeout = 250ms;
  auto req = post(c, server.url(), opts);
  CAF_CHECK_EQUAL(c.wait_done(), "no data for 250 ms");
  CAF_CHECK_EQUAL(c.got().size(), 3u);
}

CAF_TEST(a refused connection fails) {
  uint16_t port;
  {
    fake_http_server gone{[](tcp::socket&, const std::string&) {}};
    port = gone.port();
  }
  collector c;
  auto req = post(c, "http://127.0.0.1:" + std::to_string(port) + "/");
  auto error = c.wait_done();
  CAF_CHECK_EQUAL(
    error.rfind("cannot connect to 127.0.0.1:" + std::to_string(port) + ": ",
                0),
    0u);
}

CAF_TEST(an invalid URL fails through on_done) {
  collector c;
  auto req = post(c, "ftp://example.com/");
  CAF_CHECK_EQUAL(c.wait_done(),
                  "invalid URL: URL must start with http:// or https://");
}

CAF_TEST(https to a server that speaks no TLS fails the handshake) {
  fake_http_server server{[](tcp::socket& sock, const std::string&) {
                            fake_http_server::write(
                              sock, "HTTP/1.1 400 Bad Request\r\n\r\n");
                          },
                          false};
  collector c;
  auto req = post(c, "https://127.0.0.1:" + std::to_string(server.port()));
  auto error = c.wait_done();
  CAF_CHECK_EQUAL(error.rfind("TLS with 127.0.0.1: ", 0), 0u);
}

CAF_TEST(cancel closes the connection and calls nothing more) {
  fake_http_server server{[](tcp::socket& sock, const std::string&) {
    fake_http_server::write(sock, fake_http_server::sse_header);
    fake_http_server::write(sock, fake_http_server::chunk("data: x\n\n"));
    fake_http_server::wait_closed(sock);
  }};
  collector c;
  auto req = post(c, server.url());
  CAF_REQUIRE(c.wait_events(1));
  req->cancel();
  req->cancel();
  CAF_CHECK(server.wait_served(1));
  CAF_CHECK_EQUAL(c.wait_done(200ms), "<none>");
}

CAF_TEST(a response over the size limit fails) {
  fake_http_server server{[](tcp::socket& sock, const std::string&) {
    fake_http_server::write(sock, fake_http_server::sse_header);
    for (int i = 0; i < 50; ++i)
      fake_http_server::write(
        sock,
        fake_http_server::chunk("data: " + std::string(100, 'x') + "\n\n"));
    fake_http_server::wait_closed(sock);
  }};
  collector c;
  http_stream_options opts;
  opts.max_response_size = 1000;
  auto req = post(c, server.url(), opts);
  CAF_CHECK_EQUAL(c.wait_done(), "response over 1000 bytes");
  CAF_CHECK_LESS(c.got().size(), 10u);
}

CAF_TEST(dropping the handle does not end the request) {
  fake_http_server server{[](tcp::socket& sock, const std::string&) {
    fake_http_server::write(sock, fake_http_server::sse_header);
    fake_http_server::sleep(50);
    fake_http_server::write(
      sock, fake_http_server::chunk("data: late\n\n") + "0\r\n\r\n");
  }};
  collector c;
  post(c, server.url());
  CAF_CHECK_EQUAL(c.wait_done(), "");
  CAF_CHECK_EQUAL(c.got(), (strings{"late"}));
  CAF_CHECK_EQUAL(c.done_calls, 1);
}

namespace {

/// A self-signed certificate for 127.0.0.1: no system trusts it.
void use_self_signed(boost::asio::ssl::context& ctx) {
  auto* key = EVP_EC_gen("P-256");
  auto* cert = X509_new();
  X509_set_version(cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert), 0);
  X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
  X509_set_pubkey(cert, key);
  auto* name = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(
    name, "CN", MBSTRING_ASC,
    reinterpret_cast<const unsigned char*>("127.0.0.1"), -1, -1, 0);
  X509_set_issuer_name(cert, name);
  X509_sign(cert, key, EVP_sha256());
  SSL_CTX_use_certificate(ctx.native_handle(), cert);
  SSL_CTX_use_PrivateKey(ctx.native_handle(), key);
  X509_free(cert);
  EVP_PKEY_free(key);
}

} // namespace

CAF_TEST(https refuses a certificate the system does not trust) {
  namespace ssl = boost::asio::ssl;
  boost::asio::io_context io;
  tcp::acceptor acceptor{io, {boost::asio::ip::make_address("127.0.0.1"), 0}};
  ssl::context ctx{ssl::context::tls_server};
  use_self_signed(ctx);
  std::thread server{[&] {
    ssl::stream<tcp::socket> stream{io, ctx};
    boost::system::error_code ec;
    acceptor.accept(stream.next_layer(), ec);
    if (!ec)
      stream.handshake(ssl::stream_base::server, ec);
    // The client aborts the handshake: nothing more to serve.
  }};
  collector c;
  auto req = post(c,
                  "https://127.0.0.1:"
                    + std::to_string(acceptor.local_endpoint().port())
                    + "/v1/chat/completions");
  CAF_CHECK_EQUAL(c.wait_done(),
                  "TLS with 127.0.0.1: certificate verify failed");
  server.join();
  CAF_CHECK(c.got().empty());
}
