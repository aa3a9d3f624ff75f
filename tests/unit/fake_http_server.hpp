// A scripted HTTP server on 127.0.0.1 for the tests of the streaming HTTP
// client and the agents that use it: each connection, one after the other,
// runs a script on a blocking socket, so a test says byte for byte and
// pause for pause what the client gets. Every read gives up after a few
// seconds, so a script waiting for a client that never comes ends anyway
// (reads use recv(2): Asio's blocking reads poll past SO_RCVTIMEO).

#pragma once

#include <sys/socket.h>
#include <sys/time.h>

#include <cerrno>
#include <cstdio>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>

namespace switchyard::test {

class fake_http_server {
public:
  using tcp = boost::asio::ip::tcp;
  using script = std::function<void(tcp::socket&, const std::string&)>;

  /// Serves every connection with `run`, given the request (header and
  /// body) it sent.
  /// With `read_request` false, the script runs before the client sent
  /// anything (and gets an empty request).
  explicit fake_http_server(script run, bool read_request = true)
    : run_(std::move(run)),
      read_first_(read_request),
      acceptor_(io_,
                tcp::endpoint{boost::asio::ip::make_address("127.0.0.1"), 0}) {
    thread_ = std::thread{[this] {
      serve();
    }};
  }

  ~fake_http_server() {
    stopping_ = true;
    // Wakes the blocking accept.
    boost::system::error_code ec;
    tcp::socket poke{io_};
    poke.connect(acceptor_.local_endpoint(), ec);
    thread_.join();
  }

  uint16_t port() const {
    return acceptor_.local_endpoint().port();
  }

  std::string url(const std::string& path = "/") const {
    return "http://127.0.0.1:" + std::to_string(port()) + path;
  }

  /// The requests served so far.
  std::vector<std::string> requests() {
    std::lock_guard<std::mutex> guard{mtx_};
    return requests_;
  }

  /// Waits until `n` requests have arrived.
  bool
  wait_requests(size_t n,
                std::chrono::milliseconds timeout = std::chrono::seconds{5}) {
    std::unique_lock<std::mutex> guard{mtx_};
    return cv_.wait_for(guard, timeout, [&] {
      return requests_.size() >= n;
    });
  }

  /// Waits until `n` connections have ended their script.
  bool
  wait_served(size_t n,
              std::chrono::milliseconds timeout = std::chrono::seconds{5}) {
    std::unique_lock<std::mutex> guard{mtx_};
    return cv_.wait_for(guard, timeout, [&] {
      return served_ >= n;
    });
  }

  // -- for scripts ------------------------------------------------------------

  /// False once the client closed the connection.
  static bool write(tcp::socket& sock, const std::string& bytes) {
    boost::system::error_code ec;
    boost::asio::write(sock, boost::asio::buffer(bytes), ec);
    return !ec;
  }

  static void sleep(int ms) {
    std::this_thread::sleep_for(std::chrono::milliseconds{ms});
  }

  /// Blocks until the client closes the connection (or reads time out).
  /// Returns whether it was the client.
  static bool wait_closed(tcp::socket& sock) {
    char buf[512];
    for (;;) {
      auto n = ::recv(sock.native_handle(), buf, sizeof(buf), 0);
      if (n == 0)
        return true;
      if (n < 0)
        return errno == ECONNRESET;
    }
  }

  /// One chunk of a chunked body.
  static std::string chunk(const std::string& data) {
    char size[32];
    snprintf(size, sizeof(size), "%zx\r\n", data.size());
    return size + data + "\r\n";
  }

  /// A chat completion chunk with `content` as its delta, as an event.
  static std::string completion_event(const std::string& content) {
    return "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\","
           "\"choices\":[{\"index\":0,\"delta\":{\"content\":\""
      + content + "\"}}]}\n\n";
  }

  static constexpr const char* sse_header
    = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
      "Transfer-Encoding: chunked\r\n\r\n";

private:
  void serve() {
    for (;;) {
      tcp::socket sock{io_};
      boost::system::error_code ec;
      acceptor_.accept(sock, ec);
      if (stopping_ || ec)
        return;
      timeval tv{5, 0};
      setsockopt(sock.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv,
                 sizeof(tv));
      auto req = read_first_ ? read_request(sock) : std::string{};
      {
        std::lock_guard<std::mutex> guard{mtx_};
        requests_.push_back(req);
        cv_.notify_all();
      }
      run_(sock, req);
      sock.close(ec);
      std::lock_guard<std::mutex> guard{mtx_};
      ++served_;
      cv_.notify_all();
    }
  }

  /// Reads the header and a Content-Length body.
  static std::string read_request(tcp::socket& sock) {
    std::string req;
    char buf[4096];
    size_t header_end = std::string::npos;
    size_t want = 0;
    for (;;) {
      if (header_end == std::string::npos) {
        header_end = req.find("\r\n\r\n");
        if (header_end != std::string::npos) {
          auto pos = req.find("Content-Length: ");
          if (pos != std::string::npos && pos < header_end)
            want = std::stoul(req.substr(pos + 16));
          header_end += 4;
        }
      }
      if (header_end != std::string::npos && req.size() >= header_end + want)
        break;
      auto n = ::recv(sock.native_handle(), buf, sizeof(buf), 0);
      if (n <= 0)
        break;
      req.append(buf, static_cast<size_t>(n));
    }
    return req;
  }

  script run_;
  bool read_first_;
  boost::asio::io_context io_;
  tcp::acceptor acceptor_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
  std::mutex mtx_;
  std::condition_variable cv_;
  std::vector<std::string> requests_;
  size_t served_ = 0;
};

} // namespace switchyard::test
