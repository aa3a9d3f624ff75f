#define CAF_SUITE recovery

// The replay-to-live switch under the deterministic scheduler: a recovering
// subscription's live events wait in its topic actor while the replay is
// queued, and after the release only those past the replay go out, in
// order.

#include <caf/test/dsl.hpp>

#include "actors/history.hpp"
#include "actors/session.hpp"
#include "fixture.hpp"
#include "schemas/token.hpp"

using namespace switchyard;
using namespace switchyard::test;

namespace {

constexpr const char* pattern = "events.org_123.x.*";
constexpr const char* topic = "events.org_123.x.y";

/// A history reader whose replay answers when the test says so (with
/// `(ok_atom, replay_result)`: the reader delivers its own promise, as a
/// promise must be delivered in its actor's context).
struct scripted_history {
  std::optional<caf::typed_response_promise<replay_result>> pending;
  replay_request asked;
  int asks = 0;
};

caf::behavior scripted_reader(caf::event_based_actor* self,
                              std::shared_ptr<scripted_history> script) {
  return {
    [self, script](replay_atom,
                   const replay_request& req) -> caf::result<replay_result> {
      script->asked = req;
      ++script->asks;
      script->pending = self->make_response_promise<replay_result>();
      return caf::delegated<replay_result>{};
    },
    [script](caf::ok_atom, replay_result& res) {
      CAF_REQUIRE(script->pending.has_value());
      script->pending->deliver(std::move(res));
      script->pending.reset();
    },
    [](history_atom, const std::string&, uint32_t, uint64_t) {
      return history_page{};
    },
  };
}

/// A scripted reader as a `history_actor`.
history_actor spawn_reader(caf::actor_system& sys,
                           std::shared_ptr<scripted_history> script) {
  return caf::actor_cast<history_actor>(sys.spawn(scripted_reader, script));
}

event at(uint64_t seq) {
  auto ev = make_event(topic, "e" + std::to_string(seq));
  ev.seq = seq;
  ev.epoch = "ep1";
  return ev;
}

struct fixture : test_coordinator_fixture<test_config> {
  bool no_await = (sys.await_actors_before_shutdown(false), true);

  node_context_ptr ctx = make_node(sys, [] {
    settings cfg;
    cfg.outbound_queue_limit = 4096;
    return cfg;
  }());
  std::shared_ptr<scripted_history> script
    = std::make_shared<scripted_history>();
  std::shared_ptr<recording_connection> conn
    = std::make_shared<recording_connection>();
  caf::actor session;

  fixture() {
    ctx->history.push_back(spawn_reader(sys, script));
    claims c;
    c.sub = "u_1";
    c.org = "org_123";
    c.exp = node_context::unix_ms() / 1000 + 3600;
    session = caf::actor_cast<caf::actor>(sys.spawn<session_server>(
      conn, session_deps_of(ctx), mint_token(c, ctx->cfg.jwt_keys.secret)));
    sched.run();
  }

  ~fixture() {
    caf::anon_send_exit(ctx->history.front(), caf::exit_reason::user_shutdown);
    ctx->history.clear();
    stop_node(sched, *ctx, {session});
  }

  void text(const std::string& json) {
    caf::anon_send(session, text_atom::value, json);
    sched.run();
  }

  void publish(uint64_t seq) {
    ctx->publish(at(seq));
    sched.run();
  }

  void answer(replay_result res, const history_actor& reader) {
    caf::anon_send(caf::actor_cast<caf::actor>(reader), caf::ok_atom::value,
                   std::move(res));
    sched.run();
  }

  void answer(replay_result res) {
    CAF_REQUIRE(script->pending.has_value());
    answer(std::move(res), ctx->history.front());
  }

  /// The timeline after the welcome and the auth's ok.
  std::vector<std::string> after_auth() {
    auto xs = conn->timeline();
    CAF_REQUIRE_GREATER_OR_EQUAL(xs.size(), 1u);
    CAF_REQUIRE_EQUAL(xs.front(), "welcome");
    return {xs.begin() + 1, xs.end()};
  }
};

} // namespace

CAF_TEST_FIXTURE_SCOPE(recovery_tests, fixture)

CAF_TEST(live events during a replay wait and only those past it follow) {
  text(R"({"type":"subscribe","id":"s","topic":"events.org_123.x.*",)"
       R"("recover":{"since":2,"epoch":"ep1"}})");
  CAF_CHECK_EQUAL(script->asked.pattern, pattern);
  CAF_CHECK_EQUAL(script->asked.since, 2u);
  CAF_CHECK_EQUAL(script->asked.epoch, "ep1");
  // Published while the reader reads: 5 and 6 are in its replay too.
  publish(5);
  publish(6);
  publish(7);
  CAF_CHECK_EQUAL(after_auth(), std::vector<std::string>{});
  replay_result res;
  res.events = {at(3), at(4), at(5), at(6)};
  res.last_seq = 6;
  res.epoch = "ep1";
  res.complete = true;
  answer(res);
  publish(8);
  CAF_CHECK_EQUAL(after_auth(),
                  (std::vector<std::string>{"event:e3", "event:e4", "event:e5",
                                            "event:e6", "ok", "event:e7",
                                            "event:e8"}));
  auto ok = conn->json_texts().back();
  CAF_CHECK_EQUAL(ok["recovered"], true);
  CAF_CHECK_EQUAL(ok["seq"], 6);
  CAF_CHECK_EQUAL(ok["epoch"], "ep1");
  auto first = conn->events().front();
  CAF_CHECK_EQUAL(first["seq"], 3);
  CAF_CHECK_EQUAL(first["epoch"], "ep1");
}

CAF_TEST(an incomplete replay says why and passes every held event) {
  text(R"({"type":"subscribe","id":"s","topic":"events.org_123.x.*",)"
       R"("recover":{"since":2,"epoch":"old"}})");
  publish(1);
  publish(2);
  replay_result res;
  res.epoch = "ep1";
  res.reason = "epoch";
  answer(res);
  CAF_CHECK_EQUAL(after_auth(),
                  (std::vector<std::string>{"ok", "event:e1", "event:e2"}));
  auto ok = conn->json_texts().back();
  CAF_CHECK_EQUAL(ok["recovered"], false);
  CAF_CHECK_EQUAL(ok["reason"], "epoch");
}

CAF_TEST(a replay waits while the client lags and resumes when it reads) {
  text(R"({"type":"subscribe","id":"s","topic":"events.org_123.x.*",)"
       R"("recover":{"since":0,"epoch":"ep1"}})");
  replay_result res;
  res.events = {at(1), at(2)};
  res.last_seq = 2;
  res.epoch = "ep1";
  res.complete = true;
  conn->lag = 4096; // over half the outbound limit
  answer(res);
  CAF_CHECK_EQUAL(after_auth(), std::vector<std::string>{});
  conn->lag = 0;
  sched.advance_time(std::chrono::milliseconds(10));
  sched.run();
  CAF_CHECK_EQUAL(after_auth(),
                  (std::vector<std::string>{"event:e1", "event:e2", "ok"}));
}

CAF_TEST(held events past the outbound limit close the client as slow) {
  text(R"({"type":"subscribe","id":"s","topic":"events.org_123.x.*",)"
       R"("recover":{"since":0,"epoch":"ep1"}})");
  // Each held frame is about 100 bytes: 60 pass the limit of 4096.
  for (uint64_t seq = 1; seq <= 60; ++seq)
    publish(seq);
  CAF_CHECK_EQUAL(conn->closed_with, frames::close_code::slow_consumer);
  CAF_CHECK_EQUAL(after_auth(), std::vector<std::string>{});
}

CAF_TEST(unsubscribing during a replay drops it and its held events) {
  text(R"({"type":"subscribe","id":"s","topic":"events.org_123.x.*",)"
       R"("recover":{"since":0,"epoch":"ep1"}})");
  publish(1);
  text(R"({"type":"unsubscribe","id":"u","topic":"events.org_123.x.*"})");
  replay_result res;
  res.events = {at(1)};
  res.last_seq = 1;
  res.complete = true;
  answer(res);
  publish(2);
  CAF_CHECK_EQUAL(after_auth(), std::vector<std::string>{"ok"});
  auto ok = conn->json_texts().back();
  CAF_CHECK_EQUAL(ok["id"], "u");
}

CAF_TEST(waiting identical replays share a read and one in progress does not ) {
  auto reader_script = std::make_shared<scripted_history>();
  auto reader = spawn_reader(sys, reader_script);
  auto front = sys.spawn(history_front, reader);
  // Each answer as "since:last_seq".
  auto answers = std::make_shared<std::vector<std::string>>();
  auto ask = [&](uint64_t since) {
    sys.spawn([=](caf::event_based_actor* self) {
      replay_request req{pattern, since, "ep1", 0, false};
      self->request(front, caf::infinite, replay_atom::value, req)
        .then([=](const replay_result& res) {
          answers->push_back(std::to_string(since) + ":"
                             + std::to_string(res.last_seq));
        });
    });
    sched.run();
  };
  auto read = [&](uint64_t last_seq) {
    replay_result res;
    res.last_seq = last_seq;
    res.complete = true;
    answer(res, reader);
  };
  ask(5); // read 1 starts at once
  ask(5); // waits: read 1 may have started before this one's hold
  ask(5); // shares that wait
  ask(7);
  auto asks = reader_script->asks;
  CAF_CHECK_EQUAL(asks, 1);
  read(9);
  asks = reader_script->asks;
  CAF_CHECK_EQUAL(asks, 2);
  read(10);
  read(11);
  asks = reader_script->asks;
  CAF_CHECK_EQUAL(asks, 3);
  auto got = *answers;
  CAF_CHECK_EQUAL(got,
                  (std::vector<std::string>{"5:9", "5:10", "5:10", "7:11"}));
  caf::anon_send_exit(front, caf::exit_reason::user_shutdown);
  sched.run();
}

CAF_TEST_FIXTURE_SCOPE_END()
