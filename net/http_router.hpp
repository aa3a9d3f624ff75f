// Plain HTTP on the WebSocket port: publish, health, metrics and
// introspection. Handlers never block an I/O thread: anything that needs an
// actor's answer goes through a one-shot actor and completes asynchronously.

#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <boost/beast/http.hpp>

#include "actors/log_limiter.hpp"
#include "actors/node_context.hpp"
#include "schemas/token.hpp"

namespace switchyard::net {

namespace http = boost::beast::http;

using http_request = http::request<http::string_body>;
using http_response = http::response<http::string_body>;

/// Routes HTTP requests that are not WebSocket upgrades.
class http_router {
public:
  http_router(caf::actor_system& sys, node_context_ptr ctx);

  /// Answers `req` by calling `done` exactly once, possibly from another
  /// thread.
  void handle(const http_request& req, std::function<void(http_response)> done);

  /// Builds a JSON response.
  static http_response json(http::status status, std::string body,
                            unsigned version, bool keep_alive);

  /// Builds `{"code":...,"message":...}` with `status`.
  static http_response error(http::status status, const char* code,
                             const std::string& message, unsigned version,
                             bool keep_alive);

  /// Largest body a request for `target` may have: `max_ingest_body` for a
  /// configured webhook source, else `max_frame_size`.
  size_t body_limit(std::string_view target) const;

  /// The largest `body_limit` of any target: what a request head may
  /// announce before its target is known.
  size_t largest_body_limit() const;

  /// The 413 for a request to `target` whose body is over `body_limit`
  /// (counted and logged for a webhook source); closes the connection.
  http_response too_large(std::string_view target, unsigned version);

private:
  void publish(const http_request& req,
               std::function<void(http_response)>& done);
  void introspect(const http_request& req, bool sessions,
                  std::function<void(http_response)>& done);
  /// GET /v1/cluster: the members, their state and load (node admins).
  void cluster(const http_request& req,
               std::function<void(http_response)>& done);
  /// /v1/notification-rules, /v1/users/{id}/contact, /v1/notifications
  /// and below (net/http_notifications.cpp).
  void notifications(const http_request& req, std::string_view path,
                     std::function<void(http_response)>& done);
  /// POST /v1/ingest/{source}: verifies a webhook and publishes its event.
  void ingest(const http_request& req, std::string_view name,
              std::function<void(http_response)>& done);
  /// Index of the configured source `name` in `cfg.ingest_sources`.
  std::optional<size_t> ingest_index(std::string_view name) const;
  /// Counts, logs (rate-limited) and answers a refused webhook of
  /// `body_size` bytes (0: not read).
  http_response refuse_webhook(size_t index, ingest::outcome x,
                               const std::string& why, size_t body_size,
                               unsigned version, bool keep_alive);
  /// `POST /v1/history` (net/http_history.cpp).
  void history(const http_request& req,
               std::function<void(http_response)>& done);
  /// `GET /v1/presence` (net/http_presence.cpp).
  void presence(const http_request& req,
                std::function<void(http_response)>& done);
  /// /v1/rooms and below (net/http_rooms.cpp).
  void rooms(const http_request& req, std::string_view path,
             std::function<void(http_response)>& done);

  /// Verifies the request's bearer token. Tokens that verified before are
  /// answered from a cache until they expire: services publish with one
  /// token many times a second, and a signature check plus JSON per request
  /// would cost more than the publish itself.
  verified check_bearer(const http_request& req);

  /// The claims of the request's bearer token; else answers 401 through
  /// `done`.
  std::optional<claims> check_user(const http_request& req,
                                   std::function<void(http_response)>& done);

  /// The claims of the request's token when it is an admin's (a node
  /// admin's if `node_admin`); else answers 401 or 403 through `done`.
  std::optional<claims> check_admin(const http_request& req, bool node_admin,
                                    std::function<void(http_response)>& done);

  /// Most tokens remembered; the cache starts over when full.
  static constexpr size_t token_cache_size = 4096;

  caf::actor_system& sys_;
  node_context_ptr ctx_;
  std::mutex cache_mtx_;
  std::unordered_map<std::string, claims> token_cache_;
  /// Log limits of refused webhooks, one per source (a noisy source hides
  /// no other), and one for unknown sources.
  std::vector<std::unique_ptr<log_limiter>> ingest_logs_;
  log_limiter unknown_source_log_;
};

/// Whether a browser at `origin` (a request's non-empty `Origin` header) may
/// use this node: `cfg.allowed_origins` holds it or `*`.
bool origin_allowed(const settings& cfg, std::string_view origin);

/// Extracts the bearer token of an `Authorization` header, or "".
std::string bearer_token(const http_request& req);

/// Decodes `%XX` escapes and `+` (as a space) of a URL component.
std::string url_decode(std::string_view raw);

/// Returns the value of `key` in the query string of `target`, decoded.
std::string query_param(std::string_view target, std::string_view key);

/// The HTTP status of an `outcome` code (schemas/rooms.hpp).
http::status status_of(const std::string& code);

/// `/v1/rooms/a/b` after `/v1/rooms` -> {"a", "b"}, each segment
/// percent-decoded.
std::vector<std::string> segments_after(std::string_view path,
                                        std::string_view prefix);

/// Renders the node's metrics in Prometheus text format.
std::string render_metrics(const node_context& ctx);

} // namespace switchyard::net
