#define CAF_SUITE session

#include <caf/test/dsl.hpp>

#include "actors/session.hpp"
#include "fixture.hpp"
#include "schemas/token.hpp"

using namespace switchyard;
using namespace switchyard::test;

namespace {

settings unit_settings() {
  settings cfg;
  cfg.jwt_keys.secret = "session-suite-secret";
  cfg.heartbeat_interval = std::chrono::seconds(25);
  cfg.heartbeat_timeout = std::chrono::seconds(10);
  cfg.auth_timeout = std::chrono::seconds(10);
  cfg.max_subscriptions = 2;
  cfg.max_connections_per_user = 2;
  return cfg;
}

struct fixture : test_coordinator_fixture<test_config> {
  // Topic and registry actors live as long as the node; do not wait for them.
  bool no_await = (sys.await_actors_before_shutdown(false), true);

  ~fixture() {
    stop_node(sched, *ctx, {session});
  }
  node_context_ptr ctx = make_node(sys, unit_settings());
  std::shared_ptr<recording_connection> conn
    = std::make_shared<recording_connection>();
  caf::actor session;

  std::string token(int64_t ttl_s = 3600, std::string sub = "u_1",
                    std::vector<std::string> sub_allow = {},
                    std::vector<std::string> pub_allow = {}) {
    claims c;
    c.sub = std::move(sub);
    c.org = "org_123";
    c.exp = node_context::unix_ms() / 1000 + ttl_s;
    c.sub_allow = std::move(sub_allow);
    c.pub_allow = std::move(pub_allow);
    return mint_token(c, ctx->cfg.jwt_keys.secret);
  }

  caf::actor start(std::shared_ptr<recording_connection> c,
                   std::string initial_token = "") {
    auto s = caf::actor_cast<caf::actor>(sys.spawn<session_server>(
      c, session_deps_of(ctx), std::move(initial_token)));
    sched.run();
    return s;
  }

  void text(const caf::actor& s, const std::string& json) {
    caf::anon_send(s, text_atom::value, json);
    sched.run();
  }

  void text(const std::string& json) {
    text(session, json);
  }

  void auth(const std::string& tok, const std::string& id = "1") {
    text(R"({"type":"auth","id":")" + id + R"(","token":")" + tok + "\"}");
  }

  /// A field of the last text frame, by value (CAF_CHECK_EQUAL keeps
  /// references to its arguments beyond the full expression).
  nlohmann::json last(const char* field) {
    auto xs = conn->json_texts();
    if (xs.empty() || !xs.back().contains(field))
      return nullptr;
    return xs.back()[field];
  }

  /// Moves the clock in 100 ms steps, so the registry's heartbeat wheel
  /// turns as it would in real time.
  void advance(std::chrono::milliseconds d) {
    for (auto left = d; left.count() > 0;
         left -= std::chrono::milliseconds(100)) {
      sched.advance_time(std::min(left, milliseconds(100)));
      sched.run();
    }
  }

  /// Advances until the next ping (at most one heartbeat interval).
  void until_ping() {
    auto before = conn->pings;
    for (int i = 0; i < 260 && conn->pings == before; ++i)
      advance(std::chrono::milliseconds(100));
    CAF_REQUIRE_EQUAL(conn->pings, before + 1);
  }

  fixture() {
    session = start(conn);
  }
};

} // namespace

CAF_TEST_FIXTURE_SCOPE(session_tests, fixture)

CAF_TEST(an auth frame opens the session with a welcome and an ok) {
  auth(token());
  auto xs = conn->json_texts();
  CAF_REQUIRE_EQUAL(xs.size(), 2u);
  CAF_CHECK_EQUAL(xs[0]["type"], "welcome");
  CAF_CHECK_EQUAL(xs[0]["user"], "u_1");
  CAF_CHECK_EQUAL(xs[0]["org"], "org_123");
  CAF_CHECK_EQUAL(xs[0]["heartbeat_ms"], 25000);
  CAF_CHECK_EQUAL(xs[1]["type"], "ok");
  CAF_CHECK_EQUAL(xs[1]["id"], "1");
  CAF_CHECK_EQUAL(conn->closed_with, 0);
}

CAF_TEST(a token from the upgrade request opens the session at once) {
  auto c = std::make_shared<recording_connection>();
  start(c, token());
  auto xs = c->json_texts();
  CAF_REQUIRE_EQUAL(xs.size(), 1u);
  CAF_CHECK_EQUAL(xs[0]["type"], "welcome");
}

CAF_TEST(a bad token closes with 4401) {
  auth("not-a-token");
  CAF_CHECK_EQUAL(last("code"), "unauthorized");
  CAF_CHECK_EQUAL(conn->closed_with, 4401);
}

CAF_TEST(no auth within the auth timeout closes with 4401) {
  advance(std::chrono::seconds(9));
  CAF_CHECK_EQUAL(conn->closed_with, 0);
  advance(std::chrono::seconds(1));
  CAF_CHECK_EQUAL(conn->closed_with, 4401);
}

CAF_TEST(requests before auth are refused and the session stays open) {
  text(R"({"type":"subscribe","id":"2","topic":"events.org_123.>"})");
  CAF_CHECK_EQUAL(last("code"), "unauthorized");
  CAF_CHECK_EQUAL(last("id"), "2");
  CAF_CHECK_EQUAL(conn->closed_with, 0);
}

CAF_TEST(malformed frames get bad_request and the session stays open) {
  auth(token());
  text("{not json");
  CAF_CHECK_EQUAL(last("code"), "bad_request");
  text(R"({"type":"dance","id":"7"})");
  CAF_CHECK_EQUAL(last("code"), "bad_request");
  CAF_CHECK_EQUAL(last("id"), "7");
  text(R"({"type":"subscribe","id":"8"})");
  CAF_CHECK_EQUAL(last("code"), "bad_request");
  text(R"({"type":"subscribe","id":"9","topic":"events.org_123.>"})");
  CAF_CHECK_EQUAL(last("type"), "ok");
  // Binary frames belong to switchyard.v1.msgpack only.
  caf::anon_send(session, binary_atom::value, std::string{});
  sched.run();
  CAF_CHECK_EQUAL(last("code"), "bad_request");
  CAF_CHECK_EQUAL(conn->closed_with, 0);
}

CAF_TEST(msgpack sessions take msgpack maps in binary frames) {
  auto mp
    = std::make_shared<recording_connection>(frames::wire_format::msgpack);
  auto s = start(mp);
  auto binary = [&](const nlohmann::json& j) {
    auto bytes = nlohmann::json::to_msgpack(j);
    caf::anon_send(s, binary_atom::value,
                   std::string(bytes.begin(), bytes.end()));
    sched.run();
  };
  auto last_mp = [&](const char* field) -> nlohmann::json {
    auto xs = mp->json_texts();
    if (xs.empty() || !xs.back().contains(field))
      return nullptr;
    return xs.back()[field];
  };
  binary({{"type", "auth"}, {"id", "a"}, {"token", token()}});
  auto xs = mp->json_texts();
  CAF_REQUIRE_EQUAL(xs.size(), 2u);
  CAF_CHECK_EQUAL(xs[0]["type"], "welcome");
  CAF_CHECK_EQUAL(xs[0]["subprotocol"], "switchyard.v1.msgpack");
  CAF_CHECK_EQUAL(last_mp("id"), "a");
  binary({{"type", "subscribe"}, {"id", "s"}, {"topic", "events.org_123.>"}});
  CAF_CHECK_EQUAL(last_mp("type"), "ok");
  CAF_CHECK_EQUAL(last_mp("id"), "s");
  // Not a map, not msgpack at all: refused, the session stays open.
  binary({1, 2});
  CAF_CHECK_EQUAL(last_mp("code"), "bad_request");
  caf::anon_send(s, binary_atom::value, std::string("\xc1"));
  sched.run();
  CAF_CHECK_EQUAL(last_mp("message"), "a binary frame must be one msgpack map");
  // A text frame is still JSON.
  text(s, R"({"type":"unsubscribe","id":"u","topic":"events.org_123.>"})");
  CAF_CHECK_EQUAL(last_mp("type"), "ok");
  CAF_CHECK_EQUAL(mp->closed_with, 0);
  caf::anon_send_exit(s, caf::exit_reason::user_shutdown);
  sched.run();
}

CAF_TEST(every handled text frame is reported consumed) {
  text("{not json");
  auto first = conn->consumed_bytes;
  CAF_CHECK_GREATER_OR_EQUAL(first, 9u);
  std::string frame = R"({"type":"dance","id":"9","pad":")"
    + std::string(300, 'x') + "\"}";
  text(frame);
  CAF_CHECK_GREATER_OR_EQUAL(conn->consumed_bytes - first, frame.size());
}

CAF_TEST(frames nested too deep get bad_request and the session stays open) {
  auth(token());
  auto depth = ctx->cfg.max_json_depth;
  text(R"({"type":"subscribe","id":"2","topic":"events.org_123.a","x":)"
       + std::string(depth, '[') + std::string(depth, ']') + "}");
  CAF_CHECK_EQUAL(last("code"), "bad_request");
  CAF_CHECK_EQUAL(last("message"), "frame has nesting deeper than 64");
  text("{not json");
  auto& rejected = ctx->stats.input_rejected;
  auto client = 2 * static_cast<size_t>(input_source::client);
  CAF_CHECK_EQUAL(rejected[client].load(), 1u);     // malformed
  CAF_CHECK_EQUAL(rejected[client + 1].load(), 1u); // too deep
  text(R"({"type":"subscribe","id":"3","topic":"events.org_123.a"})");
  CAF_CHECK_EQUAL(last("type"), "ok");
  CAF_CHECK_EQUAL(conn->closed_with, 0);
}

CAF_TEST(before auth a subscribe without topic is refused as unauthorized) {
  text(R"({"type":"subscribe","id":"2"})");
  CAF_CHECK_EQUAL(last("code"), "unauthorized");
  CAF_CHECK_EQUAL(last("message"), "authenticate first");
  text(R"({"type":"dance","id":"3"})");
  CAF_CHECK_EQUAL(last("code"), "bad_request");
  CAF_CHECK_EQUAL(conn->closed_with, 0);
}

CAF_TEST(subscribe checks grammar org and the subscription limit) {
  auth(token());
  text(R"({"type":"subscribe","id":"2","topic":"events.org_123..x"})");
  CAF_CHECK_EQUAL(last("code"), "bad_topic");
  text(R"({"type":"subscribe","id":"3","topic":"events.org_999.>"})");
  CAF_CHECK_EQUAL(last("code"), "forbidden");
  text(R"({"type":"subscribe","id":"4","topic":"events.org_123.a"})");
  CAF_CHECK_EQUAL(last("type"), "ok");
  text(R"({"type":"subscribe","id":"5","topic":"events.org_123.b"})");
  CAF_CHECK_EQUAL(last("type"), "ok");
  text(R"({"type":"subscribe","id":"6","topic":"events.org_123.c"})");
  CAF_CHECK_EQUAL(last("code"), "too_many_subscriptions");
}

CAF_TEST(sub_allow in the token narrows what a session may subscribe) {
  auth(token(3600, "u_1", {"events.org_123.tasks.>"}));
  text(R"({"type":"subscribe","id":"2","topic":"events.org_123.billing.>"})");
  CAF_CHECK_EQUAL(last("code"), "forbidden");
  text(R"({"type":"subscribe","id":"3","topic":"events.org_123.tasks.*"})");
  CAF_CHECK_EQUAL(last("type"), "ok");
}

CAF_TEST(a subscribed session receives events and stops after unsubscribe) {
  auth(token());
  text(R"({"type":"subscribe","id":"2","topic":"events.org_123.t.*"})");
  ctx->publish(make_event("events.org_123.t.x", "e1"));
  sched.run();
  auto evs = conn->events();
  CAF_REQUIRE_EQUAL(evs.size(), 1u);
  auto id = evs[0]["id"].get<std::string>();
  CAF_CHECK_EQUAL(id, "e1");
  text(R"({"type":"unsubscribe","id":"3","topic":"events.org_123.t.*"})");
  CAF_CHECK_EQUAL(last("type"), "ok");
  ctx->publish(make_event("events.org_123.t.x", "e2"));
  sched.run();
  CAF_CHECK_EQUAL(conn->events().size(), 1u);
  CAF_CHECK_EQUAL(ctx->stats.topic_actors.load(), 0);
}

CAF_TEST(a missing pong closes the session with 4408) {
  auth(token());
  until_ping();
  advance(std::chrono::milliseconds(9800));
  CAF_CHECK_EQUAL(conn->closed_with, 0);
  // The wheel checks one heartbeat timeout after the ping, rounded up to
  // its step (25 s / 64 buckets: 390 ms): by 10.4 s.
  advance(std::chrono::milliseconds(600));
  CAF_CHECK_EQUAL(conn->closed_with, 4408);
}

CAF_TEST(every session is pinged once per heartbeat interval) {
  auth(token());
  until_ping();
  advance(std::chrono::milliseconds(24800));
  CAF_CHECK_EQUAL(conn->pings, 1);
}

CAF_TEST(a pong in time keeps the session open) {
  auth(token());
  for (int i = 0; i < 3; ++i) {
    until_ping();
    caf::anon_send(session, pong_atom::value);
    sched.run();
  }
  advance(std::chrono::seconds(10));
  CAF_CHECK_EQUAL(conn->pings, 3);
  CAF_CHECK_EQUAL(conn->closed_with, 0);
}

CAF_TEST(a heartbeat close removes every subscription) {
  auth(token());
  text(R"({"type":"subscribe","id":"2","topic":"events.org_123.a"})");
  text(R"({"type":"subscribe","id":"3","topic":"events.org_123.b.>"})");
  CAF_CHECK_EQUAL(ctx->stats.subscriptions.load(), 2);
  until_ping();
  advance(std::chrono::milliseconds(10400));
  CAF_CHECK_EQUAL(conn->closed_with, 4408);
  CAF_CHECK_EQUAL(ctx->stats.subscriptions.load(), 0);
  CAF_CHECK_EQUAL(ctx->stats.topic_actors.load(), 0);
}

CAF_TEST(an expiring token closes with 4401 unless refreshed) {
  auth(token(2));
  advance(std::chrono::seconds(3));
  CAF_CHECK_EQUAL(conn->closed_with, 4401);
}

CAF_TEST(a fresh auth before expiry keeps the session open) {
  auth(token(2));
  auth(token(3600), "9");
  CAF_CHECK_EQUAL(last("type"), "ok");
  CAF_CHECK_EQUAL(last("id"), "9");
  advance(std::chrono::seconds(3));
  CAF_CHECK_EQUAL(conn->closed_with, 0);
}

CAF_TEST(a fresh token for another user is refused) {
  auth(token());
  auth(token(3600, "u_2"), "9");
  CAF_CHECK_EQUAL(last("code"), "forbidden");
  CAF_CHECK_EQUAL(conn->closed_with, 0);
}

CAF_TEST(a closed connection ends the session and its subscriptions) {
  auth(token());
  text(R"({"type":"subscribe","id":"2","topic":"events.org_123.a"})");
  caf::anon_send(session, closed_atom::value, uint16_t{1006});
  sched.run();
  CAF_CHECK_EQUAL(ctx->stats.subscriptions.load(), 0);
  CAF_CHECK_EQUAL(ctx->stats.topic_actors.load(), 0);
}

CAF_TEST(connections per user are limited) {
  auth(token());
  auto c2 = std::make_shared<recording_connection>();
  start(c2, token());
  CAF_CHECK_EQUAL(c2->closed_with, 0);
  auto c3 = std::make_shared<recording_connection>();
  start(c3, token());
  CAF_CHECK_EQUAL(c3->closed_with, 4429);
}

CAF_TEST(a publish frame before auth is refused as unauthorized) {
  text(R"({"type":"publish","id":"2","topic":"events.org_123.a","data":1})");
  CAF_CHECK_EQUAL(last("code"), "unauthorized");
  CAF_CHECK_EQUAL(last("id"), "2");
  text(R"({"type":"publish","id":"3"})");
  CAF_CHECK_EQUAL(last("code"), "unauthorized");
  CAF_CHECK_EQUAL(conn->closed_with, 0);
}

CAF_TEST(a published event reaches subscribers and the ok names its id) {
  auth(token(3600, "u_1", {}, {"events.org_123.t.>"}));
  text(R"({"type":"subscribe","id":"2","topic":"events.org_123.t.*"})");
  auto before = conn->consumed_bytes;
  std::string frame = R"({"type":"publish","id":"3","topic":"events.org_123.)"
                      R"(t.x","data":{"n":[1,"two"]}})";
  text(frame);
  CAF_CHECK_EQUAL(last("type"), "ok");
  CAF_CHECK_EQUAL(last("id"), "3");
  auto evs = conn->events();
  CAF_REQUIRE_EQUAL(evs.size(), 1u);
  CAF_CHECK_EQUAL(evs[0]["id"], last("event_id"));
  CAF_CHECK_EQUAL(evs[0]["topic"], "events.org_123.t.x");
  CAF_CHECK(evs[0]["data"] == nlohmann::json::parse(R"({"n":[1,"two"]})"));
  CAF_CHECK_GREATER_OR_EQUAL(conn->consumed_bytes - before, frame.size());
  text(R"({"type":"publish","id":"4","topic":"events.org_123.t.y",)"
       R"("event_id":"mine-1"})");
  CAF_CHECK_EQUAL(last("event_id"), "mine-1");
  evs = conn->events();
  CAF_REQUIRE_EQUAL(evs.size(), 2u);
  CAF_CHECK_EQUAL(evs[1]["id"], "mine-1");
  CAF_CHECK(evs[1]["data"].is_null());
}

CAF_TEST(publish checks the topic grammar and pub_allow within the org) {
  auth(token(3600, "u_1", {}, {"events.>"}));
  text(R"({"type":"publish","id":"2","topic":"events.org_123.*"})");
  CAF_CHECK_EQUAL(last("code"), "bad_topic");
  text(R"({"type":"publish","id":"3","topic":"events.org_999.a"})");
  CAF_CHECK_EQUAL(last("code"), "forbidden");
  CAF_CHECK_EQUAL(last("message"), "token may not publish to events.org_999.a");
  text(R"({"type":"publish","id":"4","topic":"events.org_123.a",)"
       R"("event_id":7})");
  CAF_CHECK_EQUAL(last("code"), "bad_request");
  text(R"({"type":"publish","id":"5","topic":"events.org_123.a"})");
  CAF_CHECK_EQUAL(last("type"), "ok");
}

CAF_TEST(a token without pub_allow may not publish) {
  auth(token());
  text(R"({"type":"publish","id":"2","topic":"events.org_123.a"})");
  CAF_CHECK_EQUAL(last("code"), "forbidden");
}

CAF_TEST_FIXTURE_SCOPE_END()
