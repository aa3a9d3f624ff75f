// The SMTP client's pure parts (net/smtp_client.hpp) on arbitrary bytes.
//
// Replies: the first three input bytes choose where the rest is cut into
// four chunks, as replies arrive from a socket; the chunked read must agree
// with the read of the whole input, reply for reply and error for error,
// every reply must keep the limits, and the EHLO parser and the quoted text
// of each must be sound.
//
// The message: the input split at NUL bytes gives the fields of a mail and
// its sender (recipient, subject, text, HTML, Message-ID, sender, sender
// name) and, from its first eight bytes, the time; whatever they hold, the
// composed message has CRLF line ends only, no line over 998 bytes, 7-bit
// bytes only, and once dot-stuffed exactly one end of data, at its end.

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "net/smtp_client.hpp"

using namespace switchyard;

namespace {

bool same(const std::vector<net::smtp_reply>& x,
          const std::vector<net::smtp_reply>& y) {
  if (x.size() != y.size())
    return false;
  for (size_t i = 0; i < x.size(); ++i)
    if (x[i].code != y[i].code || x[i].lines != y[i].lines)
      return false;
  return true;
}

void check_reply(const net::smtp_reply& r) {
  if (r.code < 200 || r.code > 599 || r.lines.empty()
      || r.lines.size() > net::smtp_max_reply_lines)
    __builtin_trap();
  for (auto& line : r.lines)
    if (line.size() + 5 > net::smtp_max_reply_line
        || line.find_first_of(std::string_view{"\r\n\0", 3})
          != std::string::npos)
      __builtin_trap();
  auto q = r.quoted();
  if (q.size() > 4 + net::smtp_max_quoted_reply + 3)
    __builtin_trap();
  for (char c : q)
    if (c < 0x20 || c > 0x7E)
      __builtin_trap();
  auto caps = net::parse_ehlo(r);
  for (auto& m : caps.auth)
    if (m.empty() || !caps.has_auth(m))
      __builtin_trap();
}

void fuzz_replies(const uint8_t* data, size_t size) {
  constexpr size_t cut_bytes = 3;
  if (size < cut_bytes)
    return;
  std::string_view input{reinterpret_cast<const char*>(data + cut_bytes),
                         size - cut_bytes};
  auto n = input.size();
  std::array<size_t, cut_bytes + 2> cuts{};
  for (size_t i = 0; i < cut_bytes; ++i)
    cuts[i + 1] = n * data[i] / 255;
  cuts.back() = n;
  std::sort(cuts.begin(), cuts.end());

  net::smtp_reply_reader whole;
  std::vector<net::smtp_reply> expected;
  bool whole_ok = whole.feed(input, expected);
  if (whole_ok != whole.error().empty())
    __builtin_trap();
  for (auto& r : expected)
    check_reply(r);

  net::smtp_reply_reader chunked;
  std::vector<net::smtp_reply> replies;
  bool ok = true;
  for (size_t i = 0; i + 1 < cuts.size() && ok; ++i)
    ok = chunked.feed(input.substr(cuts[i], cuts[i + 1] - cuts[i]), replies);
  if (ok != whole_ok || chunked.error() != whole.error()
      || !same(replies, expected))
    __builtin_trap();
  // A spent reader refuses everything after its error and holds nothing.
  if (!ok && (chunked.feed("250 ok\r\n", replies) || chunked.pending()))
    __builtin_trap();
}

void check_message(const std::string& msg) {
  if (msg.size() < 2 || msg.compare(msg.size() - 2, 2, "\r\n") != 0)
    __builtin_trap();
  size_t line = 0;
  for (size_t i = 0; i < msg.size(); ++i) {
    auto c = static_cast<unsigned char>(msg[i]);
    if (c == 0 || c >= 0x80)
      __builtin_trap();
    if (c == '\n' && (i == 0 || msg[i - 1] != '\r'))
      __builtin_trap(); // bare LF
    if (c == '\r' && (i + 1 == msg.size() || msg[i + 1] != '\n'))
      __builtin_trap(); // bare CR
    if (c == '\r' || c == '\n') {
      line = 0;
      continue;
    }
    if (++line > 998)
      __builtin_trap();
  }
  auto stuffed = net::dot_stuff(msg);
  auto end = stuffed.find("\r\n.\r\n");
  if (end == std::string::npos || end + 5 != stuffed.size())
    __builtin_trap();
}

void fuzz_compose(const uint8_t* data, size_t size) {
  int64_t unix_ms = 0;
  if (size >= sizeof(unix_ms))
    std::memcpy(&unix_ms, data, sizeof(unix_ms));
  std::string_view input{reinterpret_cast<const char*>(data), size};
  std::vector<std::string> fields;
  size_t pos = 0;
  while (fields.size() < 7) {
    auto end = input.find('\0', pos);
    if (end == std::string_view::npos) {
      fields.emplace_back(input.substr(std::min(pos, input.size())));
      pos = input.size();
    } else {
      fields.emplace_back(input.substr(pos, end - pos));
      pos = end + 1;
    }
  }
  net::smtp_config cfg;
  cfg.host = "mx.example.com";
  net::email mail;
  mail.to = fields[0];
  mail.subject = fields[1];
  mail.text = fields[2];
  mail.html = fields[3];
  mail.message_id = fields[4];
  cfg.from = fields[5];
  cfg.from_name = fields[6];
  auto msg = net::compose_email(cfg, mail, unix_ms);
  check_message(msg);
  // Valid input appears as it is.
  if (net::validate_email(cfg, mail).empty()
      && msg.find("\r\nTo: " + mail.to + "\r\n") == std::string::npos)
    __builtin_trap();
  // The same mail without HTML is a single part, just as clean.
  mail.html.clear();
  check_message(net::compose_email(cfg, mail, unix_ms));
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz_replies(data, size);
  fuzz_compose(data, size);
  return 0;
}
