#include "net/nats_client.hpp"

#include <algorithm>
#include <cstring>
#include <random>
#include <strings.h>

#include "actors/history_port.hpp"
#include "actors/log.hpp"
#include "schemas/envelope.hpp"
#include "schemas/messages.hpp"
#include "schemas/topic.hpp"

namespace switchyard::net {

namespace {

auto& log() {
  static auto instance = logger("bus");
  return instance;
}

/// Longest wait in close() for nats.c's last callback.
constexpr auto closed_callback_timeout = std::chrono::seconds(5);

/// How many recent messages we remember for matching their copies.
constexpr size_t recent_id_groups = 64;

/// What nats.c hands back to on_message; freed by nats.c's completion
/// callback after the subscription's last message callback returned.
struct sub_closure {
  nats_client* client;
  topic_actor node;
};

void free_closure(void* closure) {
  delete static_cast<sub_closure*>(closure);
}

struct raw_closure {
  nats_client* client;
  size_t max_bytes;
  nats_client::raw_handler handler;
};

void free_raw_closure(void* closure) {
  delete static_cast<raw_closure*>(closure);
}

/// Returns whether `s` is NATS_OK; else sets `error` to what failed, why,
/// and nats.c's details.
bool check_status(natsStatus s, const char* what, std::string& error) {
  if (s == NATS_OK)
    return true;
  error = std::string{what} + ": " + natsStatus_GetText(s);
  if (auto last = nats_GetLastError(nullptr); last && *last)
    error += std::string{" ("} + last + ")";
  return false;
}

/// nats.c's reconnect delay callback; `closure` is the nats_settings.
int64_t reconnect_delay(natsConnection*, int attempts, void* closure) {
  auto* cfg = static_cast<const nats_settings*>(closure);
  auto base = cfg->reconnect_wait.count();
  auto cap = cfg->reconnect_wait_max.count();
  int64_t delay = base;
  for (int i = 1; i < attempts && delay < cap; ++i)
    delay *= 2;
  delay = std::min(delay, cap);
  // Up to 20% jitter so a fleet of nodes does not reconnect in lockstep.
  static thread_local std::minstd_rand rng{std::random_device{}()};
  return delay + static_cast<int64_t>(rng() % (delay / 5 + 1));
}

} // namespace

bool apply_nats_settings(natsOptions* o, const nats_settings& c,
                         std::string& error) {
  auto check = [&](natsStatus s, const char* what) {
    return check_status(s, what, error);
  };
  std::vector<const char*> urls;
  for (auto& url : c.servers)
    urls.push_back(url.c_str());
  if (!check(natsOptions_SetServers(o, urls.data(),
                                    static_cast<int>(urls.size())),
             "--nats")
      || !check(natsOptions_SetMaxReconnect(o, -1), "reconnect")
      || !check(natsOptions_SetCustomReconnectDelay(
                  o, reconnect_delay, const_cast<nats_settings*>(&c)),
                "reconnect delay"))
    return false;
  if (!c.user.empty()
      && !check(natsOptions_SetUserInfo(o, c.user.c_str(), c.password.c_str()),
                "--nats-user"))
    return false;
  if (!c.token.empty()
      && !check(natsOptions_SetToken(o, c.token.c_str()), "--nats-token"))
    return false;
  if (c.tls && !check(natsOptions_SetSecure(o, true), "--nats-tls"))
    return false;
  if (!c.tls_ca.empty()
      && !check(natsOptions_LoadCATrustedCertificates(o, c.tls_ca.c_str()),
                "--nats-tls-ca"))
    return false;
  if (!c.tls_cert.empty()
      && !check(natsOptions_LoadCertificatesChain(o, c.tls_cert.c_str(),
                                                  c.tls_key.c_str()),
                "--nats-tls-cert"))
    return false;
  return true;
}

bool json_envelope(natsMsg* msg) {
  const char* type = nullptr;
  return natsMsgHeader_Get(msg, "Content-Type", &type) == NATS_OK
    && type != nullptr && strncasecmp(type, "application/json", 16) == 0;
}

struct nats_client::nats_subscription : nats_port::subscription {
  /// Frees what nats.c holds for a subscription that was never unsubscribed
  /// (the bridge's, at shutdown).
  ~nats_subscription() override {
    if (sub != nullptr)
      natsSubscription_Destroy(sub);
  }

  natsSubscription* sub = nullptr;
  std::string pattern;
};

// -- constructors -------------------------------------------------------------

nats_client::nats_client(nats_settings cfg, node_context_ptr ctx)
  : cfg_(std::move(cfg)), ctx_(std::move(ctx)) {
  // nop
}

std::shared_ptr<nats_client>
nats_client::make(nats_settings cfg, node_context_ptr ctx, std::string& error) {
  nats_SetMessageDeliveryPoolSize(std::max(1, cfg.delivery_threads));
  std::shared_ptr<nats_client> self{new nats_client(std::move(cfg), ctx)};
  auto& c = self->cfg_;
  auto check = [&](natsStatus s, const char* what) {
    return check_status(s, what, error);
  };
  if (!check(natsOptions_Create(&self->opts_), "nats options"))
    return nullptr;
  auto* o = self->opts_;
  if (!apply_nats_settings(o, c, error)
      || !check(
        natsOptions_SetName(o, ("switchyard-" + ctx->ids.node_id()).c_str()),
        "name")
      || !check(natsOptions_SetRetryOnFailedConnect(o, true, on_connected,
                                                    self.get()),
                "retry")
      || !check(natsOptions_SetDisconnectedCB(o, on_disconnected, self.get()),
                "callbacks")
      || !check(natsOptions_SetReconnectedCB(o, on_reconnected, self.get()),
                "callbacks")
      || !check(natsOptions_SetClosedCB(o, on_closed, self.get()), "callbacks")
      || !check(natsOptions_SetErrorHandler(o, on_error, self.get()),
                "callbacks")
      || !check(natsOptions_UseGlobalMessageDelivery(o, true), "delivery")
      || !check(natsOptions_SetMaxPendingMsgs(o, c.pending_msgs),
                "--nats-pending-msgs"))
    return nullptr;
  self->worker_ = std::thread{[ptr = self.get()] {
    ptr->run_worker();
  }};
  // With retry-on-failed-connect this returns at once when NATS is down
  // (NATS_NOT_YET_CONNECTED) and nats.c keeps trying in the background.
  auto s = natsConnection_Connect(&self->conn_, o);
  if (s == NATS_OK) {
    self->up_ = true;
    log()->info("connected to NATS");
  } else if (s == NATS_NOT_YET_CONNECTED) {
    log()->warn("NATS unreachable at start; retrying in the background");
  } else {
    check(s, "connect");
    self->close();
    return nullptr;
  }
  return self;
}

nats_client::~nats_client() {
  close();
  if (opts_ != nullptr)
    natsOptions_Destroy(opts_);
}

void nats_client::close() {
  {
    std::lock_guard<std::mutex> guard{work_mtx_};
    if (stopping_)
      return;
    stopping_ = true;
  }
  work_cv_.notify_all();
  if (worker_.joinable())
    worker_.join();
  if (conn_ != nullptr) {
    natsConnection_Close(conn_);
    // nats.c calls the disconnected and closed handlers from a thread of its
    // own after Close returned; the closed one comes last. Both use this
    // object and the loggers, so wait for it before either may go away.
    {
      std::unique_lock<std::mutex> guard{work_mtx_};
      if (!work_cv_.wait_for(guard, closed_callback_timeout, [this] {
            return closed_;
          }))
        log()->warn("NATS connection closed without its closed callback");
    }
    natsConnection_Destroy(conn_);
    conn_ = nullptr;
  }
  up_ = false;
}

// -- bus_port -----------------------------------------------------------------

std::string nats_client::publish(event ev) {
  if (!up_ || conn_ == nullptr
      || natsConnection_Status(conn_) != NATS_CONN_STATUS_CONNECTED) {
    publish_failures_.fetch_add(1, std::memory_order_relaxed);
    return "event bus unavailable; retry later";
  }
  auto bytes = envelope::to_msgpack(ev);
  auto s = natsConnection_Publish(conn_, ev.topic.c_str(), bytes.data(),
                                  static_cast<int>(bytes.size()));
  if (s != NATS_OK) {
    publish_failures_.fetch_add(1, std::memory_order_relaxed);
    log()->warn("publish to NATS failed: {}", natsStatus_GetText(s));
    return std::string{"event bus refused the event: "} + natsStatus_GetText(s);
  }
  published_.fetch_add(1, std::memory_order_relaxed);
  return {};
}

std::string nats_client::status() const {
  return up_ ? "up" : "down";
}

void nats_client::render_metrics(std::string& out) const {
  auto r = std::memory_order_relaxed;
  auto line = [&out](const char* name, const char* type, const char* help,
                     auto value) {
    append_metric(out, name, type, help, value);
  };
  line("switchyard_bus_up", "gauge",
       "Whether the event bus is usable (1) or not (0).", up_.load(r) ? 1 : 0);
  line("switchyard_bus_received_total", "counter",
       "Messages received from NATS interest subscriptions.",
       received_.load(r));
  line("switchyard_bus_published_total", "counter",
       "Events published to NATS by this node.", published_.load(r));
  line("switchyard_bus_publish_failures_total", "counter",
       "Publishes refused because NATS was unavailable (HTTP 503).",
       publish_failures_.load(r));
  line("switchyard_bus_malformed_total", "counter",
       "NATS messages dropped as malformed envelopes.", malformed_.load(r));
  line("switchyard_bus_slow_consumer_total", "counter",
       "Messages nats.c dropped over its pending limits.",
       slow_consumer_.load(r));
  line("switchyard_bus_reconnects_total", "counter", "Reconnections to NATS.",
       reconnects_.load(r));
  line("switchyard_bus_interest", "gauge",
       "NATS subscriptions held for local subscribers.", interest_.load(r));
}

// -- interest -----------------------------------------------------------------

nats_port::subscription_ptr nats_client::subscribe(const std::string& pattern,
                                                   topic_actor node) {
  auto result = std::make_shared<nats_subscription>();
  result->pattern = pattern;
  if (conn_ == nullptr)
    return result;
  auto* closure = new sub_closure{this, std::move(node)};
  // Only events.> is kept in the history stream (and republished).
  auto kept = pattern.compare(0, 7, "events.") == 0;
  auto subject = kept ? live_prefix_ + pattern : pattern;
  auto s = natsConnection_Subscribe(&result->sub, conn_, subject.c_str(),
                                    on_message, closure);
  if (s != NATS_OK) {
    delete closure;
    result->sub = nullptr;
    log()->error("NATS subscribe {} failed: {}", pattern,
                 natsStatus_GetText(s));
    return result;
  }
  natsSubscription_SetOnCompleteCB(result->sub, free_closure, closure);
  natsSubscription_SetPendingLimits(
    result->sub, cfg_.pending_msgs,
    static_cast<int>(std::min<int64_t>(cfg_.pending_bytes, INT32_MAX)));
  interest_.fetch_add(1, std::memory_order_relaxed);
  return result;
}

void nats_client::use_history(std::string_view prefix,
                              std::shared_ptr<const history_port> history) {
  live_prefix_ = std::string{prefix} + '.';
  history_ = std::move(history);
}

nats_port::subscription_ptr
nats_client::subscribe_raw(const std::string& subject, const std::string& queue,
                           size_t max_bytes, raw_handler handler) {
  auto result = std::make_shared<nats_subscription>();
  result->pattern = subject;
  if (conn_ == nullptr)
    return result;
  auto* closure = new raw_closure{this, max_bytes, std::move(handler)};
  auto s = queue.empty()
    ? natsConnection_Subscribe(&result->sub, conn_, subject.c_str(),
                               on_raw_message, closure)
    : natsConnection_QueueSubscribe(&result->sub, conn_, subject.c_str(),
                                    queue.c_str(), on_raw_message, closure);
  if (s != NATS_OK) {
    delete closure;
    result->sub = nullptr;
    log()->error("NATS subscribe {} failed: {}", subject,
                 natsStatus_GetText(s));
    return result;
  }
  natsSubscription_SetOnCompleteCB(result->sub, free_raw_closure, closure);
  return result;
}

std::string nats_client::publish_raw(const std::string& subject,
                                     const std::string& data) {
  if (!up_ || conn_ == nullptr)
    return "event bus unavailable; retry later";
  auto s = natsConnection_Publish(conn_, subject.c_str(), data.data(),
                                  static_cast<int>(data.size()));
  return s == NATS_OK ? std::string{} : natsStatus_GetText(s);
}

void nats_client::on_raw_message(natsConnection*, natsSubscription*,
                                 natsMsg* msg, void* closure) {
  auto* c = static_cast<raw_closure*>(closure);
  auto size = static_cast<size_t>(natsMsg_GetDataLength(msg));
  if (size > c->max_bytes) {
    c->client->malformed_.fetch_add(1, std::memory_order_relaxed);
    natsMsg_Destroy(msg);
    return;
  }
  auto* reply = natsMsg_GetReply(msg);
  std::string subject{natsMsg_GetSubject(msg)};
  std::string reply_to{reply != nullptr ? reply : ""};
  std::string data{natsMsg_GetData(msg), size};
  natsMsg_Destroy(msg);
  c->handler(std::move(subject), std::move(reply_to), std::move(data));
}

void nats_client::unsubscribe(const subscription_ptr& ptr) {
  auto* sub = static_cast<nats_subscription*>(ptr.get());
  if (sub == nullptr || sub->sub == nullptr)
    return;
  natsSubscription_Unsubscribe(sub->sub);
  natsSubscription_Destroy(sub->sub);
  sub->sub = nullptr;
  interest_.fetch_sub(1, std::memory_order_relaxed);
}

void nats_client::flush_async(std::function<void(bool)> done) {
  {
    std::lock_guard<std::mutex> guard{work_mtx_};
    if (!stopping_) {
      flush_waiters_.emplace_back(std::move(done));
      work_cv_.notify_one();
      return;
    }
  }
  done(false);
}

void nats_client::run_worker() {
  for (;;) {
    std::vector<std::function<void(bool)>> waiters;
    {
      std::unique_lock<std::mutex> guard{work_mtx_};
      work_cv_.wait(guard, [this] {
        return stopping_ || !flush_waiters_.empty();
      });
      waiters.swap(flush_waiters_);
      if (stopping_) {
        guard.unlock();
        for (auto& w : waiters)
          w(false);
        return;
      }
    }
    // One round trip confirms every SUB sent before it.
    bool ok = up_ && conn_ != nullptr
      && natsConnection_FlushTimeout(conn_, 2000) == NATS_OK;
    for (auto& w : waiters)
      w(ok);
  }
}

// -- nats.c callbacks ---------------------------------------------------------

std::optional<event> nats_client::decode(node_context& ctx,
                                         std::string_view subject,
                                         std::string_view payload, bool is_json,
                                         uint64_t seq, const void* sub) {
  auto hash = std::hash<std::string_view>{}(payload);
  {
    std::lock_guard<std::mutex> guard{ids_mtx_};
    for (auto& g : recent_ids_) {
      if (g.hash != hash || g.seq != seq || g.subject != subject
          || g.payload != payload)
        continue;
      if (std::find(g.seen_by.begin(), g.seen_by.end(), sub) != g.seen_by.end())
        continue; // this subscription already had that copy: a new message
      g.seen_by.push_back(sub);
      return g.ev;
    }
  }
  auto depth = ctx.cfg.max_json_depth;
  auto decoded = is_json ? envelope::from_json(subject, payload, depth)
                         : envelope::from_msgpack(subject, payload, depth);
  if (!decoded.value) {
    count_malformed(ctx, subject, decoded);
  } else {
    auto& ev = *decoded.value;
    if (seq != 0) {
      ev.seq = seq;
      ev.epoch = history_->epoch();
    }
    if (ev.id.empty())
      ev.id = seq != 0 ? history_event_id(ev.epoch, seq) : ctx.next_event_id();
    if (ev.ts == 0)
      ev.ts = node_context::unix_ms();
  }
  std::lock_guard<std::mutex> guard{ids_mtx_};
  if (recent_ids_.size() >= recent_id_groups)
    recent_ids_.pop_front();
  recent_ids_.push_back(id_group{std::string{subject},
                                 seq,
                                 hash,
                                 std::string{payload},
                                 decoded.value,
                                 {sub}});
  return std::move(decoded.value);
}

void nats_client::on_message(natsConnection*, natsSubscription* sub,
                             natsMsg* msg, void* closure) {
  auto* c = static_cast<sub_closure*>(closure);
  auto* self = c->client;
  auto ctx = self->ctx_.lock();
  if (!ctx) { // the node is shutting down
    natsMsg_Destroy(msg);
    return;
  }
  std::string_view subject{natsMsg_GetSubject(msg)};
  std::string_view payload{natsMsg_GetData(msg),
                           static_cast<size_t>(natsMsg_GetDataLength(msg))};
  bool is_json = json_envelope(msg);
  uint64_t seq = 0;
  if (auto& prefix = self->live_prefix_; !prefix.empty()) {
    // A copy republished by the history stream, numbered in its header.
    if (subject.substr(0, prefix.size()) == prefix)
      subject.remove_prefix(prefix.size());
    const char* text = nullptr;
    if (natsMsgHeader_Get(msg, "Nats-Sequence", &text) == NATS_OK
        && text != nullptr)
      seq = std::strtoull(text, nullptr, 10);
  }
  auto ev = self->decode(*ctx, subject, payload, is_json, seq, sub);
  natsMsg_Destroy(msg);
  if (!ev)
    return;
  self->received_.fetch_add(1, std::memory_order_relaxed);
  ctx->stats.events_in.fetch_add(1, std::memory_order_relaxed);
  caf::anon_send(c->node, publish_atom::value, std::move(*ev));
}

void nats_client::count_malformed(node_context& ctx, std::string_view subject,
                                  const envelope::decoded& result) {
  malformed_.fetch_add(1, std::memory_order_relaxed);
  ctx.stats.count_rejected(input_source::nats, result.too_deep);
  // The source is the third token of events.{org}.{source}.…
  auto toks = topic::split(subject);
  auto source = toks.size() > 2 ? toks[2] : subject;
  uint64_t held = 0;
  {
    std::lock_guard<std::mutex> guard{log_mtx_};
    auto i = malformed_logs_.find(source);
    if (i == malformed_logs_.end())
      i = malformed_logs_.try_emplace(std::string{source}).first;
    if (!i->second.admit(held))
      return;
  }
  log()->warn("dropped malformed envelope on {} (source {}): {}; {} more from "
              "this source since the last such line (logged at most every "
              "10s)",
              subject, source, result.error, held);
}

void nats_client::on_connected(natsConnection*, void* closure) {
  auto* self = static_cast<nats_client*>(closure);
  self->up_ = true;
  log()->info("connected to NATS");
}

void nats_client::on_disconnected(natsConnection*, void* closure) {
  auto* self = static_cast<nats_client*>(closure);
  if (self->up_.exchange(false))
    log()->warn("lost NATS; publishing answers 503 until it is back");
}

void nats_client::on_reconnected(natsConnection*, void* closure) {
  auto* self = static_cast<nats_client*>(closure);
  self->up_ = true;
  self->reconnects_.fetch_add(1, std::memory_order_relaxed);
  log()->info("reconnected to NATS; interest subscriptions restored");
}

void nats_client::on_error(natsConnection*, natsSubscription* sub,
                           natsStatus err, void* closure) {
  auto* self = static_cast<nats_client*>(closure);
  if (err == NATS_SLOW_CONSUMER) {
    self->slow_consumer_.fetch_add(1, std::memory_order_relaxed);
    if (uint64_t held = 0; !self->slow_log_.admit(held))
      return;
    log()->warn("NATS slow consumer on {}: messages over the pending limits "
                "(--nats-pending-msgs/--nats-pending-bytes) are dropped",
                sub != nullptr ? natsSubscription_GetSubject(sub) : "?");
    return;
  }
  log()->warn("NATS error: {}", natsStatus_GetText(err));
}

void nats_client::on_closed(natsConnection*, void* closure) {
  auto* self = static_cast<nats_client*>(closure);
  // Notify under the lock: close() may destroy the client once it is free.
  std::lock_guard<std::mutex> guard{self->work_mtx_};
  self->closed_ = true;
  self->work_cv_.notify_all();
}

} // namespace switchyard::net
