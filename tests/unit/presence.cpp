#define CAF_SUITE presence

// Presence: the book's counting (once per user, whatever the sessions and
// members), and real sessions with the registry under the deterministic
// scheduler: join and leave events, the presence frame, a session that
// ends abruptly.

#include <deque>

#include <caf/test/dsl.hpp>

#include "actors/presence.hpp"
#include "actors/session.hpp"
#include "fixture.hpp"
#include "schemas/token.hpp"

using namespace switchyard;
using namespace switchyard::test;

namespace {

constexpr const char* org = "org_123";
constexpr const char* topic = "events.org_123.docs.doc.edited.d1";
constexpr const char* key
  = "presence.org_123.events.org_123.docs.doc.edited.d1";

caf::actor_addr addr(caf::actor_system& sys) {
  return sys.spawn([] {}).address();
}

} // namespace

CAF_TEST(keys of patterns) {
  CAF_CHECK_EQUAL(presence_keys_of(org, topic), std::vector<std::string>{key});
  CAF_CHECK_EQUAL(presence_keys_of(org, "events.org_123.docs.*.*.d1").size(),
                  0u);
  auto room = "conv_0123456789abcdef01234567";
  auto keys = presence_keys_of(
    org, std::string{"events.org_123.conversations.conversation.*."} + room);
  CAF_CHECK_EQUAL(
    keys,
    std::vector<std::string>{std::string{"presence.org_123.room."} + room});
  CAF_CHECK_EQUAL(presence_keys_of(org, key).size(), 0u);
  std::string why;
  auto t = parse_presence_key(key, &why);
  CAF_REQUIRE(t.has_value());
  CAF_CHECK_EQUAL(t->topic, topic);
  CAF_CHECK(!parse_presence_key("presence.org_123.events.org_9.a.b.c.d", &why));
  CAF_CHECK(
    !parse_presence_key("presence.org_123.events.org_123.a.*.c.d", &why));
  CAF_CHECK(!parse_presence_key("presence.org_123.room.nope", &why));
  CAF_CHECK(
    parse_presence_key(std::string{"presence.org_123.room."} + room, &why));
}

CAF_TEST(a user counts once over sessions and members) {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  presence_book book;
  auto s1 = addr(sys);
  auto s2 = addr(sys);
  // Local side: two sessions, one of them through two subscriptions.
  CAF_CHECK_EQUAL(book.join(s1, "alice", key), std::optional<int32_t>{1});
  CAF_CHECK_EQUAL(book.join(s1, "alice", key), std::optional<int32_t>{});
  CAF_CHECK_EQUAL(book.join(s2, "alice", key), std::optional<int32_t>{2});
  CAF_CHECK_EQUAL(book.leave(s1, "alice", key), std::optional<int32_t>{});
  CAF_CHECK_EQUAL(book.leave(s1, "alice", key), std::optional<int32_t>{1});
  CAF_CHECK_EQUAL(book.leave(s1, "alice", key), std::optional<int32_t>{});
  auto dropped = book.drop(s2, "alice");
  CAF_REQUIRE_EQUAL(dropped.size(), 1u);
  CAF_CHECK_EQUAL(dropped[0].sessions, 0);
  CAF_CHECK_EQUAL(book.local_keys(), 0u);
  // Owner side: alice on two members, bob on one.
  auto t = book.set(key, "alice", "n1", 1, 2);
  CAF_REQUIRE(t.has_value());
  CAF_CHECK(t->joined);
  CAF_CHECK_EQUAL(t->users, 1u);
  CAF_CHECK(!book.set(key, "alice", "n2", 7, 1));
  CAF_CHECK(book.set(key, "bob", "n2", 7, 1));
  auto info = book.info(key, 10);
  CAF_CHECK_EQUAL(info.users, 2u);
  CAF_CHECK_EQUAL(info.sessions, 4u);
  CAF_REQUIRE_EQUAL(info.members.size(), 2u);
  CAF_CHECK_EQUAL(info.members[0].user, "alice");
  CAF_CHECK_EQUAL(info.members[0].sessions, 3);
  CAF_CHECK_EQUAL(info.members[0].nodes,
                  (std::vector<std::string>{"n1", "n2"}));
  auto capped = book.info(key, 1);
  CAF_CHECK(capped.capped);
  CAF_CHECK_EQUAL(capped.users, 2u);
  CAF_CHECK_EQUAL(capped.members.size(), 0u);
  // n2 goes down: bob leaves, alice stays (on n1).
  auto left = book.prune([](const std::string& node, int64_t) {
    return node == "n1";
  });
  CAF_REQUIRE_EQUAL(left.size(), 1u);
  CAF_CHECK_EQUAL(left[0].user, "bob");
  CAF_CHECK(!left[0].joined);
  CAF_CHECK_EQUAL(left[0].users, 1u);
  CAF_CHECK_EQUAL(book.info(key, 10).users, 1u);
  // A restarted n1 (new start) is another incarnation: alice leaves too.
  left = book.prune([](const std::string&, int64_t started) {
    return started == 2;
  });
  CAF_CHECK_EQUAL(left.size(), 1u);
  CAF_CHECK_EQUAL(book.cluster_keys(), 0u);
}

namespace {

struct fixture : test_coordinator_fixture<test_config> {
  bool no_await = (sys.await_actors_before_shutdown(false), true);

  node_context_ptr ctx = make_node(sys);

  struct client {
    std::shared_ptr<recording_connection> conn
      = std::make_shared<recording_connection>();
    caf::actor session;
  };

  std::deque<client> clients;

  client& connect(const std::string& sub) {
    claims c;
    c.sub = sub;
    c.org = org;
    c.exp = node_context::unix_ms() / 1000 + 3600;
    client x;
    x.session = caf::actor_cast<caf::actor>(sys.spawn<session_server>(
      x.conn, session_deps_of(ctx), mint_token(c, ctx->cfg.jwt_keys.secret)));
    clients.push_back(std::move(x));
    sched.run();
    return clients.back();
  }

  void text(client& x, const std::string& json) {
    caf::anon_send(x.session, text_atom::value, json);
    sched.run();
  }

  void subscribe(client& x, const std::string& pattern) {
    text(x, R"({"type":"subscribe","id":"s","topic":")" + pattern + R"("})");
  }

  /// The `data` of the presence events `x` got, as `action:user:users`.
  std::vector<std::string> presence_events(client& x) {
    std::vector<std::string> out;
    for (auto& ev : x.conn->events())
      if (ev["topic"] == key)
        out.push_back(ev["data"]["action"].get<std::string>() + ":"
                      + ev["data"]["user"].get<std::string>() + ":"
                      + std::to_string(ev["data"]["users"].get<int>()));
    return out;
  }

  /// The `code` of the last text frame `x` got.
  std::string last_code(client& x) {
    auto texts = x.conn->json_texts();
    return texts.back().value("code", "");
  }

  ~fixture() {
    std::vector<caf::actor> sessions;
    for (auto& x : clients)
      sessions.push_back(x.session);
    stop_node(sched, *ctx, sessions);
  }
};

} // namespace

CAF_TEST_FIXTURE_SCOPE(presence_tests, fixture)

CAF_TEST(joins and leaves once per user and the presence frame) {
  auto& watcher = connect("watcher");
  subscribe(watcher, key);
  auto& a1 = connect("alice");
  auto& a2 = connect("alice");
  auto& bob = connect("bob");
  subscribe(a1, topic);
  subscribe(a2, topic);
  subscribe(bob, topic);
  text(watcher,
       R"({"type":"presence","id":"p","topic":")" + std::string{topic}
         + R"("})");
  auto answer = watcher.conn->json_texts().back();
  CAF_CHECK_EQUAL(answer["type"], "presence");
  CAF_CHECK_EQUAL(answer["id"], "p");
  CAF_CHECK_EQUAL(answer["users"], 2);
  CAF_CHECK_EQUAL(answer["sessions"], 3);
  CAF_CHECK_EQUAL(answer["members"][0]["user"], "alice");
  CAF_CHECK_EQUAL(answer["members"][0]["sessions"], 2);
  CAF_CHECK_EQUAL(answer["members"][0]["nodes"][0], "unit");
  // One of alice's sessions unsubscribes, the other ends without a word
  // (the registry sees it go down), bob's session crashes.
  text(a1,
       R"({"type":"unsubscribe","id":"u","topic":")" + std::string{topic}
         + R"("})");
  caf::anon_send_exit(a2.session, caf::exit_reason::user_shutdown);
  sched.run();
  caf::anon_send_exit(bob.session, caf::exit_reason::kill);
  sched.run();
  CAF_CHECK_EQUAL(presence_events(watcher),
                  (std::vector<std::string>{"join:alice:1", "join:bob:2",
                                            "leave:alice:1", "leave:bob:0"}));
  text(watcher,
       R"({"type":"presence","id":"q","topic":")" + std::string{topic}
         + R"("})");
  answer = watcher.conn->json_texts().back();
  CAF_CHECK_EQUAL(answer["users"], 0);
  CAF_CHECK_EQUAL(answer["members"].size(), 0u);
}

CAF_TEST(presence needs what subscribing to the topic needs) {
  auto& x = connect("mallory");
  text(x, R"({"type":"presence","id":"p","topic":"events.org_9.a.b.c.d"})");
  CAF_CHECK_EQUAL(last_code(x), "forbidden");
  subscribe(x, "presence.org_9.events.org_9.a.b.c.d");
  CAF_CHECK_EQUAL(last_code(x), "forbidden");
  subscribe(x, "presence.org_123.events.org_123.a.*.c.d");
  CAF_CHECK_EQUAL(last_code(x), "bad_topic");
  text(x, R"({"type":"presence","id":"p","topic":"events.org_123.a.*.c.d"})");
  CAF_CHECK_EQUAL(last_code(x), "bad_topic");
  text(x, R"({"type":"presence","id":"p"})");
  CAF_CHECK_EQUAL(last_code(x), "bad_request");
}

CAF_TEST_FIXTURE_SCOPE_END()
