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

#include "actors/http_port.hpp"
#include "schemas/http_url.hpp"

namespace switchyard::net {

/// One POST with a streamed response (see http_port).
class http_stream_client : public http_request {
public:
  using event_handler = http_port::event_handler;
  using done_handler = http_port::done_handler;
  using header_list = http_port::header_list;

  /// Bytes of a non-2xx body quoted in the error.
  static constexpr size_t max_error_body = 4096;

  ~http_stream_client() override;

  /// See http_port::post; the callbacks run on the I/O thread.
  static std::shared_ptr<http_stream_client>
  post(std::string_view url, header_list headers, std::string body,
       http_stream_options opts, event_handler on_event, done_handler on_done);

protected:
  http_stream_client() = default;
};

/// The node's http_port: http_stream_client::post.
std::shared_ptr<http_port> make_http_port();

} // namespace switchyard::net
