// The notifier of one user: routes each of the user's notifications to the
// right channel (a frame on the user's sessions, a push, an email, a digest)
// and on from there when no ack comes, retries failed channels with backoff,
// holds low and normal priority through quiet hours, and writes every change
// of delivery state to the store, so a restarted node resumes where it was.

#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <caf/all.hpp>

#include "actors/metrics.hpp"
#include "actors/node_interfaces.hpp"
#include "actors/notification_channels.hpp"

namespace switchyard {

/// What the routing decision depends on besides the notification.
struct route_facts {
  /// The user has a live session.
  bool connected = false;
  /// A push gateway is configured and the user has devices.
  bool push_ready = false;
  /// A mail server is configured and the user has an address.
  bool email_ready = false;
  /// When now is within the user's quiet hours: when they end, else 0.
  int64_t quiet_until = 0;
  /// The user got the rate limit's worth of pushes and emails this hour.
  bool rate_limited = false;
};

/// The next thing to do for a notification.
enum class route_action { none, websocket, push, email, digest };

struct route_step {
  route_action action = route_action::none;
  /// With `none`: when to decide again (a channel waits for an ack timeout,
  /// quiet hours or a retry), or 0 when nothing waits.
  int64_t wake_at = 0;
};

/// Decides the next step for `x` at `now` (unix ms). Marks the channels
/// that will not be used `skipped`, with the reason. The caller performs
/// the action returned and records it in `x` (the channel's state leaves
/// "pending") before it asks again, until the answer is `none`.
///
/// A session gets the frame first when the user is connected; low and
/// normal priority end there. High and urgent ones, and every notification
/// of a user not connected, go on to push (after the ack timeout when a
/// frame was shown), then one ack timeout after the first push attempt
/// (at once when there is no device) to email; low priority, and normal
/// priority over the rate limit, go into the digest rather than an email
/// of their own; quiet hours hold low and normal priority pushes and
/// emails. An ack stops every channel not yet tried.
route_step plan_route(notification& x, const route_facts& facts, int64_t now,
                      int64_t ack_timeout_ms);

/// How long the `attempts`-th retry of a channel waits: 1 s, 2 s, 4 s...
/// up to `max_delay`.
int64_t retry_delay_ms(int32_t attempts, int64_t max_delay_ms);

/// State of a notifier.
struct notifier_state {
  std::string org;
  std::string user;
  notify_settings cfg;
  notification_store_actor store;
  /// The session registry: `(sessions_atom, user_key)` answers the user's
  /// live sessions.
  session_registry_actor sessions;
  std::shared_ptr<delivery_channels> channels;
  metrics* stats = nullptr;
  contact who;
  /// The notifications with something left to do.
  std::map<std::string, notification> pending;
  /// Ids waiting for the digest, and when it goes out (0: no digest).
  std::vector<std::string> digest;
  int64_t digest_at = 0;
  int32_t digest_attempts = 0;
  bool digest_sending = false;
  /// Unix ms of this hour's pushes and emails of low and normal priority.
  std::deque<int64_t> recent;
  /// Messages of the directory handled (see `idle_atom`).
  uint64_t received = 0;
  /// The timer: its generation and when it fires (0: not armed).
  uint64_t timer_gen = 0;
  int64_t timer_at = 0;
  /// Wall clock at spawn and the actor clock then: `now()` is both, so
  /// that tests under the deterministic scheduler move time by hand.
  int64_t base_unix = 0;
  caf::actor_clock::time_point base_clock;

  static inline const char* name = "notifier";
};

/// Spawns with the user's contact points loaded from `store` first.
notifier_actor::behavior_type
notifier(notifier_actor::stateful_pointer<notifier_state> self, std::string org,
         std::string user, notify_settings cfg, notification_store_actor store,
         session_registry_actor sessions,
         std::shared_ptr<delivery_channels> channels, metrics* stats);

} // namespace switchyard
