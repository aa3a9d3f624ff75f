#define CAF_SUITE ws_parser

#include <caf/test/dsl.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "net/ws_codec.hpp"

using namespace switchyard;
using frames::opcode;
using net::ws_parser;

namespace {

constexpr size_t max_message = 1024;

/// One client frame: masked unless said otherwise, minimal length encoding
/// unless `length_form` forces 16 or 64 bits, `length` overrides the length
/// field without changing the payload.
struct frame_spec {
  frame_spec(uint8_t op, std::string payload, bool fin = true, uint8_t rsv = 0,
             bool masked = true, int length_form = 0,
             std::optional<uint64_t> length = std::nullopt)
    : op(op),
      payload(std::move(payload)),
      fin(fin),
      rsv(rsv),
      masked(masked),
      length_form(length_form),
      length(length) {
    // nop
  }
  uint8_t op;
  std::string payload;
  bool fin;
  uint8_t rsv;
  bool masked;
  int length_form;
  std::optional<uint64_t> length;
};

std::string encode(const frame_spec& f) {
  std::string out;
  out.push_back(static_cast<char>((f.fin ? 0x80 : 0) | (f.rsv << 4) | f.op));
  uint64_t len = f.length.value_or(f.payload.size());
  uint8_t mask_bit = f.masked ? 0x80 : 0;
  int form = f.length_form;
  if (form == 0)
    form = len < 126 ? 7 : len <= 0xFFFF ? 16 : 64;
  if (form == 7) {
    out.push_back(static_cast<char>(mask_bit | len));
  } else if (form == 16) {
    out.push_back(static_cast<char>(mask_bit | 126));
    out.push_back(static_cast<char>(len >> 8));
    out.push_back(static_cast<char>(len & 0xFF));
  } else {
    out.push_back(static_cast<char>(mask_bit | 127));
    for (int shift = 56; shift >= 0; shift -= 8)
      out.push_back(static_cast<char>((len >> shift) & 0xFF));
  }
  const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
  if (f.masked)
    out.append(reinterpret_cast<const char*>(key), 4);
  for (size_t i = 0; i < f.payload.size(); ++i)
    out.push_back(f.masked ? static_cast<char>(f.payload[i] ^ key[i % 4])
                           : f.payload[i]);
  return out;
}

std::string close_payload(uint16_t code, std::string reason = {}) {
  std::string out;
  out.push_back(static_cast<char>(code >> 8));
  out.push_back(static_cast<char>(code & 0xFF));
  return out + reason;
}

/// What the parser made of some bytes: the messages, then the close code
/// of an error (0 when none).
struct outcome {
  std::vector<net::ws_message> messages;
  uint16_t error = 0;
};

outcome parse_all(const std::string& bytes, size_t chunk = 0) {
  outcome out;
  ws_parser p{max_message};
  if (chunk == 0)
    chunk = bytes.size() + 1;
  for (size_t pos = 0; pos < bytes.size() && out.error == 0; pos += chunk) {
    auto piece = bytes.substr(pos, chunk);
    p.feed(piece.data(), piece.size());
    for (;;) {
      auto st = p.next();
      if (st == ws_parser::status::message) {
        out.messages.push_back(p.message());
        continue;
      }
      if (st == ws_parser::status::error)
        out.error = p.close_code();
      break;
    }
  }
  return out;
}

/// The close code the parser fails with on `bytes`, fed whole and byte by
/// byte (which must agree).
uint16_t error_of(const std::string& bytes) {
  auto whole = parse_all(bytes).error;
  auto bytewise = parse_all(bytes, 1).error;
  CAF_CHECK_EQUAL(whole, bytewise);
  return whole;
}

std::string cat(std::initializer_list<frame_spec> frames) {
  std::string out;
  for (auto& f : frames)
    out += encode(f);
  return out;
}

} // namespace

CAF_TEST(a masked text frame yields its unmasked payload) {
  for (size_t chunk : {0, 1, 3}) {
    auto out = parse_all(encode({0x1, "hello"}), chunk);
    CAF_REQUIRE_EQUAL(out.messages.size(), 1u);
    CAF_CHECK(out.messages[0].op == opcode::text);
    CAF_CHECK_EQUAL(out.messages[0].payload, "hello");
    CAF_CHECK_EQUAL(out.error, 0);
  }
}

CAF_TEST(fragments are reassembled and control frames may interleave) {
  auto bytes = cat(
    {{0x1, "hel", false}, {0x9, "p"}, {0x0, "lo", false}, {0x0, " you", true}});
  for (size_t chunk : {0, 1, 2, 5}) {
    auto out = parse_all(bytes, chunk);
    CAF_REQUIRE_EQUAL(out.messages.size(), 2u);
    CAF_CHECK(out.messages[0].op == opcode::ping);
    CAF_CHECK_EQUAL(out.messages[0].payload, "p");
    CAF_CHECK_EQUAL(out.messages[1].payload, "hello you");
  }
}

CAF_TEST(16 and 64 bit lengths parse) {
  ws_parser big{1 << 20};
  auto bytes = encode({0x2, std::string(70000, 'x')});
  bytes += encode({0x2, std::string(300, 'y')});
  big.feed(bytes.data(), bytes.size());
  CAF_REQUIRE(big.next() == ws_parser::status::message);
  CAF_CHECK_EQUAL(big.message().payload.size(), 70000u);
  CAF_REQUIRE(big.next() == ws_parser::status::message);
  CAF_CHECK_EQUAL(big.message().payload, std::string(300, 'y'));
  CAF_CHECK(big.next() == ws_parser::status::need_more);
}

CAF_TEST(framing violations fail with 1002) {
  CAF_CHECK_EQUAL(error_of(encode({0x1, "x", true, 0, false})), 1002);
  for (uint8_t rsv : {1, 2, 4})
    CAF_CHECK_EQUAL(error_of(encode({0x1, "x", true, rsv})), 1002);
  for (uint8_t op : {3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF})
    CAF_CHECK_EQUAL(error_of(encode({op, "x"})), 1002);
  CAF_CHECK_EQUAL(error_of(encode({0x9, std::string(126, 'p')})), 1002);
  CAF_CHECK_EQUAL(error_of(encode({0x9, "p", false})), 1002);
  CAF_CHECK_EQUAL(error_of(encode({0xA, "p", false})), 1002);
  CAF_CHECK_EQUAL(error_of(encode({0x8, "", false})), 1002);
  CAF_CHECK_EQUAL(error_of(encode({0x0, "x"})), 1002);
  CAF_CHECK_EQUAL(error_of(cat({{0x1, "a", false}, {0x1, "b"}})), 1002);
  CAF_CHECK_EQUAL(error_of(cat({{0x1, "a", false}, {0x2, "b"}})), 1002);
  CAF_CHECK_EQUAL(error_of(encode({0x1, "0123456789", true, 0, true, 16})),
                  1002);
  CAF_CHECK_EQUAL(
    error_of(encode({0x2, std::string(200, 'x'), true, 0, true, 64})), 1002);
}

CAF_TEST(a huge 64 bit length fails at once and never wraps) {
  // The 20-byte crash: a fragment, then a continuation of 2^64-1 bytes.
  auto bytes = encode({0x1, "a", false});
  bytes += encode({0x0, "", true, 0, true, 64, UINT64_MAX});
  CAF_CHECK_EQUAL(error_of(bytes), 1002);
  // Top bit clear but far over the limit: 1009, before any payload.
  CAF_CHECK_EQUAL(
    error_of(encode({0x2, "", true, 0, true, 64, uint64_t{1} << 62})), 1009);
  // The error is known before the masking key arrives.
  auto head = encode({0x2, "", true, 0, true, 64, UINT64_MAX}).substr(0, 10);
  CAF_CHECK_EQUAL(parse_all(head).error, 1002);
}

CAF_TEST(messages over the limit fail with 1009) {
  CAF_CHECK_EQUAL(error_of(encode({0x2, std::string(max_message + 1, 'x')})),
                  1009);
  CAF_CHECK_EQUAL(
    parse_all(encode({0x2, std::string(max_message, 'x')})).messages.size(),
    1u);
  // The sum of the fragments counts.
  std::string bytes;
  for (int i = 0; i < 5; ++i)
    bytes += encode({static_cast<uint8_t>(i == 0 ? 0x1 : 0x0),
                     std::string(max_message / 4, 'x'), i == 4});
  CAF_CHECK_EQUAL(error_of(bytes), 1009);
}

CAF_TEST(invalid UTF - 8 in text fails with 1007) {
  for (std::string bad :
       {"\xFF", "\xC0\xAF", "\xED\xA0\x80", "\xF4\x90\x80\x80", "ok\xE2\x82"})
    CAF_CHECK_EQUAL(error_of(encode({0x1, bad})), 1007);
  // Binary payloads are not text.
  CAF_CHECK_EQUAL(error_of(encode({0x2, "\xFF"})), 0);
}

CAF_TEST(invalid UTF - 8 fails fast in the first fragment) {
  auto out = parse_all(encode({0x1, "abc\xFF", false}));
  CAF_CHECK_EQUAL(out.error, 1007);
  // Even inside one frame whose end has not arrived yet.
  auto bytes = encode({0x1, "abc\xFF" + std::string(500, 'x')});
  CAF_CHECK_EQUAL(parse_all(bytes.substr(0, 12)).error, 1007);
}

CAF_TEST(a code point split across fragments is valid) {
  std::string text
    = "\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80"; // e-acute euro grin
  auto bytes = cat(
    {{0x1, text.substr(0, 7), false}, {0x9, ""}, {0x0, text.substr(7), true}});
  for (size_t chunk : {0, 1}) {
    auto out = parse_all(bytes, chunk);
    CAF_CHECK_EQUAL(out.error, 0);
    CAF_REQUIRE_EQUAL(out.messages.size(), 2u);
    CAF_CHECK_EQUAL(out.messages[1].payload, text);
  }
}

CAF_TEST(close frames follow RFC 6455 7.4) {
  CAF_CHECK_EQUAL(error_of(encode({0x8, "\x03"})), 1002);
  for (uint16_t code :
       {0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535})
    CAF_CHECK_EQUAL(error_of(encode({0x8, close_payload(code)})), 1002);
  for (uint16_t code : {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011,
                        1012, 1013, 1014, 3000, 3999, 4000, 4999}) {
    auto out = parse_all(encode({0x8, close_payload(code, "bye")}));
    CAF_CHECK_EQUAL(out.error, 0);
    CAF_REQUIRE_EQUAL(out.messages.size(), 1u);
    CAF_CHECK_EQUAL(net::close_code_of(out.messages[0].payload), code);
  }
  CAF_CHECK_EQUAL(error_of(encode({0x8, close_payload(1000, "\xC3(")})), 1007);
  CAF_CHECK_EQUAL(error_of(encode({0x8, close_payload(1000, "\xC3\xA9")})), 0);
  auto empty = parse_all(encode({0x8, ""}));
  CAF_REQUIRE_EQUAL(empty.messages.size(), 1u);
  CAF_CHECK_EQUAL(net::close_code_of(empty.messages[0].payload), 1005);
}

CAF_TEST(a close inside a fragmented text message keeps its UTF - 8 state) {
  std::string euro = "\xE2\x82\xAC";
  auto out = parse_all(cat({{0x1, euro.substr(0, 1), false},
                            {0x8, close_payload(1000, "ok")},
                            {0x0, euro.substr(1), true}}));
  CAF_CHECK_EQUAL(out.error, 0);
  CAF_REQUIRE_EQUAL(out.messages.size(), 2u);
  CAF_CHECK_EQUAL(out.messages[1].payload, euro);
}

CAF_TEST(errors are sticky) {
  ws_parser p{max_message};
  auto bad = encode({0x1, "x", true, 0, false});
  p.feed(bad.data(), bad.size());
  CAF_CHECK(p.next() == ws_parser::status::error);
  auto good = encode({0x1, "fine"});
  p.feed(good.data(), good.size());
  CAF_CHECK(p.next() == ws_parser::status::error);
  CAF_CHECK_EQUAL(p.close_code(), 1002);
}

CAF_TEST(a closing connection skips data but still sees the close) {
  ws_parser p{max_message};
  auto bytes = cat({{0x1, "dropped"},
                    {0x2, std::string(5000, 'x')},
                    {0x8, close_payload(1000)}});
  p.skip_data();
  p.feed(bytes.data(), bytes.size());
  CAF_REQUIRE(p.next() == ws_parser::status::message);
  CAF_CHECK(p.message().op == opcode::close);
  CAF_CHECK(p.next() == ws_parser::status::need_more);
}
