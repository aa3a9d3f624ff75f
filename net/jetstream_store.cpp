#include "net/jetstream_store.hpp"

#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include <nlohmann/json.hpp>

#include "actors/log.hpp"
#include "schemas/rooms.hpp"

namespace switchyard::net {

namespace {

auto& log() {
  static auto instance = logger("jetstream");
  return instance;
}

constexpr const char* bucket = "switchyard_rooms";
constexpr const char* stream = "SWITCHYARD_ROOM_MESSAGES";
constexpr const char* stream_subjects = "switchyard.rooms.>";
constexpr std::string_view subject_prefix = "switchyard.rooms.";

/// Bound of every JetStream request, publish acknowledgement and wait for the
/// next history record: a call answers `unavailable` instead of hanging when
/// NATS stops answering.
constexpr int64_t timeout_ms = 5000;

/// Largest message record the stream takes: NATS's default max payload.
constexpr size_t max_record_size = 1024 * 1024;

/// Most records load_messages reads per room. Bounds the memory and the time
/// of one load; a room's history grows by a few records per message, so a
/// room needs tens of thousands of messages to reach it.
constexpr size_t max_records = 100'000;

/// Destroys what a unique_ptr holds with nats.c's `Destroy` function.
template<auto Destroy>
struct destroy_with {
  template<class T>
  void operator()(T* x) const {
    Destroy(x);
  }
};

template<class T, auto Destroy>
using owned = std::unique_ptr<T, destroy_with<Destroy>>;

/// Unsubscribing deletes the ephemeral consumer of a history load at once;
/// nats.c's Destroy alone leaves it on the server until it times out.
void drop_subscription(natsSubscription* sub) {
  if (auto s = natsSubscription_Unsubscribe(sub); s != NATS_OK)
    log()->debug("history consumer left to expire on the server: {}",
                 natsStatus_GetText(s));
  natsSubscription_Destroy(sub);
}

using subscription_ptr = owned<natsSubscription, drop_subscription>;

/// Makes natsConnection_Connect return at once while NATS is down (with no
/// callback it would block until connected). No closure: nats.c may call it
/// after the store is gone.
void on_connected(natsConnection*, void*) {
  // nop
}

outcome unavailable(const std::string& what, natsStatus s) {
  return outcome::fail("unavailable", what + ": " + natsStatus_GetText(s));
}

/// Org and room ids become tokens of KV keys and subjects, where a `.`, `*`
/// or `>` would address other rooms.
bool valid_id(const std::string& id) {
  auto ok = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
      || (c >= '0' && c <= '9') || c == '_' || c == '-';
  };
  return !id.empty() && std::all_of(id.begin(), id.end(), ok);
}

outcome check_ids(const std::string& org, const std::string& room) {
  if (valid_id(org) && valid_id(room))
    return {};
  return outcome::fail("bad_request",
                       "org and room ids are 1 or more of [A-Za-z0-9_-]");
}

/// Replaces invalid UTF-8 instead of throwing: the store actor must not die
/// of one record.
std::string dump(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

/// The JSON in `data`, or a discarded value.
nlohmann::json parse(const void* data, int len) {
  auto* first = static_cast<const char*>(data);
  return nlohmann::json::parse(first, first + (first ? len : 0), nullptr,
                               false);
}

std::string subject_of(const std::string& org, const std::string& room) {
  std::string result{subject_prefix};
  result += org;
  result += '.';
  result += room;
  return result;
}

} // namespace

// -- constructors -------------------------------------------------------------

jetstream_store::jetstream_store(const nats_settings& cfg) : cfg_(cfg) {
  // nop
}

std::shared_ptr<jetstream_store> jetstream_store::make(const nats_settings& cfg,
                                                       std::string& error) {
  if (cfg.servers.empty()) {
    error = "the JetStream room store needs a NATS server (--nats)";
    return nullptr;
  }
  std::shared_ptr<jetstream_store> self{new jetstream_store(cfg)};
  auto fail = [&error](const char* what, natsStatus s) {
    error = std::string{what} + ": " + natsStatus_GetText(s);
    return nullptr;
  };
  natsOptions* raw_opts = nullptr;
  if (auto s = natsOptions_Create(&raw_opts); s != NATS_OK)
    return fail("nats options", s);
  // natsConnection_Connect copies the options.
  owned<natsOptions, natsOptions_Destroy> opts{raw_opts};
  if (!apply_nats_settings(raw_opts, self->cfg_, error))
    return nullptr;
  if (auto s = natsOptions_SetName(raw_opts, "switchyard-room-store");
      s != NATS_OK)
    return fail("name", s);
  if (auto s = natsOptions_SetRetryOnFailedConnect(raw_opts, true, on_connected,
                                                   nullptr);
      s != NATS_OK)
    return fail("retry", s);
  switch (auto s = natsConnection_Connect(&self->conn_, raw_opts)) {
    case NATS_OK: log()->info("room store connected to NATS"); break;
    case NATS_NOT_YET_CONNECTED:
      log()->warn("NATS unreachable at start; the room store answers "
                  "'unavailable' until it connects in the background");
      break;
    default: return fail("connect", s);
  }
  jsOptions js_opts;
  if (auto s = jsOptions_Init(&js_opts); s != NATS_OK)
    return fail("JetStream options", s);
  // Also bounds the KV calls: the bucket uses this context.
  js_opts.Wait = timeout_ms;
  if (auto s = natsConnection_JetStream(&self->js_, self->conn_, &js_opts);
      s != NATS_OK)
    return fail("JetStream context", s);
  return self;
}

jetstream_store::~jetstream_store() {
  // Subscriptions live within load_messages only. The bucket and the context
  // use the connection, so they go first; destroying the connection closes
  // it and joins nats.c's reconnect thread, the last reader of cfg_.
  if (kv_ != nullptr)
    kvStore_Destroy(kv_);
  if (js_ != nullptr)
    jsCtx_Destroy(js_);
  if (conn_ != nullptr)
    natsConnection_Destroy(conn_);
}

// -- room_store ---------------------------------------------------------------

outcome jetstream_store::put_room(const room_record& room) {
  if (auto ids = check_ids(room.org, room.id); !ids.ok())
    return ids;
  if (auto up = ready(); !up.ok())
    return up;
  auto key = room.org + '.' + room.id;
  auto value = dump(to_json(room));
  if (auto s = kvStore_Put(nullptr, kv_, key.c_str(), value.data(),
                           static_cast<int>(value.size()));
      s != NATS_OK)
    return failed("storing room " + key, s);
  return {};
}

outcome jetstream_store::append_message(const std::string& org,
                                        const std::string& room,
                                        const room_message& msg) {
  if (auto ids = check_ids(org, room); !ids.ok())
    return ids;
  auto payload = dump(to_json(msg));
  if (payload.size() > max_record_size)
    return outcome::fail("bad_request",
                         "a message record is at most 1 MiB of JSON, got "
                           + std::to_string(payload.size()) + " bytes");
  if (auto up = ready(); !up.ok())
    return up;
  auto subject = subject_of(org, room);
  jsPubOptions pub_opts;
  if (auto s = jsPubOptions_Init(&pub_opts); s != NATS_OK)
    return unavailable("publish options", s);
  pub_opts.MaxWait = timeout_ms;
  pub_opts.ExpectStream = stream;
  // Waits for the stream's acknowledgement: the record is stored on return.
  if (auto s = js_Publish(nullptr, js_, subject.c_str(), payload.data(),
                          static_cast<int>(payload.size()), &pub_opts, nullptr);
      s != NATS_OK)
    return failed("appending to " + subject, s);
  return {};
}

outcome jetstream_store::load_messages(const std::string& org,
                                       const std::string& room,
                                       std::vector<room_message>& out) {
  if (auto ids = check_ids(org, room); !ids.ok())
    return ids;
  if (auto up = ready(); !up.ok())
    return up;
  auto subject = subject_of(org, room);
  jsSubOptions sub_opts;
  if (auto s = jsSubOptions_Init(&sub_opts); s != NATS_OK)
    return unavailable("subscribe options", s);
  sub_opts.Stream = stream;
  sub_opts.Ordered = true;
  sub_opts.Config.DeliverPolicy = js_DeliverAll;
  natsSubscription* raw_sub = nullptr;
  if (auto s = js_SubscribeSync(&raw_sub, js_, subject.c_str(), nullptr,
                                &sub_opts, nullptr);
      s != NATS_OK)
    return failed("subscribing to " + subject, s);
  subscription_ptr sub{raw_sub};
  // An empty history delivers nothing: the consumer's counts tell, where
  // waiting for a first record would take the whole timeout.
  jsConsumerInfo* raw_info = nullptr;
  if (auto s = natsSubscription_GetConsumerInfo(&raw_info, raw_sub, nullptr,
                                                nullptr);
      s != NATS_OK)
    return failed("asking the consumer of " + subject, s);
  owned<jsConsumerInfo, jsConsumerInfo_Destroy> info{raw_info};
  if (info->Delivered.Consumer == 0 && info->NumPending == 0) {
    out.clear();
    return {};
  }
  std::vector<room_message> records;
  size_t read = 0;
  size_t unreadable = 0;
  for (;;) {
    natsMsg* raw_msg = nullptr;
    if (auto s = natsSubscription_NextMsg(&raw_msg, raw_sub, timeout_ms);
        s != NATS_OK)
      return failed("reading " + subject, s);
    owned<natsMsg, natsMsg_Destroy> msg{raw_msg};
    jsMsgMetaData* raw_meta = nullptr;
    if (auto s = natsMsg_GetMetaData(&raw_meta, raw_msg); s != NATS_OK)
      return unavailable("reading a record's metadata on " + subject, s);
    owned<jsMsgMetaData, jsMsgMetaData_Destroy> meta{raw_meta};
    auto j = parse(natsMsg_GetData(raw_msg), natsMsg_GetDataLength(raw_msg));
    std::optional<room_message> rec;
    if (!j.is_discarded())
      rec = message_from_json(j);
    if (rec)
      records.push_back(std::move(*rec));
    else
      ++unreadable;
    ++read;
    // NumPending: how many records of the subject follow this one.
    if (meta->NumPending == 0)
      break;
    if (read == max_records) {
      log()->warn("{}: loaded the first {} records, {} more left out", subject,
                  max_records, meta->NumPending);
      break;
    }
  }
  if (unreadable > 0)
    log()->warn("{}: skipped {} unreadable records", subject, unreadable);
  out = fold_history(std::move(records));
  return {};
}

outcome jetstream_store::load_rooms(std::vector<room_record>& out) {
  if (auto up = ready(); !up.ok())
    return up;
  kvWatchOptions watch_opts;
  if (auto s = kvWatchOptions_Init(&watch_opts); s != NATS_OK)
    return unavailable("watch options", s);
  watch_opts.Timeout = timeout_ms;
  kvKeysList keys{nullptr, 0};
  auto s = kvStore_Keys(&keys, kv_, &watch_opts);
  owned<kvKeysList, kvKeysList_Destroy> keys_guard{&keys};
  if (s != NATS_OK)
    return failed(std::string{"listing the rooms in "} + bucket, s);
  std::vector<room_record> rooms;
  rooms.reserve(static_cast<size_t>(keys.Count));
  size_t unreadable = 0;
  const char* first_unreadable = nullptr;
  for (int i = 0; i < keys.Count; ++i) {
    const char* key = keys.Keys[i];
    kvEntry* raw_entry = nullptr;
    s = kvStore_Get(&raw_entry, kv_, key);
    if (s == NATS_NOT_FOUND) // deleted since the listing
      continue;
    if (s != NATS_OK)
      return failed(std::string{"reading room "} + key, s);
    owned<kvEntry, kvEntry_Destroy> entry{raw_entry};
    auto j = parse(kvEntry_Value(raw_entry), kvEntry_ValueLen(raw_entry));
    std::optional<room_record> rec;
    if (!j.is_discarded())
      rec = room_from_json(j);
    if (rec) {
      rooms.push_back(std::move(*rec));
    } else if (unreadable++ == 0) {
      first_unreadable = key;
    }
  }
  if (unreadable > 0)
    log()->warn("skipped {} unreadable rooms in {} (the first: {})", unreadable,
                bucket, first_unreadable);
  out = std::move(rooms);
  return {};
}

// -- helpers ------------------------------------------------------------------

outcome jetstream_store::failed(const std::string& what, natsStatus s) {
  if (kv_ != nullptr) {
    kvStore_Destroy(kv_);
    kv_ = nullptr;
  }
  stream_ready_ = false;
  return unavailable(what, s);
}

outcome jetstream_store::ready() {
  if (natsConnection_Status(conn_) != NATS_CONN_STATUS_CONNECTED)
    return outcome::fail("unavailable",
                         "room store: NATS is not connected "
                         "(reconnecting in the background)");
  // Both are created only when missing: one made by another node, or by an
  // operator with limits of their own, is used as it is.
  if (kv_ == nullptr) {
    auto s = js_KeyValue(&kv_, js_, bucket);
    if (s == NATS_NOT_FOUND) {
      kvConfig kv_cfg;
      s = kvConfig_Init(&kv_cfg);
      if (s == NATS_OK) {
        kv_cfg.Bucket = bucket;
        kv_cfg.History = 1;
        kv_cfg.StorageType = js_FileStorage;
        s = js_CreateKeyValue(&kv_, js_, &kv_cfg);
      }
    }
    if (s != NATS_OK) {
      kv_ = nullptr;
      return unavailable(std::string{"opening KV bucket "} + bucket, s);
    }
  }
  if (!stream_ready_) {
    jsStreamInfo* raw_info = nullptr;
    auto s = js_GetStreamInfo(&raw_info, js_, stream, nullptr, nullptr);
    if (s == NATS_NOT_FOUND) {
      jsStreamConfig stream_cfg;
      s = jsStreamConfig_Init(&stream_cfg);
      if (s == NATS_OK) {
        const char* subjects[] = {stream_subjects};
        stream_cfg.Name = stream;
        stream_cfg.Subjects = subjects;
        stream_cfg.SubjectsLen = 1;
        stream_cfg.Retention = js_LimitsPolicy;
        stream_cfg.Storage = js_FileStorage;
        stream_cfg.MaxMsgSize = static_cast<int32_t>(max_record_size);
        s = js_AddStream(&raw_info, js_, &stream_cfg, nullptr, nullptr);
      }
    }
    owned<jsStreamInfo, jsStreamInfo_Destroy> info{raw_info};
    if (s != NATS_OK)
      return unavailable(std::string{"opening stream "} + stream, s);
    stream_ready_ = true;
    log()->info("room store on JetStream: KV bucket {}, stream {}", bucket,
                stream);
  }
  return {};
}

} // namespace switchyard::net
