// Rate limit for log lines about input from outside (malformed frames,
// bodies, envelopes): a peer that sends garbage in a loop must not turn the
// log into its amplifier.

#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>

namespace switchyard {

/// Admits the first event and then at most one per interval, counting the
/// events held back in between. Thread-safe.
class log_limiter {
public:
  using clock = std::chrono::steady_clock;

  /// Long enough that a peer sending bad input in a loop costs a handful of
  /// lines a minute, short enough that an operator watching sees it live.
  static constexpr clock::duration default_interval = std::chrono::seconds(10);

  explicit log_limiter(clock::duration interval = default_interval)
    : interval_(interval) {
    // nop
  }

  log_limiter(const log_limiter&) = delete;
  log_limiter& operator=(const log_limiter&) = delete;

  /// Counts one event at `now`. Returns whether to log it; if so, `held`
  /// receives how many events were held back since the last admitted one.
  bool admit(uint64_t& held, clock::time_point now = clock::now()) {
    std::lock_guard<std::mutex> guard{mtx_};
    if (admitted_once_ && now - last_ < interval_) {
      ++held_;
      return false;
    }
    admitted_once_ = true;
    last_ = now;
    held = held_;
    held_ = 0;
    return true;
  }

private:
  std::mutex mtx_;
  clock::duration interval_;
  clock::time_point last_;
  bool admitted_once_ = false;
  uint64_t held_ = 0;
};

} // namespace switchyard
