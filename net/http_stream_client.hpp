// An asynchronous HTTP/1.1 client for streamed responses: POSTs a body and
// hands the `text/event-stream` response to its caller event by event, as
// it arrives (the way OpenAI-compatible servers stream completions).
//
// Every request runs on the process-wide client I/O thread
// (net/io_thread.hpp), with an io_context of its own; callers on
// other threads (actors) never block. Callbacks run on that I/O thread, so
// they must only hand their data on (an actor sends itself a message).

#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace switchyard::net {

/// What a request needs of an `http://` or `https://` URL.
struct http_url {
  /// https: TLS, with the server's certificate verified against the
  /// system's trust store and the host name.
  bool tls = false;
  /// A name or an IP address (IPv6 without brackets).
  std::string host;
  /// The URL's port, else 80 or 443.
  std::string port;
  /// Whether the URL named its port: the Host header names it then.
  bool explicit_port = false;
  /// Path and query, at least "/".
  std::string target;
};

/// Parses an absolute http or https URL without user info. Sets `error`
/// and returns nothing when `url` is none.
std::optional<http_url> parse_http_url(std::string_view url,
                                       std::string& error);

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

/// One POST with a streamed response.
class http_stream_client {
public:
  /// Receives the data of each event (events of type "message" only).
  using event_handler = std::function<void(std::string data)>;
  /// Called once, after the last event: empty on success (the body ended),
  /// else why the request failed. Errors name the phase that failed;
  /// a non-2xx answer reads `HTTP <status>: <first 4 KiB of the body>`.
  using done_handler = std::function<void(std::string error)>;

  using header_list = std::vector<std::pair<std::string, std::string>>;

  /// Bytes of a non-2xx body quoted in the error.
  static constexpr size_t max_error_body = 4096;

  virtual ~http_stream_client();

  /// Starts POSTing `body` (sent as `application/json`) with the extra
  /// `headers` to `url`. Returns at once; the callbacks run on the I/O
  /// thread. An invalid URL fails through `on_done` too.
  static std::shared_ptr<http_stream_client>
  post(std::string_view url, header_list headers, std::string body,
       http_stream_options opts, event_handler on_event, done_handler on_done);

  /// Aborts the request; callable from any thread, any number of times.
  /// Neither callback is called for it after this returns, except one the
  /// I/O thread had already begun: a caller that hands callbacks on as
  /// messages tags them and drops those of a request it cancelled.
  virtual void cancel() = 0;

protected:
  http_stream_client() = default;
};

} // namespace switchyard::net
