// The history stream over nats.c: `SWITCHYARD_EVENTS` keeps every event
// published on `events.>` (within the --history-* limits) and republishes
// each one, as stored, on `switchyard.live.<subject>` with its stream
// sequence in the `Nats-Sequence` header. Nodes with --history take their
// live events from there (net/nats_client.hpp), so every delivered event
// carries the position a client recovers from, and replay and live delivery
// are the same sequence.

#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include <nats/nats.h>

#include "actors/history_port.hpp"
#include "actors/node_context.hpp"
#include "net/nats_client.hpp"

namespace switchyard::net {

class jetstream_history : public history_port {
public:
  /// The stream.
  static constexpr const char* stream = "SWITCHYARD_EVENTS";

  /// Where the stream republishes what it stores: `<prefix>.<subject>`.
  static constexpr std::string_view live_prefix = "switchyard.live";

  // -- constructors -----------------------------------------------------------

  /// Connects in the background and keeps the stream in place: creates it
  /// when missing, updates its limits when they differ from `cfg`, and
  /// reads its epoch, at once and then every few seconds. Returns null and
  /// sets `error` when the settings are unusable.
  static std::shared_ptr<jetstream_history>
  make(const nats_settings& nats, const history_settings& cfg,
       size_t max_json_depth, std::string& error);

  ~jetstream_history() override;

  jetstream_history(const jetstream_history&) = delete;
  jetstream_history& operator=(const jetstream_history&) = delete;

  // -- history_port -----------------------------------------------------------

  std::string epoch() const override;

  replay_result replay(const replay_request& req, size_t max_events,
                       size_t max_bytes) override;

  history_page page(const std::string& pattern, uint32_t limit,
                    uint64_t before) override;

private:
  /// What the stream's info says of its contents.
  struct stream_state {
    uint64_t first_seq = 0;
    uint64_t last_seq = 0;
    /// Unix ms of the first event kept.
    int64_t first_ts = 0;
    std::string epoch;
  };

  /// What `read` reads: the events of `pattern` from `start` (a sequence,
  /// or unix ms with `by_time`) until sequence `end` (exclusive; 0: the end
  /// of the stream as the read starts), stopping past `max_events` events
  /// or `max_bytes` bytes of payload; they are of stream `epoch`.
  struct read_range {
    const std::string& pattern;
    uint64_t start;
    bool by_time;
    uint64_t end;
    size_t max_events;
    size_t max_bytes;
    const std::string& epoch;
  };

  /// Appends the events of `range` to `out` in stream order, and raises
  /// `last_seq` to the last sequence read; sets `over` when it stopped
  /// past a maximum. Returns false with `error` set when the stream could
  /// not be read.
  bool read(const read_range& range, std::vector<event>& out,
            uint64_t& last_seq, bool& over, std::string& error);

  jetstream_history(const nats_settings& nats, const history_settings& cfg,
                    size_t max_json_depth);

  /// Reads the stream's state, creating the stream or updating its
  /// limits first when needed; refreshes the epoch.
  bool check_stream(stream_state& out, std::string& error);

  /// Checks the stream every few seconds until the destructor runs.
  void run_keeper();

  nats_settings nats_;
  history_settings cfg_;
  size_t max_json_depth_;
  natsConnection* conn_ = nullptr;
  jsCtx* js_ = nullptr;
  mutable std::mutex mtx_;
  std::string epoch_;
  bool stopping_ = false;
  std::condition_variable cv_;
  std::thread keeper_;
};

} // namespace switchyard::net
