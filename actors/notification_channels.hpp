// What the notification actors need of the outside world, as interfaces:
// the tunables of delivery, and the push and email channels. net/ provides
// the real channels (a push gateway over HTTP, SMTP); unit tests under
// CAF's deterministic scheduler use recording fakes.

#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "schemas/notifications.hpp"

namespace switchyard {

/// Tunables of notification delivery, with the defaults `switchyard --help`
/// shows.
struct notify_settings {
  /// How long a high or urgent notification shown on a session, or any
  /// notification pushed, waits for its ack before the next channel: long
  /// enough to glance at a phone, short enough that an unseen urgent page
  /// escalates within a minute.
  static constexpr std::chrono::milliseconds default_ack_timeout{60'000};
  /// Low priority emails (and those over the rate limit) of one user wait
  /// this long to go out together as one digest.
  static constexpr std::chrono::milliseconds default_digest_window{900'000};
  /// Pushes and emails of low and normal priority one user gets per hour;
  /// beyond it, pushes are skipped and emails go into the digest (every
  /// notification stays in the inbox).
  static constexpr uint32_t default_rate_limit = 20;
  /// Retries of a failed push or email wait 1 s, 2 s, 4 s... up to this.
  static constexpr std::chrono::milliseconds default_retry_max_delay{300'000};
  /// A channel still failing this long after its first attempt gives up
  /// (the notification stays in the inbox, marked failed for the channel).
  static constexpr std::chrono::milliseconds default_give_up_after{86'400'000};
  /// A notifier with nothing left to do leaves memory after this long.
  static constexpr std::chrono::milliseconds default_notifier_idle{600'000};

  std::chrono::milliseconds ack_timeout = default_ack_timeout;
  std::chrono::milliseconds digest_window = default_digest_window;
  uint32_t rate_limit = default_rate_limit;
  std::chrono::milliseconds retry_max_delay = default_retry_max_delay;
  std::chrono::milliseconds give_up_after = default_give_up_after;
  std::chrono::milliseconds notifier_idle = default_notifier_idle;
};

/// Sends pushes and emails. Every member is thread-safe and returns at
/// once; `done` runs exactly once, on any thread (a notifier hands it on
/// as a message), with an empty error on success and `permanent` when a
/// retry cannot help (the gateway or the mail server refused for good).
class delivery_channels {
public:
  using done_handler = std::function<void(std::string error, bool permanent)>;

  virtual ~delivery_channels() = default;

  /// Whether a push gateway is configured.
  virtual bool push_configured() const = 0;

  /// Whether a mail server is configured.
  virtual bool email_configured() const = 0;

  /// One request to the push gateway for all of the user's `devices`.
  virtual void push(const notification& x, const std::vector<device>& devices,
                    done_handler done)
    = 0;

  /// One email with `x`'s title, text and HTML to `to`.
  virtual void
  email(const notification& x, const std::string& to, done_handler done)
    = 0;

  /// One email listing every notification of `xs` to `to`.
  virtual void digest(const std::vector<notification>& xs,
                      const std::string& to, done_handler done)
    = 0;
};

} // namespace switchyard
