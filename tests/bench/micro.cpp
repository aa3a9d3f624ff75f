// Micro-benchmarks (Google Benchmark) of the per-event code paths: trie
// matching in an org router, encoding one event frame, parsing client frames
// and decoding a NATS envelope. Run: build/tests/bench/switchyard-micro

#include <benchmark/benchmark.h>

#include <caf/all.hpp>

#include "actors/node_context.hpp"
#include "actors/topic_router.hpp"
#include "net/ws_codec.hpp"
#include "schemas/envelope.hpp"
#include "schemas/frames.hpp"

using namespace switchyard;

namespace {

event sample_event() {
  event ev;
  ev.id = "0123456789-42";
  ev.topic = "events.org_1.svc.task.done.r42";
  ev.ts = 1700000000000;
  ev.source = "svc";
  ev.data = R"({"t":123456789,"s":42,"p":")" + std::string(160, 'x') + "\"}";
  return ev;
}

void trie_match(benchmark::State& state) {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  auto dummy = caf::actor_cast<topic_actor>(sys.spawn([] {}));
  pattern_trie trie;
  auto n = state.range(0);
  for (int64_t i = 0; i < n; ++i)
    trie.insert("events.org_1.svc.task.done.r" + std::to_string(i), dummy);
  trie.insert("events.org_1.svc.task.done.*", dummy);
  trie.insert("events.org_1.>", dummy);
  std::vector<topic_actor> out;
  int64_t i = 0;
  for (auto _ : state) {
    out.clear();
    trie.match("events.org_1.svc.task.done.r" + std::to_string(i++ % n), out);
    benchmark::DoNotOptimize(out.data());
  }
}
BENCHMARK(trie_match)->Arg(100)->Arg(10000);

/// One event encoded for a subprotocol (0 json, 1 ndjson, 2 msgpack): the
/// work a topic actor does once per event and subprotocol in use.
void event_encode(benchmark::State& state) {
  auto ev = sample_event();
  auto format = static_cast<frames::wire_format>(state.range(0));
  for (auto _ : state) {
    auto frame = frames::encode_event(format, "events.org_1.svc.task.done.*",
                                      ev);
    benchmark::DoNotOptimize(frame->data());
  }
}
BENCHMARK(event_encode)->Arg(0)->Arg(1)->Arg(2);

void client_frame_parse(benchmark::State& state) {
  std::string payload
    = R"({"type":"subscribe","id":"7","topic":"events.org_1.>"})";
  std::string wire;
  wire.push_back(static_cast<char>(0x81));
  wire.push_back(static_cast<char>(0x80 | payload.size()));
  wire.append("\x11\x22\x33\x44", 4);
  for (size_t i = 0; i < payload.size(); ++i)
    wire.push_back(static_cast<char>(payload[i] ^ "\x11\x22\x33\x44"[i % 4]));
  net::ws_parser parser{65536};
  for (auto _ : state) {
    parser.feed(wire.data(), wire.size());
    auto st = parser.next();
    benchmark::DoNotOptimize(st);
  }
}
BENCHMARK(client_frame_parse);

void envelope_decode(benchmark::State& state) {
  auto ev = sample_event();
  auto bytes = envelope::to_msgpack(ev);
  for (auto _ : state) {
    auto out = envelope::from_msgpack(ev.topic, bytes,
                                      settings::default_max_json_depth);
    benchmark::DoNotOptimize(out.value->data.data());
  }
}
BENCHMARK(envelope_decode);

} // namespace

BENCHMARK_MAIN();
