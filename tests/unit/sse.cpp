#define CAF_SUITE sse

#include <caf/test/dsl.hpp>

#include <string>
#include <vector>

#include "net/sse.hpp"

using namespace switchyard;
using net::sse_event;
using net::sse_parser;

namespace {

/// What a parser made of a stream: its events, then its error (empty when
/// none).
struct parsed {
  std::vector<sse_event> events;
  std::string error;
};

/// Feeds `chunks` one after the other, stopping at the first error.
parsed parse_chunks(const std::vector<std::string>& chunks,
                    size_t max_line = sse_parser::default_max_line,
                    size_t max_event = sse_parser::default_max_event) {
  parsed out;
  sse_parser p{max_line, max_event};
  for (auto& chunk : chunks)
    if (!p.feed(chunk, out.events)) {
      out.error = p.error();
      break;
    }
  return out;
}

parsed parse(const std::string& stream, size_t chunk = 0,
             size_t max_line = sse_parser::default_max_line,
             size_t max_event = sse_parser::default_max_event) {
  std::vector<std::string> chunks;
  if (chunk == 0)
    chunks.push_back(stream);
  else
    for (size_t pos = 0; pos < stream.size(); pos += chunk)
      chunks.push_back(stream.substr(pos, chunk));
  return parse_chunks(chunks, max_line, max_event);
}

bool same(const parsed& x, const parsed& y) {
  if (x.error != y.error || x.events.size() != y.events.size())
    return false;
  for (size_t i = 0; i < x.events.size(); ++i) {
    auto& a = x.events[i];
    auto& b = y.events[i];
    if (a.type != b.type || a.data != b.data || a.id != b.id)
      return false;
  }
  return true;
}

/// Checks that `stream` parses alike whole, byte by byte and cut in two at
/// every offset, and returns what it parses to.
parsed parse_every_way(const std::string& stream,
                       size_t max_line = sse_parser::default_max_line,
                       size_t max_event = sse_parser::default_max_event) {
  auto whole = parse(stream, 0, max_line, max_event);
  CAF_CHECK(same(whole, parse(stream, 1, max_line, max_event)));
  for (size_t cut = 0; cut <= stream.size(); ++cut) {
    auto two = parse_chunks({stream.substr(0, cut), stream.substr(cut)},
                            max_line, max_event);
    if (!same(whole, two))
      CAF_FAIL("stream parses differently when cut at " << cut);
  }
  return whole;
}

std::vector<std::string> datas(const parsed& x) {
  std::vector<std::string> out;
  for (auto& ev : x.events)
    out.push_back(ev.data);
  return out;
}

using strings = std::vector<std::string>;

} // namespace

CAF_TEST(a blank line ends each event) {
  auto out = parse_every_way("data: one\n\ndata: two\n\n");
  CAF_CHECK_EQUAL(out.error, "");
  CAF_CHECK_EQUAL(datas(out), (strings{"one", "two"}));
  CAF_CHECK_EQUAL(out.events[0].type, "message");
}

CAF_TEST(LF CR and CRLF all end lines and may be mixed) {
  for (auto stream :
       {"data: a\r\n\r\ndata: b\r\n\r\n", "data: a\r\rdata: b\r\r",
        "data: a\n\r\ndata: b\r\n\n", "data: a\r\n\rdata: b\n\r"}) {
    auto out = parse_every_way(stream);
    CAF_CHECK_EQUAL(out.error, "");
    CAF_CHECK_EQUAL(datas(out), (strings{"a", "b"}));
  }
}

CAF_TEST(a CRLF split between chunks ends one line) {
  // Were the LF taken for a second line end, it would end the event early
  // (an empty line) and `data: b` would make an event of its own.
  auto out = parse_chunks({"data: a\r", "\ndata: b\r", "\n\r", "\n"});
  CAF_CHECK_EQUAL(out.error, "");
  CAF_CHECK_EQUAL(datas(out), (strings{"a\nb"}));
}

CAF_TEST(data lines of one event join with LF) {
  auto out = parse_every_way("data: one\ndata:two\ndata\ndata:  three\n\n");
  CAF_CHECK_EQUAL(datas(out), (strings{"one\ntwo\n\n three"}));
}

CAF_TEST(an empty data line still makes an event and no data makes none) {
  auto out = parse_every_way("data\n\nevent: x\n\n: only a comment\n\n\n\n"
                             "data:\n\n");
  CAF_CHECK_EQUAL(datas(out), (strings{"", ""}));
  // The event type of an event without data does not carry over.
  CAF_CHECK_EQUAL(out.events[1].type, "message");
}

CAF_TEST(comments and unknown fields are skipped) {
  auto out = parse_every_way(": keep-alive\n:\ndata: {\"a\":1}\nretry: 10\n"
                             "foo: bar\n: more\n\n");
  CAF_CHECK_EQUAL(datas(out), (strings{"{\"a\":1}"}));
}

CAF_TEST(only the first colon splits and one space is dropped) {
  auto out = parse_every_way("data:  a: b:c\n\n");
  CAF_CHECK_EQUAL(datas(out), (strings{" a: b:c"}));
}

CAF_TEST(event and id fields are kept) {
  auto out = parse_every_way("event: error\nid: 7\ndata: x\n\ndata: y\n\n"
                             "id\ndata: z\n\n");
  CAF_REQUIRE_EQUAL(out.events.size(), 3u);
  CAF_CHECK_EQUAL(out.events[0].type, "error");
  CAF_CHECK_EQUAL(out.events[0].id, "7");
  // The type resets after each event, the last id carries over.
  CAF_CHECK_EQUAL(out.events[1].type, "message");
  CAF_CHECK_EQUAL(out.events[1].id, "7");
  CAF_CHECK_EQUAL(out.events[2].id, "");
}

CAF_TEST(an id with a NUL is ignored) {
  using namespace std::string_literals;
  auto out = parse_every_way("id: 1\n\nid: a\0b\ndata: x\n\n"s);
  CAF_REQUIRE_EQUAL(out.events.size(), 1u);
  CAF_CHECK_EQUAL(out.events[0].id, "1");
}

CAF_TEST(a byte order mark is skipped at the start only) {
  auto out = parse_every_way("\xEF\xBB\xBF"
                             "data: a\n\n\xEF\xBB\xBF"
                             "data: b\n\n");
  // The second BOM makes its line the field "\xEF\xBB\xBFdata", unknown.
  CAF_CHECK_EQUAL(datas(out), (strings{"a"}));
}

CAF_TEST(an event without its blank line is not dispatched) {
  sse_parser p;
  std::vector<sse_event> events;
  CAF_CHECK(p.feed("data: a\n\ndata: b\n", events));
  CAF_CHECK_EQUAL(events.size(), 1u);
  CAF_CHECK(p.in_event());
  CAF_CHECK(p.feed("\n", events));
  CAF_CHECK_EQUAL(events.size(), 2u);
  CAF_CHECK(!p.in_event());
  CAF_CHECK(p.feed("da", events));
  CAF_CHECK(p.in_event());
}

CAF_TEST(a line at the limit passes and one byte more fails) {
  constexpr size_t max_line = 64;
  auto at = "data: " + std::string(max_line - 6, 'x');
  auto ok = parse_every_way(at + "\n\n", max_line);
  CAF_CHECK_EQUAL(ok.error, "");
  CAF_CHECK_EQUAL(datas(ok), (strings{std::string(max_line - 6, 'x')}));
  // A comment line is a line too.
  for (auto over : {at + "x\n\n", ":" + at + "\n\n", at + "x"}) {
    auto bad = parse_every_way("data: before\n\n" + over, max_line);
    CAF_CHECK_EQUAL(bad.error, "event stream line over 64 bytes");
    CAF_CHECK_EQUAL(datas(bad), (strings{"before"}));
  }
}

CAF_TEST(the default limits are 64 KiB a line and 256 KiB an event) {
  auto line = "data: " + std::string(sse_parser::default_max_line - 6, 'x');
  CAF_CHECK_EQUAL(parse(line + "\n\n").error, "");
  CAF_CHECK_EQUAL(parse(line + "x\n\n").error,
                  "event stream line over 65536 bytes");
  std::string event;
  for (int i = 0; i < 5; ++i)
    event += line + "\n";
  CAF_CHECK_EQUAL(parse(event).error, "event stream event over 262144 bytes");
}

CAF_TEST(an event over the limit fails however it is cut) {
  constexpr size_t max_event = 10;
  // Data buffer "12345\n1234\n": 11 bytes, over 10. The dispatched data of
  // an event may be at most max_event - 1 bytes.
  auto ok = parse_every_way("data: 12345\ndata: 123\n\n", 64, max_event);
  CAF_CHECK_EQUAL(ok.error, "");
  auto bad = parse_every_way("data: x\n\ndata: 12345\ndata: 1234\n\n", 64,
                             max_event);
  CAF_CHECK_EQUAL(bad.error, "event stream event over 10 bytes");
  CAF_CHECK_EQUAL(datas(bad), (strings{"x"}));
}

CAF_TEST(a failed parser stays failed) {
  sse_parser p{8, 8};
  std::vector<sse_event> events;
  CAF_CHECK(!p.feed("data: 123456789\n\n", events));
  CAF_CHECK(!p.feed("data: a\n\n", events));
  CAF_CHECK(events.empty());
  CAF_CHECK_EQUAL(p.error(), "event stream line over 8 bytes");
}

CAF_TEST(an OpenAI stream parses chunk by chunk) {
  std::string stream;
  for (auto word : {"Hello", " world", "!"})
    stream += std::string{"data: {\"choices\":[{\"index\":0,\"delta\":"}
      + "{\"content\":\"" + word + "\"}}]}\r\n\r\n";
  stream += ": done soon\r\ndata: [DONE]\r\n\r\n";
  auto out = parse_every_way(stream);
  CAF_REQUIRE_EQUAL(out.events.size(), 4u);
  CAF_CHECK_EQUAL(out.events[3].data, "[DONE]");
}
