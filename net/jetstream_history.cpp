#include "net/jetstream_history.hpp"

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdio>

#include "actors/log.hpp"
#include "net/jetstream_util.hpp"
#include "schemas/envelope.hpp"

namespace switchyard::net {

namespace {

auto& log() {
  static auto instance = logger("history");
  return instance;
}

/// Bound of every JetStream request and fetch.
constexpr int64_t timeout_ms = 5000;

/// How often the keeper checks the stream (and so how long an epoch change
/// by someone else takes to show in event frames).
constexpr auto keep_interval = std::chrono::seconds(5);

/// Events fetched per request.
constexpr int fetch_batch = 256;

/// A replay's consumer outlives a node that died mid-read by this long.
constexpr int64_t consumer_inactive_ns = int64_t{30} * 1'000'000'000;

/// The first window `page` reads back from `before`, as a multiple of the
/// limit; it grows by this factor until it holds `limit` events.
constexpr uint64_t window_factor = 4;

/// The epoch of a stream created at `created_ns`.
std::string epoch_of(int64_t created_ns) {
  char buf[24];
  std::snprintf(buf, sizeof(buf), "%" PRIx64,
                static_cast<uint64_t>(created_ns));
  return buf;
}

std::string status_text(const char* what, natsStatus s) {
  std::string out = what;
  out += ": ";
  out += natsStatus_GetText(s);
  if (auto last = nats_GetLastError(nullptr); last && *last) {
    out += " (";
    out += last;
    out += ')';
  }
  return out;
}

} // namespace

// -- constructors -------------------------------------------------------------

jetstream_history::jetstream_history(const nats_settings& nats,
                                     const history_settings& cfg,
                                     size_t max_json_depth)
  : nats_(nats), cfg_(cfg), max_json_depth_(max_json_depth) {
  // nop
}

std::shared_ptr<jetstream_history>
jetstream_history::make(const nats_settings& nats, const history_settings& cfg,
                        size_t max_json_depth, std::string& error) {
  if (nats.servers.empty()) {
    error = "--history needs a NATS server (--nats) with JetStream";
    return nullptr;
  }
  std::shared_ptr<jetstream_history> self{
    new jetstream_history(nats, cfg, max_json_depth)};
  if (!open_jetstream(self->nats_, "switchyard-history", "history", timeout_ms,
                      self->conn_, self->js_, error))
    return nullptr;
  self->keeper_ = std::thread{[ptr = self.get()] {
    ptr->run_keeper();
  }};
  return self;
}

jetstream_history::~jetstream_history() {
  {
    std::lock_guard<std::mutex> guard{mtx_};
    stopping_ = true;
  }
  cv_.notify_all();
  if (keeper_.joinable())
    keeper_.join();
  // The context uses the connection; destroying the connection closes it
  // and joins nats.c's reconnect thread, the last reader of nats_.
  if (js_ != nullptr)
    jsCtx_Destroy(js_);
  if (conn_ != nullptr)
    natsConnection_Destroy(conn_);
}

void jetstream_history::run_keeper() {
  std::string last_error;
  std::unique_lock<std::mutex> guard{mtx_};
  while (!stopping_) {
    guard.unlock();
    stream_state st;
    std::string error;
    if (!check_stream(st, error)) {
      if (error != last_error)
        log()->warn("history stream {} unavailable: {}; live events with "
                    "--history wait for it",
                    stream, error);
    } else if (!last_error.empty()) {
      log()->info("history stream {} available again", stream);
    }
    last_error = std::move(error);
    guard.lock();
    cv_.wait_for(guard, keep_interval, [this] {
      return stopping_;
    });
  }
}

// -- the stream ---------------------------------------------------------------

bool jetstream_history::check_stream(stream_state& out, std::string& error) {
  if (natsConnection_Status(conn_) != NATS_CONN_STATUS_CONNECTED) {
    error = "not connected to NATS";
    return false;
  }
  jsStreamConfig sc;
  jsStreamConfig_Init(&sc);
  const char* subjects[] = {"events.>"};
  std::string live_subjects{live_prefix};
  live_subjects += ".events.>";
  jsRePublish rp;
  jsRePublish_Init(&rp);
  rp.Source = "events.>";
  rp.Destination = live_subjects.c_str();
  sc.Name = stream;
  sc.Subjects = subjects;
  sc.SubjectsLen = 1;
  sc.Storage = js_FileStorage;
  sc.Retention = js_LimitsPolicy;
  sc.Discard = js_DiscardOld;
  sc.MaxAge = std::chrono::duration_cast<std::chrono::nanoseconds>(cfg_.max_age)
                .count();
  sc.MaxMsgs = cfg_.max_msgs;
  sc.MaxBytes = cfg_.max_bytes;
  sc.Replicas = nats_.replicas;
  sc.RePublish = &rp;
  jsStreamInfo* raw_info = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  auto s = js_GetStreamInfo(&raw_info, js_, stream, nullptr, &code);
  if (s == NATS_NOT_FOUND) {
    s = js_AddStream(&raw_info, js_, &sc, nullptr, &code);
    if (s == NATS_OK)
      log()->info("created history stream {} (events.>, max age {} ms, {} "
                  "events, {} bytes)",
                  stream, cfg_.max_age.count(), cfg_.max_msgs, cfg_.max_bytes);
  } else if (s == NATS_OK) {
    auto& have = raw_info->Config;
    bool republish_ok = have->RePublish != nullptr
      && have->RePublish->Destination != nullptr
      && live_subjects == have->RePublish->Destination;
    if (have->MaxAge != sc.MaxAge || have->MaxMsgs != sc.MaxMsgs
        || have->MaxBytes != sc.MaxBytes || !republish_ok) {
      jsStreamInfo_Destroy(raw_info);
      raw_info = nullptr;
      s = js_UpdateStream(&raw_info, js_, &sc, nullptr, &code);
      if (s == NATS_OK)
        log()->warn("updated the limits of history stream {} to this node's "
                    "--history-* flags (every node should have the same)",
                    stream);
    }
  }
  if (s != NATS_OK) {
    error = status_text("history stream", s);
    return false;
  }
  owned<jsStreamInfo, jsStreamInfo_Destroy> info{raw_info};
  out.first_seq = info->State.FirstSeq;
  out.last_seq = info->State.LastSeq;
  out.first_ts = info->State.FirstTime / 1'000'000;
  out.epoch = epoch_of(info->Created);
  std::lock_guard<std::mutex> guard{mtx_};
  if (out.epoch != epoch_) {
    if (!epoch_.empty())
      log()->warn("history stream {} was created anew: epoch {} -> {}; older "
                  "positions no longer recover",
                  stream, epoch_, out.epoch);
    epoch_ = out.epoch;
  }
  return true;
}

std::string jetstream_history::epoch() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return epoch_;
}

bool jetstream_history::read(const read_range& range, std::vector<event>& out,
                             uint64_t& last_seq, bool& over,
                             std::string& error) {
  auto& [pattern, start, by_time, end, max_events, max_bytes, epoch] = range;
  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.Stream = stream;
  so.Config.AckPolicy = js_AckNone;
  so.Config.InactiveThreshold = consumer_inactive_ns;
  so.Config.MemoryStorage = true;
  so.Config.Replicas = 1;
  if (by_time && start == 0) {
    so.Config.DeliverPolicy = js_DeliverAll; // JetStream refuses time 0
  } else if (by_time) {
    so.Config.DeliverPolicy = js_DeliverByStartTime;
    so.Config.OptStartTime = static_cast<int64_t>(start) * 1'000'000;
  } else {
    so.Config.DeliverPolicy = js_DeliverByStartSequence;
    so.Config.OptStartSeq = start;
  }
  natsSubscription* raw_sub = nullptr;
  if (auto s = js_PullSubscribe(&raw_sub, js_, pattern.c_str(), nullptr,
                                nullptr, &so, nullptr);
      s != NATS_OK) {
    error = status_text("history consumer", s);
    return false;
  }
  js_subscription_ptr sub{raw_sub};
  jsConsumerInfo* raw_info = nullptr;
  if (auto s = natsSubscription_GetConsumerInfo(&raw_info, raw_sub, nullptr,
                                                nullptr);
      s != NATS_OK) {
    error = status_text("history consumer info", s);
    return false;
  }
  // Fetching more than is pending would wait out the timeout: read exactly
  // what the consumer had when it was made (later events come live).
  auto pending = raw_info->NumPending;
  jsConsumerInfo_Destroy(raw_info);
  size_t bytes = 0;
  while (pending > 0) {
    natsMsgList list{nullptr, 0};
    auto batch = static_cast<int>(
      std::min<uint64_t>(pending, static_cast<uint64_t>(fetch_batch)));
    if (auto s = natsSubscription_Fetch(&list, raw_sub, batch, timeout_ms,
                                        nullptr);
        s != NATS_OK) {
      error = status_text("reading the history stream", s);
      return false;
    }
    owned<natsMsgList, natsMsgList_Destroy> guard{&list};
    pending -= std::min<uint64_t>(pending, static_cast<uint64_t>(list.Count));
    for (int i = 0; i < list.Count; ++i) {
      auto* msg = list.Msgs[i];
      jsMsgMetaData* raw_meta = nullptr;
      if (natsMsg_GetMetaData(&raw_meta, msg) != NATS_OK)
        continue;
      owned<jsMsgMetaData, jsMsgMetaData_Destroy> meta{raw_meta};
      auto seq = meta->Sequence.Stream;
      if (end != 0 && seq >= end)
        return true;
      last_seq = std::max(last_seq, seq);
      std::string_view subject{natsMsg_GetSubject(msg)};
      std::string_view payload{natsMsg_GetData(msg),
                               static_cast<size_t>(natsMsg_GetDataLength(msg))};
      auto decoded = json_envelope(msg)
        ? envelope::from_json(subject, payload, max_json_depth_)
        : envelope::from_msgpack(subject, payload, max_json_depth_);
      if (!decoded.value)
        continue; // dropped live as well
      auto& ev = *decoded.value;
      ev.seq = seq;
      ev.epoch = epoch;
      if (ev.id.empty())
        ev.id = history_event_id(ev.epoch, seq);
      if (ev.ts == 0)
        ev.ts = meta->Timestamp / 1'000'000;
      bytes += ev.data.size();
      out.push_back(std::move(ev));
      if (out.size() > max_events || bytes > max_bytes) {
        over = true;
        return true;
      }
    }
  }
  return true;
}

replay_result jetstream_history::replay(const replay_request& req,
                                        size_t max_events, size_t max_bytes) {
  replay_result out;
  // Unless it recovers, a subscription goes live at once: every held
  // event after the client's position goes out.
  out.last_seq = req.by_time ? 0 : req.since;
  stream_state st;
  std::string error;
  if (!check_stream(st, error)) {
    log()->warn("replay of {} failed: {}", req.pattern, error);
    out.reason = "unavailable";
    return out;
  }
  out.epoch = st.epoch;
  if (!req.by_time && req.epoch != st.epoch) {
    // Another stream's positions: all of the held events are new.
    out.last_seq = 0;
    out.reason = "epoch";
    return out;
  }
  // Lost to retention: events after the position are no longer kept.
  bool lost = req.by_time ? st.first_seq > 1 && req.since_ts < st.first_ts
                          : req.since + 1 < st.first_seq;
  uint64_t start = req.by_time ? static_cast<uint64_t>(req.since_ts)
                               : std::max(req.since + 1, st.first_seq);
  if (!req.by_time && start > st.last_seq) {
    out.complete = !lost;
    out.reason = lost ? "retention" : "";
    return out;
  }
  std::vector<event> events;
  uint64_t last = out.last_seq;
  bool over = false;
  read_range range{req.pattern, start,     req.by_time, 0,
                   max_events,  max_bytes, st.epoch};
  if (!read(range, events, last, over, error)) {
    log()->warn("replay of {} failed: {}", req.pattern, error);
    out.reason = "unavailable";
    return out;
  }
  if (over) {
    out.reason = "too_many";
    return out;
  }
  out.events = std::move(events);
  out.last_seq = last;
  out.complete = !lost;
  out.reason = lost ? "retention" : "";
  return out;
}

history_page jetstream_history::page(const std::string& pattern, uint32_t limit,
                                     uint64_t before) {
  history_page out;
  stream_state st;
  if (!check_stream(st, out.error))
    return out;
  out.epoch = st.epoch;
  uint64_t hi = before == 0 || before > st.last_seq ? st.last_seq + 1 : before;
  uint64_t window = std::max<uint64_t>(uint64_t{limit} * window_factor, 64);
  std::vector<event> found; // oldest first
  // Windows back from `before`, each larger, until `limit` events are found
  // or the first event kept is reached: a sparse pattern costs a few
  // consumers, a dense one transfers little more than `limit` events.
  while (found.size() < limit && hi > st.first_seq) {
    uint64_t lo = hi - st.first_seq > window ? hi - window : st.first_seq;
    std::vector<event> chunk;
    uint64_t last = 0;
    bool over = false;
    read_range range{pattern, lo, false, hi, SIZE_MAX, SIZE_MAX, st.epoch};
    if (!read(range, chunk, last, over, out.error)) {
      out.events.clear();
      return out;
    }
    chunk.insert(chunk.end(), std::make_move_iterator(found.begin()),
                 std::make_move_iterator(found.end()));
    found = std::move(chunk);
    hi = lo;
    window *= window_factor;
  }
  if (found.size() > limit)
    found.erase(found.begin(),
                found.begin() + static_cast<ptrdiff_t>(found.size() - limit));
  out.events = std::move(found);
  return out;
}

} // namespace switchyard::net
