// Streamed HTTP POSTs as actors use them (an agent calling a model's API):
// net/http_stream_client.hpp implements this interface, so actors depend
// on neither Asio nor the network layer. Requests run on an I/O thread;
// callbacks run there too and must only hand their data on (an actor sends
// itself a message).

#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace switchyard {

/// Limits of one request.
struct http_stream_options {
  /// Resolving, connecting and the TLS handshake together.
  std::chrono::milliseconds connect_timeout{10'000};
  /// From sending the request to the response's header.
  std::chrono::milliseconds first_byte_timeout{30'000};
  /// Longest silence within the body.
  std::chrono::milliseconds idle_timeout{30'000};
  /// Largest body, chunked or not; a longer one fails the request.
  size_t max_response_size = 16 * 1024 * 1024;
  /// False for a plain request (a webhook, a push gateway): any content
  /// type, the body read and dropped, `on_event` never called.
  bool event_stream = true;
};

/// One request in flight.
class http_request {
public:
  virtual ~http_request() = default;

  /// Aborts the request; callable from any thread, any number of times.
  /// Neither callback is called for it after this returns, except one the
  /// I/O thread had already begun: a caller that hands callbacks on as
  /// messages tags them and drops those of a request it cancelled.
  virtual void cancel() = 0;
};

/// Starts requests.
class http_port {
public:
  /// Receives the data of each event (events of type "message" only).
  using event_handler = std::function<void(std::string data)>;
  /// Called once, after the last event: empty on success (the body ended),
  /// else why the request failed. Errors name the phase that failed;
  /// a non-2xx answer reads `HTTP <status>: <first 4 KiB of the body>`.
  using done_handler = std::function<void(std::string error)>;

  using header_list = std::vector<std::pair<std::string, std::string>>;

  virtual ~http_port() = default;

  /// Starts POSTing `body` (sent as `application/json`) with the extra
  /// `headers` to `url` (`text/event-stream` answer expected unless
  /// `opts.event_stream` is false). Returns at once. An invalid URL fails
  /// through `on_done` too.
  virtual std::shared_ptr<http_request>
  post(std::string_view url, header_list headers, std::string body,
       http_stream_options opts, event_handler on_event, done_handler on_done)
    = 0;
};

} // namespace switchyard
