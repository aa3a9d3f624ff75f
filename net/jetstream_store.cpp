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
#include "net/jetstream_util.hpp"
#include "schemas/notifications.hpp"
#include "schemas/rooms.hpp"

namespace switchyard::net {

namespace {

auto& log() {
  static auto instance = logger("jetstream");
  return instance;
}

constexpr const char* bucket = "switchyard_rooms";
constexpr const char* rules_bucket = "switchyard_notification_rules";
constexpr const char* contacts_bucket = "switchyard_contacts";
constexpr const char* notifications_bucket = "switchyard_notifications";

/// How long a notification stays in the store (and the inbox), in the
/// nanoseconds of kvConfig::TTL.
constexpr int64_t notification_max_age_ns = int64_t{30} * 86'400'000'000'000;
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

using subscription_ptr = js_subscription_ptr;

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

/// Opens the KV bucket `name` into `kv` unless open, creating it (values
/// kept `max_age_ns` nanoseconds, 0 for ever) when missing.
outcome open_bucket(jsCtx* js, const char* name, int64_t max_age_ns,
                    int replicas, kvStore*& kv) {
  if (kv != nullptr)
    return {};
  auto s = js_KeyValue(&kv, js, name);
  if (s == NATS_NOT_FOUND) {
    kvConfig kv_cfg;
    s = kvConfig_Init(&kv_cfg);
    if (s == NATS_OK) {
      kv_cfg.Bucket = name;
      kv_cfg.History = 1;
      kv_cfg.TTL = max_age_ns;
      kv_cfg.StorageType = js_FileStorage;
      kv_cfg.Replicas = replicas;
      s = js_CreateKeyValue(&kv, js, &kv_cfg);
    }
  }
  if (s != NATS_OK) {
    kv = nullptr;
    return unavailable(std::string{"opening KV bucket "} + name, s);
  }
  return {};
}

/// User ids may hold any printable character; KV keys only [-/_=.A-Za-z0-9].
std::string hex_of(const std::string& x) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(x.size() * 2);
  for (unsigned char c : x) {
    out.push_back(digits[c >> 4]);
    out.push_back(digits[c & 0xf]);
  }
  return out;
}

std::string user_key_of(const std::string& org, const std::string& user) {
  return org + '.' + hex_of(user);
}

outcome check_user(const std::string& org, const std::string& user) {
  if (valid_id(org) && !user.empty() && user.size() <= 128)
    return {};
  return outcome::fail("bad_request",
                       "org ids are 1 or more of [A-Za-z0-9_-], user ids 1 "
                       "to 128 bytes");
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
  // Also bounds the KV calls: the buckets use this context.
  if (!open_jetstream(self->cfg_, "switchyard-room-store", "room store",
                      timeout_ms, self->conn_, self->js_, error))
    return nullptr;
  return self;
}

jetstream_store::~jetstream_store() {
  // Subscriptions live within load_messages only. The bucket and the context
  // use the connection, so they go first; destroying the connection closes
  // it and joins nats.c's reconnect thread, the last reader of cfg_.
  for (auto* kv : {kv_, notify_.rules, notify_.contacts, notify_.notifications})
    if (kv != nullptr)
      kvStore_Destroy(kv);
  if (js_ != nullptr)
    jsCtx_Destroy(js_);
  if (conn_ != nullptr)
    natsConnection_Destroy(conn_);
}

// -- room_store ---------------------------------------------------------------

outcome jetstream_store::put_room(const room_record& room) {
  std::lock_guard<std::mutex> guard{mtx_};
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
  std::lock_guard<std::mutex> guard{mtx_};
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
  std::lock_guard<std::mutex> guard{mtx_};
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
  std::lock_guard<std::mutex> guard{mtx_};
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

// -- notification_store -------------------------------------------------------

outcome jetstream_store::put_rule(const notification_rule& rule) {
  std::lock_guard<std::mutex> guard{mtx_};
  if (!valid_id(rule.org) || !valid_id(rule.id))
    return outcome::fail("bad_request", "invalid org or rule id");
  if (auto up = notifications_ready(); !up.ok())
    return up;
  auto key = rule.org + '.' + rule.id;
  auto value = dump(to_json(rule));
  if (auto s = kvStore_Put(nullptr, notify_.rules, key.c_str(), value.data(),
                           static_cast<int>(value.size()));
      s != NATS_OK)
    return failed("storing rule " + key, s);
  return {};
}

outcome jetstream_store::remove_rule(const std::string& org,
                                     const std::string& id) {
  std::lock_guard<std::mutex> guard{mtx_};
  if (!valid_id(org) || !valid_id(id))
    return outcome::fail("bad_request", "invalid org or rule id");
  if (auto up = notifications_ready(); !up.ok())
    return up;
  auto key = org + '.' + id;
  if (auto s = kvStore_Delete(notify_.rules, key.c_str()); s != NATS_OK)
    return failed("deleting rule " + key, s);
  return {};
}

outcome jetstream_store::load_rules(std::vector<notification_rule>& out) {
  std::lock_guard<std::mutex> guard{mtx_};
  if (auto up = notifications_ready(); !up.ok())
    return up;
  std::vector<std::string> values;
  if (auto res = watch_values(notify_.rules, ">", values); !res.ok())
    return res;
  out.clear();
  size_t unreadable = 0;
  for (auto& v : values) {
    auto j = parse(v.data(), static_cast<int>(v.size()));
    std::optional<notification_rule> rule;
    if (!j.is_discarded())
      rule = rule_from_json(j);
    if (rule)
      out.push_back(std::move(*rule));
    else
      ++unreadable;
  }
  if (unreadable > 0)
    log()->warn("skipped {} unreadable rules in {}", unreadable, rules_bucket);
  return {};
}

outcome jetstream_store::put_contact(const contact& x) {
  std::lock_guard<std::mutex> guard{mtx_};
  if (auto ids = check_user(x.org, x.user); !ids.ok())
    return ids;
  if (auto up = notifications_ready(); !up.ok())
    return up;
  auto key = user_key_of(x.org, x.user);
  auto value = dump(to_json(x));
  if (auto s = kvStore_Put(nullptr, notify_.contacts, key.c_str(), value.data(),
                           static_cast<int>(value.size()));
      s != NATS_OK)
    return failed("storing contact points " + key, s);
  return {};
}

outcome jetstream_store::get_contact(const std::string& org,
                                     const std::string& user, contact& out) {
  std::lock_guard<std::mutex> guard{mtx_};
  if (auto ids = check_user(org, user); !ids.ok())
    return ids;
  if (auto up = notifications_ready(); !up.ok())
    return up;
  auto key = user_key_of(org, user);
  kvEntry* raw_entry = nullptr;
  auto s = kvStore_Get(&raw_entry, notify_.contacts, key.c_str());
  if (s == NATS_NOT_FOUND)
    return {};
  if (s != NATS_OK)
    return failed("reading contact points " + key, s);
  owned<kvEntry, kvEntry_Destroy> entry{raw_entry};
  auto j = parse(kvEntry_Value(raw_entry), kvEntry_ValueLen(raw_entry));
  if (auto x = j.is_discarded() ? std::nullopt : contact_from_json(j))
    out = std::move(*x);
  else
    log()->warn("unreadable contact points {} in {}", key, contacts_bucket);
  return {};
}

outcome jetstream_store::create_notification(const notification& x) {
  std::lock_guard<std::mutex> guard{mtx_};
  if (auto ids = check_user(x.org, x.user); !ids.ok())
    return ids;
  if (auto up = notifications_ready(); !up.ok())
    return up;
  auto key = user_key_of(x.org, x.user) + '.' + x.id;
  auto value = dump(to_json(x));
  auto s = kvStore_Create(nullptr, notify_.notifications, key.c_str(),
                          value.data(), static_cast<int>(value.size()));
  if (s == NATS_OK)
    return {};
  // Refused: made before (here or on another node), or NATS failed.
  kvEntry* raw_entry = nullptr;
  if (kvStore_Get(&raw_entry, notify_.notifications, key.c_str()) == NATS_OK) {
    kvEntry_Destroy(raw_entry);
    return outcome::fail("conflict", "notification " + x.id + " exists");
  }
  return failed("creating notification " + key, s);
}

outcome jetstream_store::put_notification(const notification& x) {
  std::lock_guard<std::mutex> guard{mtx_};
  if (auto ids = check_user(x.org, x.user); !ids.ok())
    return ids;
  if (auto up = notifications_ready(); !up.ok())
    return up;
  auto key = user_key_of(x.org, x.user) + '.' + x.id;
  auto value = dump(to_json(x));
  if (auto s = kvStore_Put(nullptr, notify_.notifications, key.c_str(),
                           value.data(), static_cast<int>(value.size()));
      s != NATS_OK)
    return failed("storing notification " + key, s);
  return {};
}

namespace {

/// Reads notification records, oldest first.
std::vector<notification> notifications_of(std::vector<std::string>& values) {
  std::vector<notification> out;
  for (auto& v : values) {
    auto j = parse(v.data(), static_cast<int>(v.size()));
    if (auto x = j.is_discarded() ? std::nullopt : notification_from_json(j))
      out.push_back(std::move(*x));
  }
  if (out.size() < values.size())
    log()->warn("skipped {} unreadable notifications in {}",
                values.size() - out.size(), notifications_bucket);
  std::stable_sort(out.begin(), out.end(), [](auto& x, auto& y) {
    return x.ts < y.ts;
  });
  return out;
}

} // namespace

outcome jetstream_store::load_notifications(const std::string& org,
                                            const std::string& user,
                                            std::vector<notification>& out) {
  std::lock_guard<std::mutex> guard{mtx_};
  if (auto ids = check_user(org, user); !ids.ok())
    return ids;
  if (auto up = notifications_ready(); !up.ok())
    return up;
  std::vector<std::string> values;
  auto keys = user_key_of(org, user) + ".*";
  if (auto res = watch_values(notify_.notifications, keys, values); !res.ok())
    return res;
  out = notifications_of(values);
  return {};
}

outcome jetstream_store::load_pending(std::vector<notification>& out) {
  std::lock_guard<std::mutex> guard{mtx_};
  if (auto up = notifications_ready(); !up.ok())
    return up;
  std::vector<std::string> values;
  if (auto res = watch_values(notify_.notifications, ">", values); !res.ok())
    return res;
  out = notifications_of(values);
  out.erase(std::remove_if(out.begin(), out.end(),
                           [](auto& x) {
                             return settled(x);
                           }),
            out.end());
  return {};
}

outcome jetstream_store::watch_values(kvStore* kv, const std::string& keys,
                                      std::vector<std::string>& out) {
  kvWatchOptions opts;
  if (auto s = kvWatchOptions_Init(&opts); s != NATS_OK)
    return unavailable("watch options", s);
  opts.IgnoreDeletes = true;
  opts.Timeout = timeout_ms;
  kvWatcher* raw_watcher = nullptr;
  if (auto s = kvStore_Watch(&raw_watcher, kv, keys.c_str(), &opts);
      s != NATS_OK)
    return failed("watching " + keys, s);
  owned<kvWatcher, kvWatcher_Destroy> watcher{raw_watcher};
  // The current values, then a null entry: the initial state is complete.
  for (size_t n = 0; n < max_records; ++n) {
    kvEntry* raw_entry = nullptr;
    auto s = kvWatcher_Next(&raw_entry, raw_watcher, timeout_ms);
    if (s != NATS_OK)
      return failed("reading " + keys, s);
    if (raw_entry == nullptr)
      return {};
    owned<kvEntry, kvEntry_Destroy> entry{raw_entry};
    if (kvEntry_Operation(raw_entry) != kvOp_Put)
      continue;
    auto* data = static_cast<const char*>(kvEntry_Value(raw_entry));
    out.emplace_back(data, data + kvEntry_ValueLen(raw_entry));
  }
  log()->warn("read only the first {} values of {}", max_records, keys);
  return {};
}

outcome jetstream_store::notifications_ready() {
  if (auto up = ready(); !up.ok())
    return up;
  if (auto res = open_bucket(js_, rules_bucket, 0, cfg_.replicas,
                             notify_.rules);
      !res.ok())
    return res;
  if (auto res = open_bucket(js_, contacts_bucket, 0, cfg_.replicas,
                             notify_.contacts);
      !res.ok())
    return res;
  return open_bucket(js_, notifications_bucket, notification_max_age_ns,
                     cfg_.replicas, notify_.notifications);
}

// -- helpers ------------------------------------------------------------------

outcome jetstream_store::failed(const std::string& what, natsStatus s) {
  for (auto** kv :
       {&kv_, &notify_.rules, &notify_.contacts, &notify_.notifications})
    if (*kv != nullptr) {
      kvStore_Destroy(*kv);
      *kv = nullptr;
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
  if (auto res = open_bucket(js_, bucket, 0, cfg_.replicas, kv_); !res.ok())
    return res;
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
        stream_cfg.Replicas = cfg_.replicas;
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
