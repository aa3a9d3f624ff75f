// Process-wide counters behind `/metrics`. Actors and I/O threads bump them
// with relaxed atomics; nothing on the hot path takes a lock for them.

#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "schemas/ingest.hpp"

namespace switchyard {

/// Close codes counted one by one in `switchyard_closes_total`.
constexpr std::array<uint16_t, 12> counted_close_codes{
  1000, 1001, 1002, 1005, 1006, 1007, 1009, 1011, 4401, 4408, 4409, 4429};

/// Where structured input (JSON or msgpack) comes from, for
/// `switchyard_input_rejected_total`.
enum class input_source : uint8_t { client, http, nats };

/// Labels of `input_source`, in order.
constexpr std::array<const char*, 3> input_source_names{"client", "http",
                                                        "nats"};

/// Appends one metric with its HELP and TYPE lines (Prometheus text).
template<class T>
void append_metric(std::string& out, const char* name, const char* type,
                   const char* help, T value) {
  out += "# HELP ";
  out += name;
  out += ' ';
  out += help;
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
  out += name;
  out += ' ';
  out += std::to_string(value);
  out += '\n';
}

/// Counters and gauges of one node.
/// The channels of notifications, as metric labels.
constexpr std::array<const char*, 3> notify_channel_names{"websocket", "push",
                                                          "email"};

/// The index of `channel` in `notify_channel_names` (email for anything
/// else: digests are emails).
inline size_t notify_channel_index(std::string_view channel) {
  return channel == "websocket" ? 0 : channel == "push" ? 1 : 2;
}

struct metrics {
  std::atomic<int64_t> connections{0};
  std::atomic<int64_t> sessions_authenticated{0};
  std::atomic<int64_t> subscriptions{0};
  std::atomic<int64_t> topic_actors{0};
  std::atomic<int64_t> org_routers{0};
  std::atomic<uint64_t> events_in{0};
  std::atomic<uint64_t> events_out{0};
  std::atomic<uint64_t> frames_written{0};
  /// Server messages in those frames (more than frames when batched).
  std::atomic<uint64_t> messages_written{0};
  std::atomic<uint64_t> socket_writes{0};
  std::atomic<uint64_t> dropped{0};
  std::atomic<uint64_t> frames_in{0};
  std::atomic<uint64_t> auth_failures{0};
  std::atomic<uint64_t> http_requests{0};
  /// Connections failed for a WebSocket protocol violation.
  std::atomic<uint64_t> protocol_errors{0};
  /// I/O handlers that threw (the connection or request was ended).
  std::atomic<uint64_t> handler_failures{0};
  /// WebSocket upgrades and CORS preflights refused for their Origin.
  std::atomic<uint64_t> origin_rejected{0};
  /// Reply tokens held back for lagging clients and sent coalesced.
  std::atomic<uint64_t> stream_tokens_coalesced{0};
  std::atomic<int64_t> rooms_active{0};
  std::atomic<int64_t> streams_active{0};
  std::atomic<int64_t> agents_running{0};
  /// Notifications: rule actors and notifiers alive; notifications made
  /// and those found made already (a repeat event, another node).
  std::atomic<int64_t> rule_actors{0};
  std::atomic<int64_t> notifiers{0};
  std::atomic<uint64_t> notifications_created{0};
  std::atomic<uint64_t> notifications_duplicate{0};
  /// Per channel (`notify_channel_names`): delivered, failed for good, and
  /// attempts that failed and will be retried.
  std::array<std::atomic<uint64_t>, 3> notify_sent{};
  std::array<std::atomic<uint64_t>, 3> notify_failed{};
  std::array<std::atomic<uint64_t>, 3> notify_retried{};
  std::array<std::atomic<uint64_t>, counted_close_codes.size() + 1> closes{};
  /// Refused input per source: malformed at even, too deep at odd indexes.
  std::array<std::atomic<uint64_t>, 2 * input_source_names.size()>
    input_rejected{};
  /// `POST /v1/ingest/{source}` per configured source (in config order) and
  /// outcome; sized once at start (node_context), never resized.
  std::vector<std::array<std::atomic<uint64_t>, ingest::outcome_names.size()>>
    ingest_requests;
  /// `POST /v1/ingest/{source}` naming no configured source (404).
  std::atomic<uint64_t> ingest_unknown_source{0};

  /// Counts one close with `code` (unknown codes land in "other").
  void count_close(uint16_t code) {
    size_t i = 0;
    while (i < counted_close_codes.size() && counted_close_codes[i] != code)
      ++i;
    closes[i].fetch_add(1, std::memory_order_relaxed);
  }

  /// Counts one request to the ingest source at `index` that ended as `x`.
  void count_ingest(size_t index, ingest::outcome x) {
    ingest_requests[index][static_cast<size_t>(x)].fetch_add(
      1, std::memory_order_relaxed);
  }

  /// Counts one refused input from `source`.
  void count_rejected(input_source source, bool too_deep) {
    auto i = 2 * static_cast<size_t>(source) + (too_deep ? 1 : 0);
    input_rejected[i].fetch_add(1, std::memory_order_relaxed);
  }
};

} // namespace switchyard
