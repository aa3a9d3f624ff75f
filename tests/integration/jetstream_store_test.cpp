// The JetStream room store against a real nats-server: what one store wrote,
// a new store (a restarted node) reads back; with no server, every call
// answers `unavailable` at once. Usage: jetstream_store_test <nats URL>
// (tests/integration/with-nats.sh starts a server and passes its URL).
// Prints every failed check; exits 0 when all passed.

#include <algorithm>
#include <chrono>
#include <functional>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nats/nats.h>

#include "net/jetstream_store.hpp"
#include "schemas/rooms.hpp"

using namespace switchyard;
using net::jetstream_store;

namespace {

int failures = 0;

void check(bool ok, const std::string& what) {
  if (ok)
    return;
  ++failures;
  std::cout << "FAILED: " << what << std::endl;
}

void check_ok(const outcome& res, const std::string& what) {
  check(res.ok(), what + ": " + res.code + " " + res.message);
}

void check_code(const outcome& res, const std::string& code,
                const std::string& what) {
  check(res.code == code,
        what + ": expected '" + code + "', got '" + res.code + "' "
          + res.message);
}

using clock_type = std::chrono::steady_clock;

/// Milliseconds `f` took.
long long millis(const std::function<void()>& f) {
  auto start = clock_type::now();
  f();
  return std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now()
                                                               - start)
    .count();
}

bool same(const participant& x, const participant& y) {
  return x.id == y.id && x.kind == y.kind && x.behavior == y.behavior
    && x.auto_respond == y.auto_respond && x.config == y.config
    && x.joined_at == y.joined_at;
}

bool same(const room_record& x, const room_record& y) {
  if (x.participants.size() != y.participants.size())
    return false;
  for (size_t i = 0; i < x.participants.size(); ++i)
    if (!same(x.participants[i], y.participants[i]))
      return false;
  return x.id == y.id && x.org == y.org && x.name == y.name
    && x.is_private == y.is_private && x.created_by == y.created_by
    && x.created_at == y.created_at;
}

bool same(const room_message& x, const room_message& y) {
  return x.message_id == y.message_id && x.seq == y.seq && x.author == y.author
    && x.author_kind == y.author_kind && x.text == y.text && x.ts == y.ts
    && x.state == y.state && x.reason == y.reason && x.reply_to == y.reply_to;
}

room_message message(std::string id, uint64_t seq, std::string author,
                     std::string kind, std::string text, std::string state,
                     std::string reply_to = "") {
  room_message x;
  x.message_id = std::move(id);
  x.seq = seq;
  x.author = std::move(author);
  x.author_kind = std::move(kind);
  x.text = std::move(text);
  x.ts = 1700000000000 + static_cast<int64_t>(seq);
  x.state = std::move(state);
  x.reply_to = std::move(reply_to);
  return x;
}

std::shared_ptr<jetstream_store> make_store(const std::string& url) {
  net::nats_settings cfg;
  cfg.servers = {url};
  std::string error;
  auto store = jetstream_store::make(cfg, error);
  check(store != nullptr, "make(" + url + "): " + error);
  return store;
}

/// Writes what a store cannot read, beside the store: a room value and a
/// message record that are not their JSON forms.
void write_garbage(const std::string& url, const std::string& org,
                   const std::string& room) {
  natsConnection* nc = nullptr;
  jsCtx* js = nullptr;
  kvStore* kv = nullptr;
  auto s = natsConnection_ConnectTo(&nc, url.c_str());
  if (s == NATS_OK)
    s = natsConnection_JetStream(&js, nc, nullptr);
  if (s == NATS_OK)
    s = js_KeyValue(&kv, js, "switchyard_rooms");
  if (s == NATS_OK)
    s = kvStore_PutString(nullptr, kv, (org + ".garbage").c_str(), "{oops");
  auto subject = "switchyard.rooms." + org + "." + room;
  if (s == NATS_OK)
    s = js_Publish(nullptr, js, subject.c_str(), "[1,2]", 5, nullptr, nullptr);
  check(s == NATS_OK,
        std::string{"writing unreadable records: "} + natsStatus_GetText(s));
  kvStore_Destroy(kv);
  jsCtx_Destroy(js);
  natsConnection_Destroy(nc);
}

/// A port on 127.0.0.1 where nothing listens: bound but not listening, so
/// connecting is refused at once and no one else can take it meanwhile.
struct dead_port {
  int fd = -1;
  int port = 0;

  dead_port() {
    fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0
        || getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      check(false, "reserving a port with no server");
      return;
    }
    port = ntohs(addr.sin_port);
  }

  ~dead_port() {
    if (fd >= 0)
      close(fd);
  }
};

} // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: " << argv[0] << " <nats URL>\n";
    return 2;
  }
  std::string url = argv[1];
  // An org of its own per run: a rerun against the same server starts clean.
  auto org = "org-" + std::to_string(getpid()) + "-"
    + std::to_string(
               std::chrono::system_clock::now().time_since_epoch().count());

  room_record alpha;
  alpha.id = "conv_000000000000000000000001";
  alpha.org = org;
  alpha.name = "first name";
  alpha.created_by = "alice";
  alpha.created_at = 1700000000000;
  alpha.participants.push_back({"alice", "user", "", "", "", 1700000000001});
  alpha.participants.push_back(
    {"helper", "agent", "echo", "mention", R"({"k":1})", 1700000000002});
  room_record beta;
  beta.id = "conv_000000000000000000000002";
  beta.org = org;
  beta.name = "beta";
  beta.is_private = false;
  beta.created_by = "bob";
  beta.created_at = 1700000000100;
  beta.participants.push_back({"bob", "user", "", "", "", 1700000000101});
  const std::string empty_room = "conv_000000000000000000000003";
  const std::string many_room = "conv_000000000000000000000004";
  const int many = 300;

  auto question = message("m1", 1, "alice", "user", "hi @helper", "");
  auto partial = message("m2", 2, "helper", "agent", "Hel", "streaming", "m1");
  auto later = message("m3", 3, "alice", "user", "thanks", "");
  auto complete = message("m2", 2, "helper", "agent", "Hello, Alice",
                          "complete", "m1");
  auto other = message("m1", 1, "bob", "user", "in beta", "");

  // -- a first store writes ---------------------------------------------------
  if (auto store = make_store(url)) {
    check(std::string{store->kind()} == "jetstream", "kind()");
    std::vector<room_message> msgs{question};
    outcome res;
    auto took = millis([&] {
      res = store->load_messages(org, empty_room, msgs);
    });
    check_ok(res, "load_messages of a room with no history");
    check(msgs.empty(), "a room with no history loads empty");
    check(took < 2000,
          "an empty history loads without waiting for a timeout ("
            + std::to_string(took) + " ms)");
    auto renamed = alpha;
    renamed.name = "a name replaced below";
    check_ok(store->put_room(renamed), "put_room alpha");
    check_ok(store->put_room(alpha), "put_room alpha again (replaces)");
    check_ok(store->put_room(beta), "put_room beta");
    for (auto* rec : {&question, &partial, &later, &complete})
      check_ok(store->append_message(org, alpha.id, *rec),
               "append_message " + rec->message_id + " " + rec->state);
    check_ok(store->append_message(org, beta.id, other), "append to beta");
    for (int i = 0; i < many; ++i)
      check_ok(store->append_message(org, many_room,
                                     message("n" + std::to_string(i),
                                             static_cast<uint64_t>(i), "alice",
                                             "user", std::to_string(i), "")),
               "append record " + std::to_string(i));
    auto bad = alpha;
    bad.id = "conv.*";
    check_code(store->put_room(bad), "bad_request", "put_room with a bad id");
    check_code(store->append_message("o>", beta.id, other), "bad_request",
               "append_message with a bad org");
    check_code(store->load_messages(org, "", msgs), "bad_request",
               "load_messages with an empty room id");
    room_message huge = question;
    huge.text.assign(1024 * 1024, 'x');
    check_code(store->append_message(org, beta.id, huge), "bad_request",
               "append_message of a record over 1 MiB");
  }
  write_garbage(url, org, beta.id);

  // -- a new store (a restarted node) reads -----------------------------------
  if (auto store = make_store(url)) {
    std::vector<room_record> rooms;
    check_ok(store->load_rooms(rooms), "load_rooms");
    std::vector<room_record> ours;
    for (auto& r : rooms)
      if (r.org == org)
        ours.push_back(r);
    check(ours.size() == 2,
          "2 rooms load back, got " + std::to_string(ours.size()));
    std::sort(ours.begin(), ours.end(), [](auto& x, auto& y) {
      return x.id < y.id;
    });
    if (ours.size() == 2) {
      check(same(ours[0], alpha), "alpha loads back as last put");
      check(same(ours[1], beta), "beta loads back");
    }
    std::vector<room_message> msgs;
    check_ok(store->load_messages(org, alpha.id, msgs), "load alpha history");
    check(msgs.size() == 3,
          "alpha: 3 messages, got " + std::to_string(msgs.size()));
    if (msgs.size() == 3) {
      check(same(msgs[0], question), "alpha: m1 first");
      check(same(msgs[1], complete), "alpha: m2 second, as completed");
      check(same(msgs[2], later), "alpha: m3 third");
    }
    check_ok(store->load_messages(org, beta.id, msgs), "load beta history");
    check(msgs.size() == 1 && same(msgs[0], other),
          "beta: its one message, the unreadable record skipped");
    check_ok(store->load_messages(org, many_room, msgs), "load many records");
    bool in_order = msgs.size() == many;
    for (size_t i = 0; in_order && i < msgs.size(); ++i)
      in_order = msgs[i].message_id == "n" + std::to_string(i);
    check(in_order,
          std::to_string(many) + " records load back in order, got "
            + std::to_string(msgs.size()));
    check_ok(store->load_messages(org, empty_room, msgs),
             "load a history never written");
    check(msgs.empty(), "a history never written loads empty");
  }

  // -- notifications ----------------------------------------------------------
  if (auto store = make_store(url)) {
    notification_rule rule;
    rule.id = "r1";
    rule.org = org;
    rule.topic = "events." + org + ".tasks.task.done.*";
    rule.recipients.users = {"ann"};
    rule.title = "t";
    rule.channels = {"push"};
    check_ok(store->put_rule(rule), "put_rule");
    std::vector<notification_rule> rules;
    check_ok(store->load_rules(rules), "load_rules");
    auto mine = std::count_if(rules.begin(), rules.end(), [&](auto& r) {
      return r.org == org;
    });
    check(mine == 1, "the rule loads back");
    // User ids may hold what KV keys may not.
    contact who;
    who.org = org;
    who.user = "ann.o'neil@x y";
    who.email = "ann@example.com";
    check_ok(store->put_contact(who), "put_contact");
    contact back;
    check_ok(store->get_contact(org, who.user, back), "get_contact");
    check(back.email == who.email, "the contact points load back");
    contact none;
    check_ok(store->get_contact(org, "nobody", none), "get_contact, none");
    check(none.user.empty(), "a user without contact points has none");
    notification first;
    first.id = "n1";
    first.org = org;
    first.user = who.user;
    first.ts = 1;
    first.channels = {"push"};
    auto second = first;
    second.id = "n2";
    second.ts = 2;
    check_ok(store->create_notification(first), "create_notification");
    check_ok(store->create_notification(second), "create_notification 2");
    check_code(store->create_notification(first), "conflict",
               "creating a notification twice");
    second.push.state = "sent";
    second.websocket.state = "skipped";
    second.email.state = "skipped";
    check_ok(store->put_notification(second), "put_notification");
    std::vector<notification> inbox;
    check_ok(store->load_notifications(org, who.user, inbox),
             "load_notifications");
    check(inbox.size() == 2 && inbox[0].id == "n1" && inbox[1].id == "n2",
          "a user's notifications load oldest first");
    std::vector<notification> pending;
    check_ok(store->load_pending(pending), "load_pending");
    auto ours = std::count_if(pending.begin(), pending.end(), [&](auto& x) {
      return x.org == org;
    });
    check(ours == 1, "only the unsettled notification is pending");
    check_ok(store->remove_rule(org, "r1"), "remove_rule");
    check_ok(store->load_rules(rules), "load_rules after remove");
    check(std::none_of(rules.begin(), rules.end(),
                       [&](auto& r) {
                         return r.org == org;
                       }),
          "a removed rule is gone");
    // Notifications are kept 30 days (JetStream counts in nanoseconds).
    natsConnection* nc = nullptr;
    jsCtx* js = nullptr;
    jsStreamInfo* info = nullptr;
    auto s = natsConnection_ConnectTo(&nc, url.c_str());
    if (s == NATS_OK)
      s = natsConnection_JetStream(&js, nc, nullptr);
    if (s == NATS_OK)
      s = js_GetStreamInfo(&info, js, "KV_switchyard_notifications", nullptr,
                           nullptr);
    check(s == NATS_OK
            && info->Config->MaxAge == int64_t{30} * 86'400'000'000'000,
          "the notification bucket keeps values 30 days");
    jsStreamInfo_Destroy(info);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
  }

  // -- no server
  // ---------------------------------------------------------------
  dead_port dead;
  if (dead.port != 0) {
    auto dead_url = "nats://127.0.0.1:" + std::to_string(dead.port);
    std::shared_ptr<jetstream_store> store;
    auto took = millis([&] {
      store = make_store(dead_url);
    });
    check(took < 2000,
          "make() with no server returns at once (" + std::to_string(took)
            + " ms)");
    if (store) {
      std::vector<room_record> rooms;
      std::vector<room_message> msgs;
      took = millis([&] {
        check_code(store->put_room(alpha), "unavailable",
                   "put_room, no server");
        check_code(store->append_message(org, alpha.id, question),
                   "unavailable", "append_message, no server");
        check_code(store->load_messages(org, alpha.id, msgs), "unavailable",
                   "load_messages, no server");
        check_code(store->load_rooms(rooms), "unavailable",
                   "load_rooms, no server");
      });
      check(took < 2000,
            "calls with no server answer at once (" + std::to_string(took)
              + " ms)");
      took = millis([&] {
        store.reset();
      });
      check(took < 2000,
            "the store with no server closes at once (" + std::to_string(took)
              + " ms)");
    }
  }

  // Every nats.c thread ends before exit: LeakSanitizer sees no stray one.
  check(nats_CloseAndWait(5000) == NATS_OK, "nats.c closes its threads");
  if (failures > 0) {
    std::cout << failures << " checks failed" << std::endl;
    return 1;
  }
  std::cout << "all checks passed" << std::endl;
  return 0;
}
