#include "actors/notifier.hpp"

#include <algorithm>
#include <chrono>
#include <limits>
#include <utility>

#include "actors/log.hpp"
#include "actors/session_registry.hpp"
#include "schemas/messages.hpp"

namespace switchyard {

namespace {

auto& log() {
  static auto instance = logger("notify");
  return instance;
}

constexpr int64_t hour_ms = 3'600'000;

bool is(const channel_state& c, const char* state) {
  return c.state == state;
}

void mark(channel_state& c, const char* state, int64_t now,
          std::string why = {}) {
  c.state = state;
  c.at = now;
  c.next_at = 0;
  c.error = std::move(why);
}

/// Records that an attempt on `c` starts: `at` keeps the first one's time.
void start_attempt(channel_state& c, int64_t now) {
  if (c.attempts++ == 0)
    c.at = now;
  c.state = "sending";
  c.next_at = 0;
}

/// Whether a channel was tried at least once (or is being tried).
bool tried(const channel_state& c) {
  return c.attempts > 0 || is(c, "sending") || is(c, "sent") || is(c, "failed");
}

} // namespace

// -- the routing decision -----------------------------------------------------

route_step plan_route(notification& x, const route_facts& facts, int64_t now,
                      int64_t ack_timeout_ms) {
  auto skip_pending = [&](const char* why) {
    for (auto* c : {&x.websocket, &x.push, &x.email})
      if (is(*c, "pending") || is(*c, "queued"))
        mark(*c, "skipped", now, why);
  };
  if (x.acked) {
    skip_pending("acknowledged");
    return {};
  }
  auto rank = priority_rank(x.priority);
  bool escalates = rank >= priority_rank("high");
  bool holdable = !escalates;
  // A session first.
  auto& ws = x.websocket;
  if (is(ws, "pending")) {
    if (!allows(x, "websocket"))
      mark(ws, "skipped", now, "channel not allowed by the rule");
    else if (facts.connected)
      return {route_action::websocket, 0};
    else
      mark(ws, "skipped", now, "not connected");
  }
  int64_t start = now;
  if (is(ws, "sent")) {
    if (!escalates) {
      skip_pending("delivered on a session");
      return {};
    }
    start = ws.at + ack_timeout_ms;
  }
  int64_t wake = 0;
  auto later = [&wake](int64_t t) {
    if (t > 0 && (wake == 0 || t < wake))
      wake = t;
  };
  bool quiet = holdable && facts.quiet_until > now;
  // Then push.
  auto& push = x.push;
  if (is(push, "pending")) {
    if (!allows(x, "push")) {
      mark(push, "skipped", now, "channel not allowed by the rule");
    } else if (!facts.push_ready) {
      mark(push, "skipped", now, "no device, or no push gateway configured");
    } else if (now < start) {
      later(start);
    } else if (quiet) {
      later(facts.quiet_until);
    } else if (push.next_at > now) {
      later(push.next_at);
    } else if (holdable && facts.rate_limited && push.attempts == 0) {
      mark(push, "skipped", now, "rate limited (kept in the inbox)");
    } else {
      return {route_action::push, 0};
    }
  }
  // Then email: one ack timeout after the first push attempt; at once
  // when push is not used.
  auto& mail = x.email;
  if (is(mail, "pending")) {
    if (!allows(x, "email")) {
      mark(mail, "skipped", now, "channel not allowed by the rule");
    } else if (!facts.email_ready) {
      mark(mail, "skipped", now,
           "no email address, or no mail server configured");
    } else if (is(push, "pending") && !tried(push)) {
      // Push goes first; it has a wake time of its own.
    } else {
      auto email_start = tried(push) ? std::max(start, push.at + ack_timeout_ms)
                                     : start;
      if (now < email_start)
        later(email_start);
      else if (quiet)
        later(facts.quiet_until);
      else if (mail.next_at > now)
        later(mail.next_at);
      else if (rank == priority_rank("low") || (holdable && facts.rate_limited))
        return {route_action::digest, 0};
      else
        return {route_action::email, 0};
    }
  }
  return {route_action::none, wake};
}

int64_t retry_delay_ms(int32_t attempts, int64_t max_delay_ms) {
  auto shift = std::clamp<int32_t>(attempts - 1, 0, 30);
  return std::min<int64_t>(int64_t{1000} << shift, max_delay_ms);
}

// -- the actor ----------------------------------------------------------------

namespace {

using self_ptr = notifier_actor::stateful_pointer<notifier_state>;

int64_t now_ms(self_ptr self) {
  auto& st = self->state;
  auto elapsed = self->clock().now() - st.base_clock;
  return st.base_unix
    + std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count();
}

void persist(self_ptr self, const notification& x) {
  self->request(self->state.store, caf::infinite, put_atom::value, x)
    .then([id = x.id](const outcome& res) {
      if (!res.ok())
        log()->warn("notification {}: its delivery state was not stored: {}",
                    id, res.message);
    });
}

bool rate_limited(self_ptr self, int64_t now) {
  auto& st = self->state;
  while (!st.recent.empty() && st.recent.front() <= now - hour_ms)
    st.recent.pop_front();
  return st.recent.size() >= st.cfg.rate_limit;
}

void count(self_ptr self,
           std::array<std::atomic<uint64_t>, 3> metrics::*counter,
           std::string_view channel) {
  if (auto* stats = self->state.stats)
    (stats->*counter)[notify_channel_index(channel)].fetch_add(
      1, std::memory_order_relaxed);
}

/// Hands a channel's answer to the notifier as a message.
delivery_channels::done_handler answer_to(self_ptr self, std::string channel,
                                          std::vector<std::string> ids) {
  notifier_actor handle{self};
  return [handle, channel{std::move(channel)},
          ids{std::move(ids)}](std::string error, bool permanent) {
    caf::anon_send(handle, sent_atom::value, channel, ids, std::move(error),
                   permanent);
  };
}

void arm(self_ptr self, int64_t at, int64_t now) {
  auto& st = self->state;
  if (at == 0 || (st.timer_at != 0 && st.timer_at <= at && st.timer_at > now))
    return;
  st.timer_at = at;
  auto delay = std::chrono::milliseconds{std::max<int64_t>(0, at - now)};
  self->delayed_send(self, delay, wake_atom::value, ++st.timer_gen);
}

void send_digest(self_ptr self) {
  auto& st = self->state;
  std::vector<notification> xs;
  std::vector<std::string> ids;
  for (auto& id : st.digest)
    if (auto i = st.pending.find(id); i != st.pending.end()) {
      xs.push_back(i->second);
      ids.push_back(id);
    }
  st.digest.clear();
  if (xs.empty()) {
    st.digest_at = 0;
    return;
  }
  st.digest = ids;
  st.digest_sending = true;
  ++st.digest_attempts;
  log()->debug("digest of {} notifications to user {} of org {}", xs.size(),
               st.user, st.org);
  st.channels->digest(xs, st.who.email, answer_to(self, "digest", ids));
}

/// Moves every pending notification as far as it goes now.
void route(self_ptr self, const std::vector<session_actor>& sessions) {
  auto& st = self->state;
  auto now = now_ms(self);
  route_facts facts;
  facts.connected = !sessions.empty();
  facts.push_ready = st.channels->push_configured() && !st.who.devices.empty();
  facts.email_ready = st.channels->email_configured() && !st.who.email.empty();
  facts.quiet_until = quiet_until(st.who.quiet, now);
  int64_t wake = 0;
  auto later = [&wake](int64_t t) {
    if (t > 0 && (wake == 0 || t < wake))
      wake = t;
  };
  for (auto i = st.pending.begin(); i != st.pending.end();) {
    auto& x = i->second;
    bool changed = false;
    for (;;) {
      facts.rate_limited = rate_limited(self, now);
      auto before = std::make_tuple(x.websocket.state, x.push.state,
                                    x.email.state);
      auto step = plan_route(x, facts, now, st.cfg.ack_timeout.count());
      changed |= before
        != std::make_tuple(x.websocket.state, x.push.state, x.email.state);
      if (step.action == route_action::none) {
        later(step.wake_at);
        break;
      }
      changed = true;
      bool counted = priority_rank(x.priority) < priority_rank("high");
      switch (step.action) {
        case route_action::websocket: {
          auto frame = notification_frame(x);
          for (auto& session : sessions)
            caf::anon_send(session, frame_atom::value, frame);
          mark(x.websocket, "sent", now);
          count(self, &metrics::notify_sent, "websocket");
          break;
        }
        case route_action::push:
          start_attempt(x.push, now);
          if (counted)
            st.recent.push_back(now);
          st.channels->push(x, st.who.devices, answer_to(self, "push", {x.id}));
          break;
        case route_action::email:
          start_attempt(x.email, now);
          if (counted)
            st.recent.push_back(now);
          st.channels->email(x, st.who.email, answer_to(self, "email", {x.id}));
          break;
        case route_action::digest:
          mark(x.email, "queued", now);
          st.digest.push_back(x.id);
          if (st.digest_at == 0)
            st.digest_at = now + st.cfg.digest_window.count();
          break;
        case route_action::none: break;
      }
    }
    if (changed)
      persist(self, x);
    bool in_flight = is(x.push, "sending") || is(x.email, "sending")
      || is(x.email, "queued");
    if (settled(x) && !in_flight)
      i = st.pending.erase(i);
    else
      ++i;
  }
  if (!st.digest.empty() && !st.digest_sending) {
    if (st.digest_at <= now)
      send_digest(self);
    else
      later(st.digest_at);
  }
  arm(self, wake, now);
}

/// Asks for the user's sessions, then routes.
void run(self_ptr self) {
  auto& st = self->state;
  self
    ->request(st.sessions, std::chrono::seconds(10), sessions_atom::value,
              user_key(st.org, st.user))
    .then(
      [self](const std::vector<session_actor>& sessions) {
        route(self, sessions);
      },
      [self](const caf::error& err) {
        log()->warn("user {} of org {}: no answer from the session registry "
                    "({}); routing as not connected",
                    self->state.user, self->state.org, to_string(err));
        route(self, {});
      });
}

/// Takes a channel's answer for notification `x`.
void settle_channel(self_ptr self, notification& x, const std::string& channel,
                    channel_state& c, const std::string& error, bool permanent,
                    int64_t now) {
  auto& cfg = self->state.cfg;
  if (!is(c, "sending") && !is(c, "queued"))
    return;
  if (error.empty()) {
    c.state = "sent";
    c.error.clear();
    c.next_at = 0;
    count(self, &metrics::notify_sent, channel);
    return;
  }
  if (permanent) {
    mark(c, "failed", now, error);
    count(self, &metrics::notify_failed, channel);
    log()->warn("notification {}: {} refused for good: {}", x.id, channel,
                error);
    return;
  }
  if (now - c.at >= cfg.give_up_after.count()) {
    mark(c, "failed", now, "still failing after the give-up time: " + error);
    count(self, &metrics::notify_failed, channel);
    log()->warn("notification {}: {} given up after {} attempts: {}", x.id,
                channel, c.attempts, error);
    return;
  }
  count(self, &metrics::notify_retried, channel);
  c.state = "pending";
  c.error = error;
  c.next_at = now + retry_delay_ms(c.attempts, cfg.retry_max_delay.count());
  log()->info("notification {}: attempt {} failed ({}); retrying in {} ms",
              x.id, c.attempts, error, c.next_at - now);
}

} // namespace

notifier_actor::behavior_type
notifier(notifier_actor::stateful_pointer<notifier_state> self, std::string org,
         std::string user, notify_settings cfg, notification_store_actor store,
         session_registry_actor sessions,
         std::shared_ptr<delivery_channels> channels, metrics* stats) {
  auto& st = self->state;
  st.org = std::move(org);
  st.user = std::move(user);
  st.cfg = cfg;
  st.store = std::move(store);
  st.sessions = std::move(sessions);
  st.channels = std::move(channels);
  st.stats = stats;
  st.base_unix = std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::system_clock::now().time_since_epoch())
                   .count();
  st.base_clock = self->clock().now();
  // Nothing is routed before the contact points are known.
  self
    ->request(st.store, std::chrono::seconds(30), get_atom::value,
              contact_atom::value, st.org, st.user)
    .await(
      [self](const outcome& res, contact& who) {
        if (!res.ok())
          log()->warn("user {} of org {}: contact points not loaded: {}",
                      self->state.user, self->state.org, res.message);
        self->state.who = std::move(who);
      },
      [self](const caf::error& err) {
        log()->warn("user {} of org {}: contact points not loaded: {}",
                    self->state.user, self->state.org, to_string(err));
      });
  return {
    [self](notify_atom, notification& x) {
      auto& st = self->state;
      ++st.received;
      // Loaded again (the directory resumes from the store): what this
      // actor holds is newer.
      if (st.pending.count(x.id) != 0)
        return;
      // Resumed after a restart: an attempt whose answer was lost is made
      // again (the gateway and the mail server see the same id), a digest
      // entry queues again.
      for (auto* c : {&x.push, &x.email})
        if (is(*c, "sending"))
          c->state = "pending";
      if (is(x.email, "queued")) {
        st.digest.push_back(x.id);
        if (st.digest_at == 0)
          st.digest_at = now_ms(self) + st.cfg.digest_window.count();
      }
      st.pending[x.id] = std::move(x);
      run(self);
    },
    [self](ack_atom, const std::string& id, bool read) -> caf::result<outcome> {
      auto& st = self->state;
      ++st.received;
      auto now = now_ms(self);
      auto apply = [read, now](notification& x) {
        x.acked = true;
        if (read && !x.read) {
          x.read = true;
          x.read_at = now;
        }
      };
      if (auto i = st.pending.find(id); i != st.pending.end()) {
        apply(i->second);
        persist(self, i->second);
        run(self);
        return outcome{};
      }
      // Delivered already: only the inbox entry changes.
      auto rp = self->make_response_promise<outcome>();
      self
        ->request(st.store, std::chrono::seconds(30), load_atom::value, st.org,
                  st.user)
        .then(
          [self, rp, id, apply](const outcome& res,
                                std::vector<notification>& xs) mutable {
            if (!res.ok()) {
              rp.deliver(res);
              return;
            }
            auto i = std::find_if(xs.begin(), xs.end(), [&id](auto& x) {
              return x.id == id;
            });
            if (i == xs.end()) {
              rp.deliver(outcome::fail("not_found", "no notification " + id));
              return;
            }
            if (!i->acked || !i->read) {
              apply(*i);
              persist(self, *i);
            }
            rp.deliver(outcome{});
          },
          [rp](const caf::error& err) mutable {
            rp.deliver(outcome::fail("unavailable", to_string(err)));
          });
      return rp;
    },
    [self](contact_atom, contact& who) {
      ++self->state.received;
      self->state.who = std::move(who);
      run(self);
    },
    [self](sent_atom, const std::string& channel,
           const std::vector<std::string>& ids, const std::string& error,
           bool permanent) {
      auto& st = self->state;
      auto now = now_ms(self);
      if (channel == "digest") {
        st.digest_sending = false;
        if (!error.empty() && !permanent) {
          st.digest_at = now
            + retry_delay_ms(st.digest_attempts,
                             st.cfg.retry_max_delay.count());
          log()->info("digest to user {} of org {}: {}; retrying", st.user,
                      st.org, error);
          run(self);
          return;
        }
        st.digest.clear();
        st.digest_at = 0;
        st.digest_attempts = 0;
      }
      for (auto& id : ids) {
        auto i = st.pending.find(id);
        if (i == st.pending.end())
          continue;
        auto& x = i->second;
        auto& c = channel == "push" ? x.push : x.email;
        if (channel == "digest") {
          c.state = "sending";
          c.attempts = st.digest_attempts + 1;
        }
        settle_channel(self, x, channel, c, error, permanent, now);
        persist(self, x);
      }
      run(self);
    },
    [self](wake_atom, uint64_t gen) {
      auto& st = self->state;
      if (gen != st.timer_gen)
        return;
      st.timer_at = 0;
      run(self);
    },
    [self](idle_atom) -> caf::result<bool, uint64_t> {
      auto& st = self->state;
      auto now = now_ms(self);
      while (!st.recent.empty() && st.recent.front() <= now - hour_ms)
        st.recent.pop_front();
      bool idle = st.pending.empty() && st.digest.empty() && st.recent.empty();
      return {idle, st.received};
    },
  };
}

} // namespace switchyard
