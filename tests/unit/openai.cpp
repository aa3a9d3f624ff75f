#define CAF_SUITE openai

#include <caf/test/dsl.hpp>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "actors/agents/openai.hpp"
#include "net/http_stream_client.hpp"
#include "schemas/messages.hpp"
#include "tests/unit/fake_http_server.hpp"

using namespace switchyard;
using namespace std::chrono_literals;
using test::fake_http_server;
using tcp = boost::asio::ip::tcp;
using nlohmann::json;

namespace {

/// What a reply stream got, written by the fake stream actor and read by
/// the test's thread (the actor system runs on its own threads here: the
/// agent talks to a real HTTP client).
struct stream_log {
  std::mutex mtx;
  std::condition_variable cv;
  std::vector<std::string> tokens;
  /// "end" or "fail: <reason>", one per reply ended.
  std::vector<std::string> outcomes;
  /// Answers false to this token (counted from 1), true before it.
  size_t stop_at = 0;

  template<class Pred>
  bool wait(Pred pred, std::chrono::milliseconds timeout = 5s) {
    std::unique_lock<std::mutex> guard{mtx};
    return cv.wait_for(guard, timeout, [&] {
      return pred(*this);
    });
  }

  std::vector<std::string> get_tokens() {
    std::lock_guard<std::mutex> guard{mtx};
    return tokens;
  }

  std::vector<std::string> get_outcomes() {
    std::lock_guard<std::mutex> guard{mtx};
    return outcomes;
  }

  std::string text() {
    std::lock_guard<std::mutex> guard{mtx};
    std::string out;
    for (auto& t : tokens)
      out += t;
    return out;
  }
};

using log_ptr = std::shared_ptr<stream_log>;

struct fake_stream_state {
  std::vector<caf::typed_response_promise<bool>> held;
  bool hold = false;
};

/// A reply stream as the agent sees it. Dynamically typed, so the test can
/// also tell it to release the token answers it holds back (`flush`).
caf::behavior fake_stream(caf::stateful_actor<fake_stream_state>* self,
                          log_ptr log, bool hold) {
  self->state.hold = hold;
  auto record = [log](auto fun) {
    std::lock_guard<std::mutex> guard{log->mtx};
    fun(*log);
    log->cv.notify_all();
  };
  return {
    [self, log, record](token_atom, std::string& text) {
      size_t n = 0;
      record([&](stream_log& l) {
        l.tokens.push_back(text);
        n = l.tokens.size();
      });
      auto rp = self->make_response_promise<bool>();
      if (self->state.hold)
        self->state.held.push_back(rp);
      else
        rp.deliver(log->stop_at == 0 || n < log->stop_at);
      return rp;
    },
    [self](flush_atom) {
      self->state.hold = false;
      for (auto& rp : self->state.held)
        rp.deliver(true);
      self->state.held.clear();
    },
    [record](end_atom) {
      record([](stream_log& l) {
        l.outcomes.push_back("end");
      });
    },
    [record](fail_atom, std::string& reason) {
      record([&](stream_log& l) {
        l.outcomes.push_back("fail: " + reason);
      });
    },
    [](snapshot_atom) {
      return stream_snapshot{};
    },
    [](cancel_atom) {},
    [](audience_atom, std::vector<std::string>&) {},
  };
}

struct test_config : caf::actor_system_config {
  test_config() {
    add_switchyard_types(*this);
  }
};

room_message message(std::string author, std::string kind, std::string text) {
  room_message msg;
  msg.author = std::move(author);
  msg.author_kind = std::move(kind);
  msg.text = std::move(text);
  return msg;
}

constexpr const char* key_env = "SWITCHYARD_TEST_OPENAI_KEY";

struct fixture {
  fixture() {
    setenv(key_env, "sk-test", 1);
  }

  ~fixture() {
    for (auto& hdl : actors)
      caf::anon_send_exit(hdl, caf::exit_reason::user_shutdown);
  }

  agent_actor spawn_agent(json config) {
    agent_spec spec;
    spec.id = "agent_ai";
    spec.org = "org_1";
    spec.room = "conv_1";
    spec.config = std::move(config);
    spec.http = net::make_http_port();
    auto hdl = spawn_openai_agent(sys, std::move(spec));
    actors.push_back(caf::actor_cast<caf::actor>(hdl));
    return hdl;
  }

  stream_actor spawn_stream(log_ptr log, bool hold = false) {
    auto hdl = sys.spawn(fake_stream, std::move(log), hold);
    actors.push_back(hdl);
    return caf::actor_cast<stream_actor>(hdl);
  }

  json config(const fake_http_server& server) {
    return {{"url", server.url("/v1")},
            {"model", "test-model"},
            {"api_key_env", key_env}};
  }

  void respond(const agent_actor& agent, const stream_actor& stream,
               std::string prompt, std::vector<room_message> history = {}) {
    agent_request req;
    req.org = "org_1";
    req.room = "conv_1";
    req.agent = "agent_ai";
    req.prompt = message("u_1", "user", std::move(prompt));
    req.history = std::move(history);
    req.stream = stream;
    caf::anon_send(agent, respond_atom_v, std::move(req));
  }

  test_config cfg;
  caf::actor_system sys{cfg};
  std::vector<caf::actor> actors;
};

/// Streams `words` as completion chunks, then [DONE], then waits for the
/// client to close (which may come sooner).
fake_http_server::script stream_words(std::vector<std::string> words,
                                      int delay_ms = 5) {
  return [words, delay_ms](tcp::socket& sock, const std::string&) {
    fake_http_server::write(sock, fake_http_server::sse_header);
    fake_http_server::write(sock,
                            fake_http_server::chunk(
                              "data: {\"choices\":[{\"index\":0,"
                              "\"delta\":{\"role\":\"assistant\"}}]}"
                              "\n\n"));
    for (auto& word : words) {
      // The client may close early (a stream that wants no more).
      if (!fake_http_server::write(
            sock,
            fake_http_server::chunk(fake_http_server::completion_event(word))))
        return;
      if (delay_ms > 0)
        fake_http_server::sleep(delay_ms);
    }
    fake_http_server::write(sock, fake_http_server::chunk("data: [DONE]\n\n"));
    fake_http_server::wait_closed(sock);
  };
}

json body_of(const std::string& request) {
  return json::parse(request.substr(request.find("\r\n\r\n") + 4));
}

size_t count(const std::vector<std::string>& xs, const std::string& x) {
  return static_cast<size_t>(std::count(xs.begin(), xs.end(), x));
}

using strings = std::vector<std::string>;

} // namespace

CAF_TEST(the validator names what is wrong) {
  auto ok = json{{"url", "https://api.openai.com/v1"}, {"model", "gpt-4o"}};
  CAF_CHECK_EQUAL(validate_openai_config(ok), "");
  auto full = ok;
  full.update(json{{"api_key_env", ""},
                   {"system", "be brief"},
                   {"history", 100},
                   {"timeout_ms", 1000}});
  CAF_CHECK_EQUAL(validate_openai_config(full), "");
  auto check = [&](json patch, const std::string& start) {
    auto cfg = ok;
    for (auto& [key, value] : patch.items())
      if (value.is_null())
        cfg.erase(key);
      else
        cfg[key] = value;
    auto error = validate_openai_config(cfg);
    if (error.rfind(start, 0) != 0)
      CAF_FAIL("config " << cfg.dump() << ": got error '" << error
                         << "', want it to start with '" << start << "'");
  };
  CAF_CHECK_EQUAL(validate_openai_config(json::array()),
                  "config must be an object");
  check({{"url", nullptr}}, "config.url is required");
  check({{"url", 5}}, "config.url is required");
  check({{"url", "ftp://x"}}, "config.url is invalid: URL must start with");
  check({{"url", "http://"}}, "config.url is invalid: URL has no host");
  check({{"model", nullptr}}, "config.model is required");
  check({{"model", ""}}, "config.model is required");
  check({{"model", std::string(257, 'm')}}, "config.model is longer");
  check({{"api_key_env", "1KEY"}}, "config.api_key_env must name");
  check({{"api_key_env", "A-B"}}, "config.api_key_env must name");
  check({{"system", 1}}, "config.system must be a string");
  check({{"history", 101}}, "config.history must be an integer from 0");
  check({{"history", -1}}, "config.history must be an integer from 0");
  check({{"history", 1.5}}, "config.history must be an integer from 0");
  check({{"timeout_ms", 0}}, "config.timeout_ms must be an integer from 1");
  check({{"modle", "x"}}, "config has an unknown field 'modle'");
}

CAF_TEST(the completions URL follows from a base URL) {
  CAF_CHECK_EQUAL(openai_completions_url("https://api.openai.com/v1"),
                  "https://api.openai.com/v1/chat/completions");
  CAF_CHECK_EQUAL(openai_completions_url("https://api.openai.com/v1/"),
                  "https://api.openai.com/v1/chat/completions");
  CAF_CHECK_EQUAL(openai_completions_url("http://127.0.0.1:8080"),
                  "http://127.0.0.1:8080/v1/chat/completions");
  CAF_CHECK_EQUAL(openai_completions_url("http://h/v1/chat/completions"),
                  "http://h/v1/chat/completions");
  CAF_CHECK_EQUAL(openai_completions_url("http://h/openai/v1?api-version=2"),
                  "http://h/openai/v1/chat/completions?api-version=2");
}

CAF_TEST_FIXTURE_SCOPE(openai_agent_tests, fixture)

CAF_TEST(tokens are relayed in order and the reply ends) {
  fake_http_server server{stream_words({"Hello", " world", "!"})};
  auto cfg = config(server);
  cfg["system"] = "be brief";
  cfg["history"] = 2;
  auto agent = spawn_agent(cfg);
  auto log = std::make_shared<stream_log>();
  respond(agent, spawn_stream(log), "how are you?",
          {message("u_1", "user", "too old"), message("u_2", "user", "hi"),
           message("agent_ai", "agent", "hello")});
  CAF_REQUIRE(log->wait([](auto& l) {
    return !l.outcomes.empty();
  }));
  CAF_CHECK_EQUAL(log->get_outcomes(), (strings{"end"}));
  CAF_CHECK_EQUAL(log->get_tokens(), (strings{"Hello", " world", "!"}));
  // [DONE] closes the connection: the server need not end the body.
  CAF_CHECK(server.wait_served(1));
  auto reqs = server.requests();
  CAF_REQUIRE_EQUAL(reqs.size(), 1u);
  CAF_CHECK_EQUAL(reqs[0].substr(0, reqs[0].find("\r\n")),
                  "POST /v1/chat/completions HTTP/1.1");
  CAF_CHECK_NOT_EQUAL(reqs[0].find("\r\nAuthorization: Bearer sk-test\r\n"),
                      std::string::npos);
  auto want = json{{"model", "test-model"},
                   {"stream", true},
                   {"messages",
                    {{{"role", "system"}, {"content", "be brief"}},
                     {{"role", "user"}, {"content", "hi"}},
                     {{"role", "assistant"}, {"content", "hello"}},
                     {{"role", "user"}, {"content", "how are you?"}}}}};
  CAF_CHECK_EQUAL(body_of(reqs[0]).dump(), want.dump());
}

CAF_TEST(a slow stream gets at most eight tokens at once then the rest joined) {
  std::vector<std::string> words;
  std::string all;
  for (int i = 0; i < 40; ++i) {
    words.push_back("w" + std::to_string(i) + " ");
    all += words.back();
  }
  fake_http_server server{stream_words(words, 0)};
  auto agent = spawn_agent(config(server));
  auto log = std::make_shared<stream_log>();
  auto stream = spawn_stream(log, true);
  respond(agent, stream, "go");
  // Every word is in the agent once [DONE] made it close the connection.
  CAF_REQUIRE(server.wait_served(1));
  CAF_CHECK(log->wait([](auto& l) {
    return l.tokens.size() >= 8;
  }));
  std::this_thread::sleep_for(50ms);
  CAF_CHECK_EQUAL(log->get_tokens().size(), 8u);
  caf::anon_send(caf::actor_cast<caf::actor>(stream), flush_atom_v);
  CAF_REQUIRE(log->wait([](auto& l) {
    return !l.outcomes.empty();
  }));
  CAF_CHECK_EQUAL(log->get_outcomes(), (strings{"end"}));
  CAF_CHECK_EQUAL(log->text(), all);
  CAF_CHECK_EQUAL(log->get_tokens().size(), 9u);
}

CAF_TEST(a token answered false stops the reply and its request) {
  std::vector<std::string> words(100, "x ");
  fake_http_server server{stream_words(words, 20)};
  auto agent = spawn_agent(config(server));
  auto log = std::make_shared<stream_log>();
  log->stop_at = 2;
  respond(agent, spawn_stream(log), "go");
  // Far sooner than the 2 s the server would take to send every word.
  CAF_CHECK(server.wait_served(1, 1s));
  std::this_thread::sleep_for(50ms);
  CAF_CHECK(log->get_outcomes().empty());
  auto n = log->get_tokens().size();
  CAF_CHECK_GREATER_OR_EQUAL(n, 2u);
  CAF_CHECK_LESS(n, 5u);
}

CAF_TEST(an HTTP error fails the reply with the answer of the server) {
  fake_http_server server{[](tcp::socket& sock, const std::string&) {
    fake_http_server::write(sock,
                            "HTTP/1.1 500 Internal Server Error\r\n"
                            "Content-Type: application/json\r\n"
                            "Content-Length: 30\r\n\r\n"
                            "{\"error\":{\"message\":\"fire\"}}\n\n");
  }};
  auto agent = spawn_agent(config(server));
  auto log = std::make_shared<stream_log>();
  respond(agent, spawn_stream(log), "go");
  CAF_REQUIRE(log->wait([](auto& l) {
    return !l.outcomes.empty();
  }));
  CAF_CHECK_EQUAL(log->get_outcomes(),
                  (strings{"fail: HTTP 500: {\"error\":{\"message\":\"fire\"}}"
                           "\n\n"}));
}

CAF_TEST(an error chunk fails the reply after the tokens before it) {
  fake_http_server server{[](tcp::socket& sock, const std::string&) {
    fake_http_server::write(sock, fake_http_server::sse_header);
    fake_http_server::write(
      sock,
      fake_http_server::chunk(
        fake_http_server::completion_event("a")
        + "data: {\"error\":{\"message\":\"overloaded\"}}\n\n"));
    fake_http_server::wait_closed(sock);
  }};
  auto agent = spawn_agent(config(server));
  auto log = std::make_shared<stream_log>();
  respond(agent, spawn_stream(log), "go");
  CAF_REQUIRE(log->wait([](auto& l) {
    return !l.outcomes.empty();
  }));
  CAF_CHECK_EQUAL(log->get_tokens(), (strings{"a"}));
  CAF_CHECK_EQUAL(log->get_outcomes(),
                  (strings{"fail: the model server failed: overloaded"}));
  CAF_CHECK(server.wait_served(1));
}

CAF_TEST(a server that falls silent fails the reply after the timeout) {
  fake_http_server server{[](tcp::socket& sock, const std::string&) {
    fake_http_server::write(sock, fake_http_server::sse_header);
    fake_http_server::write(
      sock, fake_http_server::chunk(fake_http_server::completion_event("a")));
    fake_http_server::wait_closed(sock);
  }};
  auto cfg = config(server);
  cfg["timeout_ms"] = 200;
  auto agent = spawn_agent(cfg);
  auto log = std::make_shared<stream_log>();
  respond(agent, spawn_stream(log), "go");
  CAF_REQUIRE(log->wait([](auto& l) {
    return !l.outcomes.empty();
  }));
  CAF_CHECK_EQUAL(log->get_outcomes(), (strings{"fail: no data for 200 ms"}));
}

CAF_TEST(a missing key fails the reply without a request) {
  fake_http_server server{stream_words({"x"})};
  auto cfg = config(server);
  cfg["api_key_env"] = "SWITCHYARD_TEST_UNSET_KEY";
  unsetenv("SWITCHYARD_TEST_UNSET_KEY");
  auto agent = spawn_agent(cfg);
  auto log = std::make_shared<stream_log>();
  respond(agent, spawn_stream(log), "go");
  CAF_REQUIRE(log->wait([](auto& l) {
    return !l.outcomes.empty();
  }));
  CAF_CHECK_EQUAL(log->get_outcomes(),
                  (strings{"fail: the environment variable "
                           "SWITCHYARD_TEST_UNSET_KEY (config.api_key_env) is "
                           "not set on this node"}));
  CAF_CHECK(server.requests().empty());
}

CAF_TEST(requests while busy wait their turn) {
  int n = 0;
  fake_http_server server{[&n](tcp::socket& sock, const std::string& req) {
    stream_words({++n == 1 ? "first" : "second"})(sock, req);
  }};
  auto agent = spawn_agent(config(server));
  auto log = std::make_shared<stream_log>();
  auto stream = spawn_stream(log);
  respond(agent, stream, "one");
  respond(agent, stream, "two");
  CAF_REQUIRE(log->wait([](auto& l) {
    return l.outcomes.size() == 2;
  }));
  CAF_CHECK_EQUAL(log->get_outcomes(), (strings{"end", "end"}));
  CAF_CHECK_EQUAL(log->get_tokens(), (strings{"first", "second"}));
  auto reqs = server.requests();
  CAF_REQUIRE_EQUAL(reqs.size(), 2u);
  CAF_CHECK_EQUAL(body_of(reqs[1])["messages"][0]["content"].get<std::string>(),
                  "two");
}

CAF_TEST(the queue is bounded and a stopped agent fails what it owes) {
  fake_http_server server{[](tcp::socket& sock, const std::string&) {
    fake_http_server::write(sock, fake_http_server::sse_header);
    fake_http_server::wait_closed(sock);
  }};
  auto agent = spawn_agent(config(server));
  auto log = std::make_shared<stream_log>();
  auto stream = spawn_stream(log);
  // One answered, 16 queued, the 18th refused.
  for (int i = 0; i < 18; ++i)
    respond(agent, stream, "q" + std::to_string(i));
  CAF_REQUIRE(log->wait([](auto& l) {
    return l.outcomes.size() == 1;
  }));
  CAF_CHECK_EQUAL(log->get_outcomes(), (strings{"fail: agent busy"}));
  // Stopped once its request is on the wire, so that there is one to cancel.
  CAF_REQUIRE(server.wait_requests(1));
  caf::anon_send_exit(agent, caf::exit_reason::user_shutdown);
  CAF_REQUIRE(log->wait([](auto& l) {
    return l.outcomes.size() == 18;
  }));
  CAF_CHECK_EQUAL(count(log->get_outcomes(), "fail: agent stopped"), 17u);
  // Its request was cancelled.
  CAF_CHECK(server.wait_served(1));
}

CAF_TEST_FIXTURE_SCOPE_END()
