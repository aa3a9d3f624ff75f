#define CAF_SUITE rooms

#include <caf/test/dsl.hpp>

#include "actors/agents/registry.hpp"
#include "actors/room_directory.hpp"
#include "actors/room_store.hpp"
#include "actors/session.hpp"
#include "fixture.hpp"

using namespace switchyard;
using namespace switchyard::test;
using std::chrono::milliseconds;

namespace {

/// Crashes at its first prompt, then answers like `shout` would: a
/// stand-in for a behavior with a bug that a restart gets past.
struct crashy_state {
  static inline int crashes_left = 1;
  static inline const char* name = "crashy";
};

agent_actor::behavior_type
crashy(agent_actor::stateful_pointer<crashy_state> self, agent_spec) {
  return {
    [self](respond_atom, const agent_request& req) {
      if (crashy_state::crashes_left > 0) {
        --crashy_state::crashes_left;
        self->quit(caf::sec::runtime_error);
        return;
      }
      auto stream = req.stream;
      self->request(stream, caf::infinite, token_atom::value, req.prompt.text)
        .then([self, stream](bool) {
          self->send(stream, end_atom::value);
        });
    },
    [](tick_atom, uint64_t) {},
    [](input_atom, uint64_t, bool, const std::string&) {},
  };
}

/// Takes a prompt and never answers it.
agent_actor::behavior_type silent(agent_actor::pointer, agent_spec) {
  return {
    [](respond_atom, const agent_request&) {},
    [](tick_atom, uint64_t) {},
    [](input_atom, uint64_t, bool, const std::string&) {},
  };
}

settings unit_settings() {
  settings cfg;
  cfg.jwt_keys.secret = "rooms-suite-secret";
  cfg.max_subscriptions = 16;
  cfg.max_connections_per_user = 16;
  return cfg;
}

const caller alice{"alice", "org_1", false};
const caller bob{"bob", "org_1", false};
const caller carol{"carol", "org_1", false};

std::string room_topic(const std::string& event, const std::string& room) {
  return "events.org_1.conversations.conversation." + event + "." + room;
}

struct fixture : test_coordinator_fixture<test_config> {
  bool no_await = (sys.await_actors_before_shutdown(false), true);
  node_context_ptr ctx = make_node(sys, unit_settings());
  room_store_actor store;
  std::vector<caf::actor> sessions;

  fixture() {
    auto agents = std::make_shared<agent_registry>();
    register_builtin_agents(*agents);
    agents->add_behavior("crashy", crashy);
    agents->add_behavior("silent", silent);
    ctx->agents = agents;
    store = sys.spawn(room_store_server, std::make_shared<memory_room_store>());
    ctx->rooms = sys.spawn(room_directory, room_deps_of(ctx), store);
    sched.run();
  }

  ~fixture() {
    caf::anon_send_exit(ctx->rooms, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(store, caf::exit_reason::user_shutdown);
    sched.run();
    ctx->rooms = nullptr;
    store = nullptr;
    stop_node(sched, *ctx, sessions);
  }

  template<class... Rs, class Handle, class... Ts>
  std::tuple<Rs...> call(Handle hdl, Ts... xs) {
    return test::call<Rs...>(sys, sched, hdl, xs...);
  }

  room_record create(const caller& who, bool is_private = true) {
    auto [res, rec] = call<outcome, room_record>(
      ctx->rooms, create_atom::value, who, std::string{"room"}, is_private);
    CAF_REQUIRE(res.ok());
    return rec;
  }

  room_actor room(const caller& who, const std::string& id) {
    auto [res, hdl] = call<outcome, room_actor>(ctx->rooms, resolve_atom::value,
                                                who, id);
    CAF_REQUIRE(res.ok());
    return hdl;
  }

  /// The code of a join's outcome, by value ("" when it was accepted).
  std::string join(const room_actor& r, const caller& who, participant p) {
    return std::get<0>(
             call<outcome, room_record>(r, join_atom::value, who, std::move(p)))
      .code;
  }

  participant agent(std::string id, std::string behavior,
                    std::string config = "{}",
                    std::string auto_respond = "always") {
    return participant{std::move(id),       "agent",
                       std::move(behavior), std::move(auto_respond),
                       std::move(config),   0};
  }

  std::tuple<outcome, room_message> post(const room_actor& r, const caller& who,
                                         std::string text) {
    return call<outcome, room_message>(r, post_atom::value, who,
                                       std::move(text));
  }

  /// The code of a post's outcome, by value ("" when it was accepted).
  std::string post_code(const room_actor& r, const caller& who,
                        std::string text) {
    return std::get<0>(post(r, who, std::move(text))).code;
  }

  std::vector<room_message> history(const room_actor& r, const caller& who,
                                    uint64_t after = 0) {
    auto [res, msgs] = call<outcome, std::vector<room_message>>(
      r, history_atom::value, who, after, uint32_t{0});
    CAF_REQUIRE(res.ok());
    return msgs;
  }

  /// A session of `user` subscribed to `patterns`, on a recording
  /// connection that may be told to lag.
  std::shared_ptr<recording_connection>
  watcher(const std::string& user, std::vector<std::string> patterns) {
    claims c;
    c.sub = user;
    c.org = "org_1";
    c.exp = node_context::unix_ms() / 1000 + 3600;
    auto conn = std::make_shared<recording_connection>();
    auto s = caf::actor_cast<caf::actor>(sys.spawn<session_server>(
      conn, session_deps_of(ctx), mint_token(c, ctx->cfg.jwt_keys.secret)));
    sessions.push_back(s);
    sched.run();
    int n = 0;
    for (auto& p : patterns) {
      caf::anon_send(s, text_atom::value,
                     R"({"type":"subscribe","id":"s)" + std::to_string(++n)
                       + R"(","topic":")" + p + "\"}");
      sched.run();
    }
    return conn;
  }

  /// The `data` of the events `conn` got on topics with `event`.
  static std::vector<nlohmann::json> data_of(recording_connection& conn,
                                             const std::string& event) {
    std::vector<nlohmann::json> out;
    for (auto& e : conn.events())
      if (e["topic"].get<std::string>().find("." + event + ".")
          != std::string::npos)
        out.push_back(e["data"]);
    return out;
  }

  void advance(milliseconds d) {
    for (auto left = d; left.count() > 0; left -= milliseconds(10)) {
      sched.advance_time(std::min(left, milliseconds(10)));
      sched.run();
    }
  }
};

} // namespace

CAF_TEST_FIXTURE_SCOPE(room_tests, fixture)

CAF_TEST(a room numbers its messages and serves them in order) {
  auto rec = create(alice);
  CAF_CHECK_EQUAL(rec.participants.size(), 1u);
  auto r = room(alice, rec.id);
  for (auto text : {"one", "two", "three"})
    CAF_CHECK_EQUAL(post_code(r, alice, text), "");
  auto msgs = history(r, alice);
  CAF_REQUIRE_EQUAL(msgs.size(), 3u);
  for (size_t i = 0; i < 3; ++i)
    CAF_CHECK_EQUAL(msgs[i].seq, i + 1);
  CAF_CHECK_EQUAL(msgs[2].text, "three");
  auto later = history(r, alice, 1);
  CAF_REQUIRE_EQUAL(later.size(), 2u);
  CAF_CHECK_EQUAL(later[0].text, "two");
}

CAF_TEST(only participants post and read a private room) {
  auto rec = create(alice);
  auto r = room(alice, rec.id);
  CAF_CHECK_EQUAL(post_code(r, bob, "hi"), "forbidden");
  auto [res, got] = call<outcome, room_record>(r, get_atom::value, bob);
  CAF_CHECK_EQUAL(res.code, "forbidden");
  CAF_CHECK(got.participants.empty());
  CAF_CHECK_EQUAL(join(r, bob, participant{"bob", "user", {}, {}, {}, 0}),
                  "forbidden");
  CAF_CHECK_EQUAL(join(r, alice, participant{"bob", "user", {}, {}, {}, 0}),
                  "");
  CAF_CHECK_EQUAL(post_code(r, bob, "hi"), "");
  auto [denied] = call<bool>(ctx->rooms, access_atom::value,
                             std::string{"org_1"}, std::string{"carol"},
                             rec.id);
  CAF_CHECK(!denied);
  auto [allowed] = call<bool>(ctx->rooms, access_atom::value,
                              std::string{"org_1"}, std::string{"bob"}, rec.id);
  CAF_CHECK(allowed);
  // Another org's caller finds no such room.
  auto [other, none] = call<outcome, room_actor>(
    ctx->rooms, resolve_atom::value, caller{"alice", "org_2", false}, rec.id);
  CAF_CHECK_EQUAL(other.code, "not_found");
}

CAF_TEST(anyone of the org may read and join a public room) {
  auto rec = create(alice, false);
  auto r = room(carol, rec.id);
  auto [seen, got] = call<outcome, room_record>(r, get_atom::value, carol);
  CAF_CHECK(seen.ok());
  CAF_CHECK_EQUAL(got.id, rec.id);
  CAF_CHECK_EQUAL(post_code(r, carol, "hi"), "forbidden");
  // Not someone else in her name, but herself.
  CAF_CHECK_EQUAL(join(r, carol, participant{"dave", "user", {}, {}, {}, 0}),
                  "forbidden");
  CAF_CHECK_EQUAL(join(r, carol, participant{"carol", "user", {}, {}, {}, 0}),
                  "");
  CAF_CHECK_EQUAL(post_code(r, carol, "hi"), "");
}

CAF_TEST(an agent reply streams in order and ends in the history) {
  auto rec = create(alice);
  auto r = room(alice, rec.id);
  CAF_REQUIRE_EQUAL(join(r, alice, agent("agent_e", "echo")), "");
  auto conn = watcher("alice", {room_topic("*", rec.id)});
  CAF_REQUIRE_EQUAL(post_code(r, alice, "a b c"), "");
  auto evs = conn->events();
  std::vector<std::string> kinds;
  for (auto& e : evs)
    kinds.emplace_back(rooms::event_of(e["topic"].get<std::string>()));
  std::vector<std::string> want{"message_posted", "message_stream",
                                "message_stream", "message_stream",
                                "message_stream", "message_posted"};
  CAF_CHECK_EQUAL(kinds, want);
  auto tokens = data_of(*conn, "message_stream");
  CAF_REQUIRE_EQUAL(tokens.size(), 4u);
  std::string text;
  for (size_t i = 0; i < tokens.size(); ++i) {
    CAF_CHECK_EQUAL(tokens[i]["index"], i);
    text += tokens[i]["token"].get<std::string>();
  }
  CAF_CHECK_EQUAL(text, "a b c");
  CAF_CHECK_EQUAL(tokens.back()["done"], true);
  CAF_CHECK_EQUAL(tokens.back()["state"], "complete");
  auto msgs = history(r, alice);
  CAF_REQUIRE_EQUAL(msgs.size(), 2u);
  CAF_CHECK_EQUAL(msgs[1].author, "agent_e");
  CAF_CHECK_EQUAL(msgs[1].text, "a b c");
  CAF_CHECK_EQUAL(msgs[1].state, "complete");
  CAF_CHECK_EQUAL(msgs[1].reply_to, msgs[0].message_id);
  CAF_CHECK_EQUAL(msgs[1].seq, 2u);
}

CAF_TEST(agents never answer agents and mention means the whole id) {
  auto rec = create(alice);
  auto r = room(alice, rec.id);
  CAF_REQUIRE_EQUAL(join(r, alice, agent("agent_e", "echo")), "");
  CAF_REQUIRE_EQUAL(join(r, alice, agent("bot", "shout", "{}", "mention")), "");
  post(r, alice, "hello @botx");
  post(r, alice, "hello @bot!");
  auto msgs = history(r, alice);
  std::vector<std::string> authors;
  for (auto& m : msgs)
    authors.push_back(m.author);
  std::vector<std::string> want{"alice", "agent_e", "alice", "agent_e", "bot"};
  CAF_CHECK_EQUAL(authors, want);
  CAF_CHECK_EQUAL(msgs.back().text, "HELLO @BOT!!");
}

CAF_TEST(a watcher joining mid - reply gets the text so far then the rest) {
  auto rec = create(alice);
  auto r = room(alice, rec.id);
  CAF_REQUIRE_EQUAL(
    join(r, alice, agent("agent_e", "echo", R"({"delay_ms":100})")), "");
  post(r, alice, "a b c d");
  advance(milliseconds(100)); // tokens 0 and 1 are out
  auto late = watcher("alice", {room_topic("message_stream", "*")});
  auto first = data_of(*late, "message_stream");
  CAF_REQUIRE_EQUAL(first.size(), 1u);
  CAF_CHECK_EQUAL(first[0]["text"], "a b");
  CAF_CHECK_EQUAL(first[0]["index"], 1);
  CAF_CHECK_EQUAL(first[0]["done"], false);
  advance(milliseconds(500));
  auto all = data_of(*late, "message_stream");
  CAF_REQUIRE_EQUAL(all.size(), 4u); // catch-up, " c", " d", done
  CAF_CHECK_EQUAL(all[1]["index"], 2);
  CAF_CHECK_EQUAL(all[1]["token"], " c");
  CAF_CHECK_EQUAL(all[2]["index"], 3);
  CAF_CHECK_EQUAL(all[3]["done"], true);
}

CAF_TEST(a lagging watcher gets the pending tokens of a reply coalesced) {
  auto rec = create(alice);
  auto r = room(alice, rec.id);
  CAF_REQUIRE_EQUAL(
    join(r, alice, agent("agent_e", "echo", R"({"delay_ms":10})")), "");
  auto conn = watcher("alice", {room_topic("message_stream", rec.id)});
  conn->lag = 1024 * 1024;
  post(r, alice, "a b c d e f g h");
  advance(milliseconds(40));
  CAF_CHECK(data_of(*conn, "message_stream").empty());
  conn->lag = 0;
  advance(milliseconds(50)); // the next flush finds the client caught up
  auto got = data_of(*conn, "message_stream");
  CAF_REQUIRE(!got.empty());
  CAF_CHECK_GREATER_OR_EQUAL(got[0]["index"].get<int>(), 3);
  CAF_CHECK_EQUAL(got[0]["token"].get<std::string>().substr(0, 5), "a b c");
  advance(milliseconds(200));
  got = data_of(*conn, "message_stream");
  std::string text;
  int64_t last = -1;
  for (auto& d : got) {
    CAF_CHECK_GREATER(d["index"].get<int64_t>(), last);
    last = d["index"].get<int64_t>();
    text += d["token"].get<std::string>();
  }
  CAF_CHECK_EQUAL(text, "a b c d e f g h");
  CAF_CHECK_EQUAL(got.back()["done"], true);
  CAF_CHECK_LESS(got.size(), 9u);
}

CAF_TEST(a cancelled reply keeps its text so far) {
  auto rec = create(alice);
  auto r = room(alice, rec.id);
  CAF_REQUIRE_EQUAL(
    join(r, alice, agent("agent_e", "echo", R"({"delay_ms":100})")), "");
  auto conn = watcher("alice", {room_topic("*", rec.id)});
  post(r, alice, "a b c d e f");
  advance(milliseconds(100));
  auto msgs = history(r, alice);
  CAF_REQUIRE_EQUAL(msgs.size(), 2u);
  CAF_CHECK_EQUAL(msgs[1].state, "streaming");
  auto [res] = call<outcome>(r, cancel_atom::value, alice, msgs[1].message_id);
  CAF_CHECK(res.ok());
  advance(milliseconds(300));
  msgs = history(r, alice);
  CAF_CHECK_EQUAL(msgs[1].state, "cancelled");
  CAF_CHECK_EQUAL(msgs[1].text, "a b");
  auto tokens = data_of(*conn, "message_stream");
  CAF_REQUIRE_EQUAL(tokens.size(), 3u);
  CAF_CHECK_EQUAL(tokens.back()["state"], "cancelled");
  auto [again] = call<outcome>(r, cancel_atom::value, alice,
                               msgs[1].message_id);
  CAF_CHECK_EQUAL(again.code, "conflict");
}

CAF_TEST(a crashed agent fails its reply and is restarted) {
  crashy_state::crashes_left = 1;
  auto rec = create(alice);
  auto r = room(alice, rec.id);
  CAF_REQUIRE_EQUAL(join(r, alice, agent("agent_x", "crashy")), "");
  CAF_CHECK_EQUAL(ctx->stats.agents_running.load(), 1);
  post(r, alice, "first");
  auto msgs = history(r, alice);
  CAF_REQUIRE_EQUAL(msgs.size(), 2u);
  CAF_CHECK_EQUAL(msgs[1].state, "failed");
  CAF_CHECK_EQUAL(msgs[1].reason, "agent crashed");
  CAF_CHECK_EQUAL(ctx->stats.agents_running.load(), 0);
  advance(milliseconds(100)); // the first restart backoff
  CAF_CHECK_EQUAL(ctx->stats.agents_running.load(), 1);
  post(r, alice, "second");
  msgs = history(r, alice);
  CAF_REQUIRE_EQUAL(msgs.size(), 4u);
  CAF_CHECK_EQUAL(msgs[3].state, "complete");
  CAF_CHECK_EQUAL(msgs[3].text, "second");
}

CAF_TEST(a stalled agent fails its reply and the room goes on) {
  auto rec = create(alice);
  auto r = room(alice, rec.id);
  CAF_REQUIRE_EQUAL(join(r, alice, agent("agent_s", "silent")), "");
  post(r, alice, "anyone?");
  advance(ctx->cfg.agent_stall_timeout);
  auto msgs = history(r, alice);
  CAF_REQUIRE_EQUAL(msgs.size(), 2u);
  CAF_CHECK_EQUAL(msgs[1].state, "failed");
  CAF_CHECK_EQUAL(msgs[1].reason, "agent stalled");
  CAF_CHECK_EQUAL(post_code(r, alice, "still here"), "");
}

CAF_TEST(a room reloads its history from the store) {
  auto rec = create(alice);
  {
    auto r = room(alice, rec.id);
    post(r, alice, "kept");
    caf::anon_send_exit(r, caf::exit_reason::user_shutdown);
    sched.run();
  }
  auto r = room(alice, rec.id);
  auto msgs = history(r, alice);
  CAF_REQUIRE_EQUAL(msgs.size(), 1u);
  CAF_CHECK_EQUAL(msgs[0].text, "kept");
  auto [res, next] = post(r, alice, "next");
  CAF_CHECK(res.ok());
  CAF_CHECK_EQUAL(next.seq, 2u);
}

CAF_TEST_FIXTURE_SCOPE_END()
