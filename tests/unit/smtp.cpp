#define CAF_SUITE smtp

#include <caf/test/dsl.hpp>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "net/smtp_client.hpp"
#include "tests/unit/fake_http_server.hpp"

using namespace switchyard;
using net::compose_email;
using net::smtp_config;
using net::smtp_reply;
using net::smtp_reply_reader;
using net::smtp_result;
using namespace std::chrono_literals;
using server = test::fake_http_server;
using tcp = boost::asio::ip::tcp;

namespace {

using strings = std::vector<std::string>;

// -- the reply reader ---------------------------------------------------------

/// What a reader made of some input: its replies, then its error.
struct parsed {
  std::vector<smtp_reply> replies;
  std::string error;
};

parsed parse_chunks(const strings& chunks) {
  parsed out;
  smtp_reply_reader r;
  for (auto& chunk : chunks)
    if (!r.feed(chunk, out.replies)) {
      out.error = r.error();
      break;
    }
  return out;
}

bool same(const parsed& x, const parsed& y) {
  if (x.error != y.error || x.replies.size() != y.replies.size())
    return false;
  for (size_t i = 0; i < x.replies.size(); ++i)
    if (x.replies[i].code != y.replies[i].code
        || x.replies[i].lines != y.replies[i].lines)
      return false;
  return true;
}

/// Checks that `input` reads alike whole, byte by byte and cut in two at
/// every offset, and returns what it reads to.
parsed parse_every_way(const std::string& input) {
  auto whole = parse_chunks({input});
  strings bytes;
  for (char c : input)
    bytes.emplace_back(1, c);
  CAF_CHECK(same(whole, parse_chunks(bytes)));
  for (size_t cut = 0; cut <= input.size(); ++cut)
    if (!same(whole, parse_chunks({input.substr(0, cut), input.substr(cut)})))
      CAF_FAIL("input reads differently when cut at " << cut);
  return whole;
}

smtp_reply reply_of(const std::string& input) {
  auto out = parse_chunks({input});
  CAF_REQUIRE_EQUAL(out.error, "");
  CAF_REQUIRE_EQUAL(out.replies.size(), 1u);
  return out.replies[0];
}

// -- reading the composed message back ----------------------------------------

std::string base64_decode(const std::string& in) {
  static const std::string alphabet
    = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    if (c == '=' || c == '\r' || c == '\n')
      continue;
    auto v = alphabet.find(c);
    if (v == std::string::npos) {
      CAF_FAIL("not base64: " << c);
      return {};
    }
    acc = acc << 6 | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>(acc >> bits & 0xFF);
    }
  }
  return out;
}

strings split_lines(const std::string& s) {
  strings out;
  size_t pos = 0;
  for (;;) {
    auto end = s.find("\r\n", pos);
    if (end == std::string::npos) {
      out.push_back(s.substr(pos));
      return out;
    }
    out.push_back(s.substr(pos, end - pos));
    pos = end + 2;
  }
}

/// Decodes a header value of RFC 2047 B words (whitespace between words
/// dropped); other values as they are.
std::string decode_words(const std::string& value) {
  const std::string start = "=?UTF-8?B?";
  if (value.find(start) == std::string::npos)
    return value;
  std::string out;
  size_t pos = 0;
  for (;;) {
    auto begin = value.find(start, pos);
    if (begin == std::string::npos) {
      out += value.substr(pos);
      return out;
    }
    auto gap = value.substr(pos, begin - pos);
    if (gap.find_first_not_of(" \t") != std::string::npos)
      out += gap;
    auto end = value.find("?=", begin + start.size());
    CAF_REQUIRE(end != std::string::npos);
    auto word = value.substr(begin, end + 2 - begin);
    CAF_CHECK_LESS_OR_EQUAL(word.size(), 75u);
    out += base64_decode(
      value.substr(begin + start.size(), end - begin - start.size()));
    pos = end + 2;
  }
}

/// A header block and body, headers unfolded.
struct entity {
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;

  std::string header(const std::string& name) const {
    for (auto& [n, v] : headers)
      if (n == name)
        return v;
    return "<missing " + name + ">";
  }

  size_t count(const std::string& name) const {
    return static_cast<size_t>(
      std::count_if(headers.begin(), headers.end(), [&](auto& h) {
        return h.first == name;
      }));
  }
};

entity parse_entity(const std::string& raw) {
  entity out;
  auto split = raw.find("\r\n\r\n");
  CAF_REQUIRE(split != std::string::npos);
  for (auto& line : split_lines(raw.substr(0, split))) {
    if (!line.empty() && (line[0] == ' ' || line[0] == '\t')) {
      CAF_REQUIRE(!out.headers.empty());
      out.headers.back().second += line; // unfold: drop the CRLF only
      continue;
    }
    auto colon = line.find(':');
    CAF_REQUIRE(colon != std::string::npos);
    auto value = line.substr(colon + 1);
    if (!value.empty() && value[0] == ' ')
      value.erase(0, 1);
    out.headers.emplace_back(line.substr(0, colon), value);
  }
  out.body = raw.substr(split + 4);
  return out;
}

std::string boundary_of(const std::string& content_type) {
  auto key = std::string{"boundary=\""};
  auto pos = content_type.find(key);
  CAF_REQUIRE(pos != std::string::npos);
  auto end = content_type.find('"', pos + key.size());
  return content_type.substr(pos + key.size(), end - pos - key.size());
}

/// The parts of a multipart body, each as the text between its delimiters
/// (its own CRLF before the next delimiter removed).
strings parts_of(const std::string& body, const std::string& boundary) {
  strings out;
  auto delimiter = "--" + boundary;
  CAF_REQUIRE_EQUAL(body.substr(0, delimiter.size() + 2), delimiter + "\r\n");
  size_t pos = delimiter.size() + 2;
  for (;;) {
    auto next = body.find("\r\n" + delimiter, pos);
    CAF_REQUIRE(next != std::string::npos);
    out.push_back(body.substr(pos, next - pos));
    pos = next + 2 + delimiter.size();
    if (body.substr(pos, 2) == "--") {
      CAF_CHECK_EQUAL(body.substr(pos), "--\r\n");
      return out;
    }
    CAF_REQUIRE_EQUAL(body.substr(pos, 2), "\r\n");
    pos += 2;
  }
}

/// Checks the rules every composed message keeps: CRLF line ends only, no
/// line over 998 bytes (78 for headers we fold), 7-bit, the end a CRLF.
void check_lines(const std::string& msg) {
  for (size_t i = 0; i < msg.size(); ++i) {
    auto c = static_cast<unsigned char>(msg[i]);
    if (c == '\n' && (i == 0 || msg[i - 1] != '\r'))
      CAF_FAIL("bare LF at " << i);
    if (c == '\r' && (i + 1 == msg.size() || msg[i + 1] != '\n'))
      CAF_FAIL("bare CR at " << i);
    if (c >= 0x80 || c == 0)
      CAF_FAIL("8-bit or NUL byte at " << i);
  }
  CAF_CHECK_EQUAL(msg.substr(msg.size() - 2), "\r\n");
  for (auto& line : split_lines(msg))
    CAF_CHECK_LESS_OR_EQUAL(line.size(), 998u);
}

smtp_config config() {
  smtp_config cfg;
  cfg.host = "smtp.example.com";
  cfg.from = "noreply@example.com";
  cfg.from_name = "Switchyard";
  return cfg;
}

net::email mail() {
  net::email m;
  m.to = "alice@example.org";
  m.subject = "New message in demo";
  m.text = "Hello Alice,\nBob wrote: hi.\n";
  m.html = "<p>Hello Alice,</p>\n<p>Bob wrote: hi.</p>\n";
  m.message_id = "n_42.1@switchyard";
  return m;
}

std::string crlf(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '\n')
      out += '\r';
    out += c;
  }
  return out;
}

// -- scripted dialogues -------------------------------------------------------

/// One line from the client, CRLF stripped; "<closed>" at EOF.
std::string read_line(tcp::socket& sock) {
  std::string line;
  char c;
  for (;;) {
    auto n = ::recv(sock.native_handle(), &c, 1, 0);
    if (n <= 0)
      return line.empty() ? "<closed>" : line;
    if (c == '\n')
      break;
    line += c;
  }
  if (!line.empty() && line.back() == '\r')
    line.pop_back();
  return line;
}

/// The DATA bytes up to and with the terminating ".\r\n".
std::string read_data(tcp::socket& sock) {
  std::string data;
  char buf[4096];
  while (data.size() < 5
         || data.compare(data.size() - 5, 5, "\r\n.\r\n") != 0) {
    auto n = ::recv(sock.native_handle(), buf, sizeof(buf), 0);
    if (n <= 0)
      break;
    data.append(buf, static_cast<size_t>(n));
  }
  return data;
}

/// The lines a script saw, for the test to check after the result.
struct transcript {
  std::mutex mtx;
  strings lines;
  std::string data;

  void add(const std::string& line) {
    std::lock_guard<std::mutex> guard{mtx};
    lines.push_back(line);
  }

  strings got() {
    std::lock_guard<std::mutex> guard{mtx};
    return lines;
  }
};

/// The rest of a plain dialogue after the greeting and EHLO: MAIL, RCPT,
/// DATA and QUIT, each answered with success.
void accept_mail(tcp::socket& sock, transcript& t) {
  t.add(read_line(sock));
  server::write(sock, "250 2.1.0 Ok\r\n");
  t.add(read_line(sock));
  server::write(sock, "250 2.1.5 Ok\r\n");
  t.add(read_line(sock));
  server::write(sock, "354 End data with <CR><LF>.<CR><LF>\r\n");
  auto data = read_data(sock);
  {
    std::lock_guard<std::mutex> guard{t.mtx};
    t.data = data;
  }
  server::write(sock, "250 2.0.0 Ok: queued as 1\r\n");
  t.add(read_line(sock));
  server::write(sock, "221 2.0.0 Bye\r\n");
}

smtp_result send_and_wait(const smtp_config& cfg,
                          const net::email& m = mail()) {
  struct state {
    std::mutex mtx;
    std::condition_variable cv;
    std::vector<smtp_result> results;
  };
  auto st = std::make_shared<state>();
  net::send_email(cfg, m, [st](smtp_result res) {
    std::lock_guard<std::mutex> guard{st->mtx};
    st->results.push_back(std::move(res));
    st->cv.notify_all();
  });
  std::unique_lock<std::mutex> guard{st->mtx};
  if (!st->cv.wait_for(guard, 10s, [&] {
        return !st->results.empty();
      }))
    return {"<no result>", false};
  st->cv.wait_for(guard, 50ms, [&] {
    return st->results.size() > 1;
  });
  CAF_CHECK_EQUAL(st->results.size(), 1u);
  return st->results.front();
}

smtp_config local(const server& srv) {
  auto cfg = config();
  cfg.host = "127.0.0.1";
  cfg.port = std::to_string(srv.port());
  cfg.tls = smtp_config::tls_mode::off;
  cfg.timeout = 2s;
  return cfg;
}

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}
} // namespace

// -- replies ------------------------------------------------------------------

CAF_TEST(a one line reply has its code and text) {
  auto out = parse_every_way("220 mail.example.com ESMTP Postfix\r\n");
  CAF_CHECK_EQUAL(out.error, "");
  CAF_REQUIRE_EQUAL(out.replies.size(), 1u);
  CAF_CHECK_EQUAL(out.replies[0].code, 220);
  CAF_CHECK_EQUAL(out.replies[0].lines,
                  strings{"mail.example.com ESMTP Postfix"});
  CAF_CHECK_EQUAL(out.replies[0].text(), "mail.example.com ESMTP Postfix");
}

CAF_TEST(a multi line reply ends with its line without a dash) {
  auto out = parse_every_way("250-mail.example.com\r\n250-PIPELINING\r\n"
                             "250-SIZE 10240000\r\n250 8BITMIME\r\n"
                             "354 End data with <CR><LF>.<CR><LF>\r\n");
  CAF_CHECK_EQUAL(out.error, "");
  CAF_REQUIRE_EQUAL(out.replies.size(), 2u);
  CAF_CHECK_EQUAL(out.replies[0].code, 250);
  CAF_CHECK_EQUAL(
    out.replies[0].lines,
    (strings{"mail.example.com", "PIPELINING", "SIZE 10240000", "8BITMIME"}));
  CAF_CHECK_EQUAL(out.replies[1].code, 354);
}

CAF_TEST(a reply line may have no text and a bare LF ends a line) {
  auto out = parse_every_way("250\r\n221\n250-\n250 ok\n");
  CAF_CHECK_EQUAL(out.error, "");
  CAF_REQUIRE_EQUAL(out.replies.size(), 3u);
  CAF_CHECK_EQUAL(out.replies[0].lines, strings{""});
  CAF_CHECK_EQUAL(out.replies[1].code, 221);
  CAF_CHECK_EQUAL(out.replies[2].lines, (strings{"", "ok"}));
}

CAF_TEST(the reader reports a reply in progress as pending) {
  smtp_reply_reader r;
  std::vector<smtp_reply> out;
  CAF_CHECK(!r.pending());
  CAF_CHECK(r.feed("250-a\r\n", out));
  CAF_CHECK(r.pending());
  CAF_CHECK(r.feed("250 b\r", out));
  CAF_CHECK(r.pending());
  CAF_CHECK(out.empty());
  CAF_CHECK(r.feed("\n", out));
  CAF_CHECK(!r.pending());
  CAF_CHECK_EQUAL(out.size(), 1u);
}

CAF_TEST(a reply line of 1000 bytes is fine and one more byte is an error) {
  auto line = [](size_t total) {
    return "250 " + std::string(total - 6, 'x') + "\r\n";
  };
  CAF_CHECK_EQUAL(line(1000).size(), 1000u);
  auto ok = parse_chunks({line(1000)});
  CAF_CHECK_EQUAL(ok.error, "");
  CAF_CHECK_EQUAL(ok.replies.size(), 1u);
  CAF_CHECK_EQUAL(parse_chunks({line(1001)}).error,
                  "reply line over 1000 bytes");
  // The error comes as soon as the line is too long, before its end.
  smtp_reply_reader r;
  std::vector<smtp_reply> out;
  CAF_CHECK(r.feed(std::string(999, '2'), out));
  CAF_CHECK(!r.feed("2", out));
  CAF_CHECK_EQUAL(r.error(), "reply line over 1000 bytes");
}

CAF_TEST(a reply of 100 lines is fine and of 101 an error) {
  auto reply = [](size_t lines) {
    std::string out;
    for (size_t i = 1; i < lines; ++i)
      out += "250-line\r\n";
    return out + "250 last\r\n";
  };
  auto ok = parse_chunks({reply(100)});
  CAF_CHECK_EQUAL(ok.error, "");
  CAF_REQUIRE_EQUAL(ok.replies.size(), 1u);
  CAF_CHECK_EQUAL(ok.replies[0].lines.size(), 100u);
  CAF_CHECK_EQUAL(parse_chunks({reply(101)}).error,
                  "reply of more than 100 lines");
  // Without its last line too: the limit holds while the reply is open.
  std::string open;
  for (int i = 0; i < 101; ++i)
    open += "250-line\r\n";
  CAF_CHECK_EQUAL(parse_chunks({open}).error, "reply of more than 100 lines");
}

CAF_TEST(garbage is an error and the reader stays spent) {
  for (auto input :
       {"hello\r\n", "25 ok\r\n", "2500 ok\r\n", "250x ok\r\n", "099 ok\r\n",
        "150 ok\r\n", "600 ok\r\n", "260 ok\r\n", "25a ok\r\n", "\r\n",
        "250-a\r\n251 b\r\n", "250 a\rb\r\n", "HTTP/1.1 400 Bad Request\r\n"}) {
    auto out = parse_chunks({input});
    CAF_CHECK_NOT_EQUAL(out.error, "");
    CAF_CHECK(out.replies.empty());
  }
  std::string nul = "250 a";
  nul += '\0';
  nul += "b\r\n";
  CAF_CHECK_NOT_EQUAL(parse_chunks({nul}).error, "");
  smtp_reply_reader r;
  std::vector<smtp_reply> out;
  CAF_CHECK(!r.feed("garbage\r\n", out));
  CAF_CHECK(!r.feed("250 ok\r\n", out));
  CAF_CHECK(out.empty());
  CAF_CHECK(!r.pending());
}

CAF_TEST(a quoted reply is printable ASCII and truncated) {
  smtp_reply r;
  r.code = 554;
  r.lines = {"bad \x01\x7f\xc3\xa9 thing", std::string(300, 'x')};
  auto q = r.quoted();
  CAF_CHECK_EQUAL(q.substr(0, 20), "554 bad ???? thing x");
  CAF_CHECK_EQUAL(q.size(), 4u + net::smtp_max_quoted_reply + 3u);
  CAF_CHECK_EQUAL(q.substr(q.size() - 3), "...");
  for (char c : q)
    CAF_CHECK(c >= 0x20 && c <= 0x7E);
}

// -- EHLO capabilities --------------------------------------------------------

CAF_TEST(EHLO capabilities name STARTTLS AUTH SIZE and 8BITMIME) {
  auto caps = net::parse_ehlo(
    reply_of("250-mail.example.com Hello\r\n250-PIPELINING\r\n"
             "250-SIZE 10240000\r\n250-STARTTLS\r\n250-AUTH PLAIN LOGIN\r\n"
             "250-AUTH=PLAIN LOGIN XOAUTH2\r\n250-ENHANCEDSTATUSCODES\r\n"
             "250-8BITMIME\r\n250 DSN\r\n"));
  CAF_CHECK(caps.starttls);
  CAF_CHECK(caps.eight_bit_mime);
  CAF_CHECK(caps.size);
  CAF_CHECK_EQUAL(caps.max_size, 10240000u);
  CAF_CHECK_EQUAL(caps.auth, (strings{"PLAIN", "LOGIN", "XOAUTH2"}));
  CAF_CHECK(caps.has_auth("LOGIN"));
  CAF_CHECK(!caps.has_auth("CRAM-MD5"));
}

CAF_TEST(EHLO keywords are read in any case) {
  auto caps = net::parse_ehlo(
    reply_of("250-example\r\n250-starttls\r\n250-Auth login\tcram-md5\r\n"
             "250 size\r\n"));
  CAF_CHECK(caps.starttls);
  CAF_CHECK_EQUAL(caps.auth, (strings{"LOGIN", "CRAM-MD5"}));
  CAF_CHECK(caps.size);
  CAF_CHECK_EQUAL(caps.max_size, 0u);
  CAF_CHECK(!caps.eight_bit_mime);
}

CAF_TEST(the first EHLO line and malformed extensions are no capabilities) {
  auto caps = net::parse_ehlo(reply_of("250 STARTTLS\r\n"));
  CAF_CHECK(!caps.starttls);
  caps = net::parse_ehlo(
    reply_of("250-x\r\n250-SIZE 99999999999999999999999\r\n250-STARTTLSX\r\n"
             "250-SIZE12\r\n250-\r\n250 AUTH\r\n"));
  CAF_CHECK(caps.size);
  CAF_CHECK_EQUAL(caps.max_size, 0u);
  CAF_CHECK(!caps.starttls);
  CAF_CHECK(caps.auth.empty());
}

// -- the message --------------------------------------------------------------

CAF_TEST(a composed message has every header once) {
  auto msg = compose_email(config(), mail(), 1700000000000);
  check_lines(msg);
  auto m = parse_entity(msg);
  for (auto name : {"Date", "From", "To", "Subject", "Message-ID",
                    "MIME-Version", "Content-Type"})
    CAF_CHECK_EQUAL(m.count(name), 1u);
  CAF_CHECK_EQUAL(m.header("Date"), "Tue, 14 Nov 2023 22:13:20 +0000");
  CAF_CHECK_EQUAL(m.header("From"), "\"Switchyard\" <noreply@example.com>");
  CAF_CHECK_EQUAL(m.header("To"), "alice@example.org");
  CAF_CHECK_EQUAL(m.header("Subject"), "New message in demo");
  CAF_CHECK_EQUAL(m.header("Message-ID"), "<n_42.1@switchyard>");
  CAF_CHECK_EQUAL(m.header("MIME-Version"), "1.0");
  CAF_CHECK_EQUAL(m.header("Content-Type").substr(0, 32),
                  "multipart/alternative; boundary=");
  // Pure: the same input composes the same message.
  CAF_CHECK_EQUAL(msg, compose_email(config(), mail(), 1700000000000));
}

CAF_TEST(the Date header is RFC 5322 in UTC) {
  auto date = [](int64_t ms) {
    return parse_entity(compose_email(config(), mail(), ms)).header("Date");
  };
  CAF_CHECK_EQUAL(date(0), "Thu, 01 Jan 1970 00:00:00 +0000");
  CAF_CHECK_EQUAL(date(951782400999), "Tue, 29 Feb 2000 00:00:00 +0000");
  CAF_CHECK_EQUAL(date(-5), "Thu, 01 Jan 1970 00:00:00 +0000");
  CAF_CHECK_EQUAL(date(INT64_MAX), "Fri, 31 Dec 9999 23:59:59 +0000");
}

CAF_TEST(the parts decode to the text and the HTML with CRLF line ends) {
  auto msg = compose_email(config(), mail(), 1700000000000);
  auto m = parse_entity(msg);
  auto boundary = boundary_of(m.header("Content-Type"));
  auto parts = parts_of(m.body, boundary);
  CAF_REQUIRE_EQUAL(parts.size(), 2u);
  std::map<std::string, std::string> bodies;
  for (auto& raw : parts) {
    auto part = parse_entity(raw);
    CAF_CHECK_EQUAL(part.header("Content-Transfer-Encoding"), "base64");
    bodies[part.header("Content-Type")] = base64_decode(part.body);
  }
  CAF_CHECK_EQUAL(bodies["text/plain; charset=utf-8"], crlf(mail().text));
  CAF_CHECK_EQUAL(bodies["text/html; charset=utf-8"], crlf(mail().html));
}

CAF_TEST(base64 lines are 76 characters and the boundary is in no part) {
  auto m = mail();
  for (int i = 0; i < 300; ++i)
    m.text += "Zeile " + std::to_string(i) + " mit Umlauten: äöü ß €.\n";
  m.html = "<div>" + m.text + "</div>";
  auto msg = compose_email(config(), m, 1700000000000);
  check_lines(msg);
  auto top = parse_entity(msg);
  auto boundary = boundary_of(top.header("Content-Type"));
  CAF_CHECK(boundary.find('_') != std::string::npos);
  for (auto& raw : parts_of(top.body, boundary)) {
    CAF_CHECK_EQUAL(raw.find(boundary), std::string::npos);
    auto part = parse_entity(raw);
    auto lines = split_lines(part.body);
    CAF_REQUIRE_GREATER(lines.size(), 2u);
    for (size_t i = 0; i + 1 < lines.size(); ++i)
      CAF_CHECK_EQUAL(lines[i].size(), 76u);
    CAF_CHECK_LESS_OR_EQUAL(lines.back().size(), 76u);
  }
  // Delimiter lines only: "--boundary" twice, "--boundary--" once.
  size_t seen = 0;
  for (size_t pos = msg.find(boundary); pos != std::string::npos;
       pos = msg.find(boundary, pos + 1))
    ++seen;
  CAF_CHECK_EQUAL(seen, 4u); // Content-Type, 2 delimiters, the close
}

CAF_TEST(
  a subject that is not ASCII is RFC 2047 encoded without split characters) {
  auto m = mail();
  m.subject = "Grüße aus Köln — 🎉";
  auto msg = compose_email(config(), m, 0);
  check_lines(msg);
  auto subject = parse_entity(msg).header("Subject");
  CAF_CHECK_EQUAL(subject.substr(0, 10), "=?UTF-8?B?");
  CAF_CHECK_EQUAL(decode_words(subject), m.subject);
  // A long one: many words, folded, each a whole number of characters.
  m.subject.clear();
  for (int i = 0; i < 60; ++i)
    m.subject += "ü🎉";
  msg = compose_email(config(), m, 0);
  check_lines(msg);
  auto header_end = msg.find("\r\n\r\n");
  for (auto& line : split_lines(msg.substr(0, header_end)))
    CAF_CHECK_LESS_OR_EQUAL(line.size(), 78u);
  subject = parse_entity(msg).header("Subject");
  CAF_CHECK_EQUAL(decode_words(subject), m.subject);
  size_t pos = 0;
  while ((pos = subject.find("=?UTF-8?B?", pos)) != std::string::npos) {
    auto end = subject.find("?=", pos + 10);
    auto word = base64_decode(subject.substr(pos + 10, end - pos - 10));
    // Neither the first nor the byte after the last is a continuation byte.
    CAF_CHECK_NOT_EQUAL(static_cast<unsigned char>(word.front()) & 0xC0, 0x80);
    pos = end;
  }
}

CAF_TEST(a long ASCII subject is folded at spaces) {
  auto m = mail();
  m.subject.clear();
  for (int i = 0; i < 40; ++i)
    m.subject += "word" + std::to_string(i) + " ";
  m.subject += "end";
  auto msg = compose_email(config(), m, 0);
  check_lines(msg);
  auto header_end = msg.find("\r\n\r\n");
  auto lines = split_lines(msg.substr(0, header_end));
  for (auto& line : lines)
    CAF_CHECK_LESS_OR_EQUAL(line.size(), 78u);
  CAF_CHECK_EQUAL(parse_entity(msg).header("Subject"), m.subject);
  // A word too long to fold is encoded instead.
  m.subject = "see " + std::string(120, 'x');
  msg = compose_email(config(), m, 0);
  check_lines(msg);
  CAF_CHECK_EQUAL(decode_words(parse_entity(msg).header("Subject")), m.subject);
  // So is ASCII that looks like an encoded word.
  m.subject = "=?UTF-8?B?aGk=?=";
  auto subject = parse_entity(compose_email(config(), m, 0)).header("Subject");
  CAF_CHECK_NOT_EQUAL(subject, m.subject);
  CAF_CHECK_EQUAL(decode_words(subject), m.subject);
}

CAF_TEST(CR and LF in the subject and the sender name inject no header) {
  auto cfg = config();
  cfg.from_name = "Eve\r\nBcc: victim@example.net";
  auto m = mail();
  m.subject = "Hi\r\nBcc: victim@example.net\nX-Evil: 1";
  auto msg = compose_email(cfg, m, 0);
  check_lines(msg);
  auto e = parse_entity(msg);
  CAF_CHECK_EQUAL(e.count("Bcc"), 0u);
  CAF_CHECK_EQUAL(e.count("X-Evil"), 0u);
  CAF_CHECK_EQUAL(e.header("Subject"), "Hi Bcc: victim@example.net X-Evil: 1");
  CAF_CHECK_EQUAL(e.header("From"),
                  "\"Eve Bcc: victim@example.net\" <noreply@example.com>");
}

CAF_TEST(the sender name is quoted or encoded and may be absent) {
  auto cfg = config();
  cfg.from_name = "The \"Yard\" \\ Team";
  CAF_CHECK_EQUAL(parse_entity(compose_email(cfg, mail(), 0)).header("From"),
                  "\"The \\\"Yard\\\" \\\\ Team\" <noreply@example.com>");
  cfg.from_name = "Schaltwerk Zürich";
  auto from = parse_entity(compose_email(cfg, mail(), 0)).header("From");
  CAF_CHECK_EQUAL(from.substr(0, 10), "=?UTF-8?B?");
  CAF_CHECK_EQUAL(from.substr(from.size() - 22), " <noreply@example.com>");
  CAF_CHECK_EQUAL(decode_words(from.substr(0, from.size() - 22)),
                  cfg.from_name);
  cfg.from_name.clear();
  CAF_CHECK_EQUAL(parse_entity(compose_email(cfg, mail(), 0)).header("From"),
                  "noreply@example.com");
}

CAF_TEST(a message without HTML has a text part only) {
  auto m = mail();
  m.html.clear();
  auto msg = compose_email(config(), m, 0);
  check_lines(msg);
  auto e = parse_entity(msg);
  CAF_CHECK_EQUAL(e.header("Content-Type"), "text/plain; charset=utf-8");
  CAF_CHECK_EQUAL(e.header("Content-Transfer-Encoding"), "base64");
  CAF_CHECK_EQUAL(base64_decode(e.body), crlf(m.text));
}

CAF_TEST(empty parts still make a well formed message) {
  auto m = mail();
  m.text.clear();
  m.subject.clear();
  auto msg = compose_email(config(), m, 0);
  check_lines(msg);
  auto e = parse_entity(msg);
  auto parts = parts_of(e.body, boundary_of(e.header("Content-Type")));
  CAF_REQUIRE_EQUAL(parts.size(), 2u);
  CAF_CHECK_EQUAL(base64_decode(parse_entity(parts[0]).body), "");
  CAF_CHECK_EQUAL(base64_decode(parse_entity(parts[1]).body), crlf(m.html));
}

CAF_TEST(a message without Message - ID gets one in the sender domain) {
  auto m = mail();
  m.message_id.clear();
  auto id = parse_entity(compose_email(config(), m, 1700000000000))
              .header("Message-ID");
  CAF_CHECK_EQUAL(id.substr(0, 15), "<1700000000000.");
  CAF_CHECK_EQUAL(id.substr(id.size() - 13), "@example.com>");
}

CAF_TEST(hostile fields still compose clean lines) {
  auto cfg = config();
  cfg.from = "a\r\nb <x@y>" + std::string(5000, 'f');
  cfg.from_name = std::string(3000, 'n') + "\xff\xfe\x80";
  auto m = mail();
  m.to = "v@x\r\nRCPT TO:<w@z>" + std::string(5000, 't');
  m.message_id = "<id>\r\n" + std::string(5000, 'i');
  m.subject = std::string(5000, '\n') + std::string(3000, 's') + "\r\r\r";
  m.text = "a\rb\n\nc\r\n\r\r" + std::string(10000, '.');
  m.html = std::string(2000, '\r');
  auto msg = compose_email(cfg, m, INT64_MIN);
  check_lines(msg);
  auto e = parse_entity(msg);
  CAF_CHECK_EQUAL(e.header("To").find_first_of(" <>\r\n"), std::string::npos);
  CAF_CHECK_LESS_OR_EQUAL(e.header("To").size(), net::smtp_max_address);
}

CAF_TEST(dot stuffing doubles a leading dot and ends with the terminator) {
  CAF_CHECK_EQUAL(net::dot_stuff("a\r\n.b\r\n..c\r\nd.\r\n"),
                  "a\r\n..b\r\n...c\r\nd.\r\n.\r\n");
  CAF_CHECK_EQUAL(net::dot_stuff(".\r\n"), "..\r\n.\r\n");
  CAF_CHECK_EQUAL(net::dot_stuff(""), ".\r\n");
  CAF_CHECK_EQUAL(net::dot_stuff("no end"), "no end\r\n.\r\n");
}

CAF_TEST(base64 encodes every tail length) {
  CAF_CHECK_EQUAL(net::base64_encode(""), "");
  CAF_CHECK_EQUAL(net::base64_encode("f"), "Zg==");
  CAF_CHECK_EQUAL(net::base64_encode("fo"), "Zm8=");
  CAF_CHECK_EQUAL(net::base64_encode("foo"), "Zm9v");
  CAF_CHECK_EQUAL(net::base64_encode(std::string{"\0u\0p", 4}), "AHUAcA==");
  CAF_CHECK_EQUAL(base64_decode(net::base64_encode("\xff\xfe\x01 any")),
                  "\xff\xfe\x01 any");
}

// -- validation ---------------------------------------------------------------

CAF_TEST(addresses with CR LF angle brackets or spaces are refused) {
  CAF_CHECK_EQUAL(net::validate_email(config(), mail()), "");
  for (auto bad :
       {"a@b\r\nRCPT TO:<c@d>", "a@b\n", "a@b>", "<a@b", "a b@c", "ab", "@b",
        "a@", "a@b@c", "", "\"a\"@b", "a,b@c", "ä@b", "a@b\t"}) {
    auto m = mail();
    m.to = bad;
    CAF_CHECK_NOT_EQUAL(net::validate_email(config(), m), "");
    auto cfg = config();
    cfg.from = bad;
    CAF_CHECK_NOT_EQUAL(net::validate_email(cfg, mail()), "");
  }
  auto m = mail();
  m.to = "first.last+tag@[192.0.2.1]";
  CAF_CHECK_EQUAL(net::validate_email(config(), m), "");
  m.to = std::string(250, 'a') + "@b.cd";
  CAF_CHECK_NOT_EQUAL(net::validate_email(config(), m), "");
}

CAF_TEST(other invalid input is refused) {
  auto cfg = config();
  cfg.host.clear();
  CAF_CHECK_EQUAL(net::validate_email(cfg, mail()),
                  "email is not configured (no SMTP host)");
  for (auto id : {"no-at", "<a@b>", "a@b c", "@b", "a@", "a@b\r\n"}) {
    auto m = mail();
    m.message_id = id;
    CAF_CHECK_NOT_EQUAL(net::validate_email(config(), m), "");
  }
  cfg = config();
  cfg.helo = "bad name";
  CAF_CHECK_NOT_EQUAL(net::validate_email(cfg, mail()), "");
  cfg = config();
  cfg.password = std::string{"a\0b", 3};
  CAF_CHECK_NOT_EQUAL(net::validate_email(cfg, mail()), "");
  auto m = mail();
  m.text = std::string(net::smtp_max_message, 'x');
  CAF_CHECK_NOT_EQUAL(net::validate_email(config(), m), "");
}

// -- dialogues with a scripted server -----------------------------------------

CAF_TEST(a server without EHLO gets HELO and the message) {
  transcript t;
  server srv{[&](tcp::socket& sock, const std::string&) {
               server::write(sock, "220 old.example.com SMTP\r\n");
               t.add(read_line(sock));
               server::write(sock,
                             "502 5.5.2 Error: command not recognized\r\n");
               t.add(read_line(sock));
               server::write(sock, "250 old.example.com\r\n");
               accept_mail(sock, t);
             },
             false};
  auto res = send_and_wait(local(srv));
  CAF_CHECK_EQUAL(res.error, "");
  CAF_CHECK_EQUAL(t.got(),
                  (strings{"EHLO switchyard", "HELO switchyard",
                           "MAIL FROM:<noreply@example.com>",
                           "RCPT TO:<alice@example.org>", "DATA", "QUIT"}));
  std::lock_guard<std::mutex> guard{t.mtx};
  CAF_CHECK_EQUAL(t.data.substr(0, 6), "Date: ");
  CAF_CHECK_EQUAL(t.data.substr(t.data.size() - 5), "\r\n.\r\n");
}

CAF_TEST(MAIL FROM names the size when the server takes SIZE) {
  transcript t;
  server srv{[&](tcp::socket& sock, const std::string&) {
               server::write(sock, "220 mx ESMTP\r\n");
               t.add(read_line(sock));
               server::write(sock,
                             "250-mx\r\n250-SIZE 1000000\r\n250 8BITMIME\r\n");
               accept_mail(sock, t);
             },
             false};
  auto res = send_and_wait(local(srv));
  CAF_CHECK_EQUAL(res.error, "");
  auto lines = t.got();
  CAF_REQUIRE_GREATER(lines.size(), 1u);
  std::lock_guard<std::mutex> guard{t.mtx};
  CAF_CHECK_EQUAL(lines[1],
                  "MAIL FROM:<noreply@example.com> SIZE="
                    + std::to_string(t.data.size() - 3));
}

CAF_TEST(a message over the server SIZE fails permanently before MAIL) {
  transcript t;
  server srv{[&](tcp::socket& sock, const std::string&) {
               server::write(sock, "220 mx ESMTP\r\n");
               t.add(read_line(sock));
               server::write(sock, "250-mx\r\n250 SIZE 100\r\n");
               t.add(read_line(sock));
             },
             false};
  auto res = send_and_wait(local(srv));
  CAF_CHECK(res.permanent);
  CAF_CHECK(contains(res.error, "over the server's SIZE limit of 100"));
  CAF_CHECK(srv.wait_served(1));
  CAF_CHECK_EQUAL(t.got(), (strings{"EHLO switchyard", "<closed>"}));
}

CAF_TEST(bytes after the STARTTLS reply are taken for an injection) {
  server srv{[&](tcp::socket& sock, const std::string&) {
               server::write(sock, "220 mx ESMTP\r\n");
               read_line(sock);
               server::write(sock, "250-mx\r\n250 STARTTLS\r\n");
               read_line(sock);
               server::write(sock,
                             "220 Go ahead\r\n250-mx\r\n250 AUTH PLAIN\r\n");
               read_line(sock);
             },
             false};
  auto cfg = local(srv);
  cfg.tls = smtp_config::tls_mode::starttls;
  auto res = send_and_wait(cfg);
  CAF_CHECK(!res.permanent);
  CAF_CHECK(
    contains(res.error, "STARTTLS: the server sent more than the reply"));
}

CAF_TEST(a 554 greeting fails permanently and a 421 one for now) {
  for (auto [greeting, permanent] :
       {std::pair{"554 5.7.1 No SMTP service here\r\n", true},
        std::pair{"421 4.3.2 Too busy\r\n", false}}) {
    server srv{[&, g = std::string{greeting}](tcp::socket& sock,
                                              const std::string&) {
                 server::write(sock, g);
                 server::wait_closed(sock);
               },
               false};
    auto res = send_and_wait(local(srv));
    CAF_CHECK_EQUAL(res.permanent, permanent);
    CAF_CHECK(contains(
      res.error, "greeting: the server answered " + std::string{greeting, 3}));
  }
}

CAF_TEST(broken replies and a closed connection fail for now) {
  for (std::string reply : {std::string{"HTTP/1.1 400 Bad Request\r\n"},
                            "220 " + std::string(2000, 'x') + "\r\n",
                            std::string{"220-a\r\n221 b\r\n"}, std::string{}}) {
    server srv{[&](tcp::socket& sock, const std::string&) {
                 server::write(sock, reply);
               },
               false};
    auto res = send_and_wait(local(srv));
    CAF_CHECK(!res.error.empty());
    CAF_CHECK(!res.permanent);
    CAF_CHECK(contains(res.error, "greeting: "));
    if (reply.empty())
      CAF_CHECK(contains(res.error, "the server closed the connection"));
    if (reply.size() > 1000)
      CAF_CHECK(contains(res.error, "reply line over 1000 bytes"));
  }
}

CAF_TEST(4xx and 5xx replies name the phase and say whether to retry) {
  for (auto [reply, permanent] : {std::pair{"451 4.3.0 Try later\r\n", false},
                                  std::pair{"554 5.6.0 Rejected\r\n", true}}) {
    server srv{[&, r = std::string{reply}](tcp::socket& sock,
                                           const std::string&) {
                 server::write(sock, "220 mx\r\n");
                 read_line(sock);
                 server::write(sock, "250 mx\r\n");
                 read_line(sock);
                 server::write(sock, "250 ok\r\n");
                 read_line(sock);
                 server::write(sock, "250 ok\r\n");
                 read_line(sock);
                 server::write(sock, "354 go\r\n");
                 read_data(sock);
                 server::write(sock, r);
                 server::wait_closed(sock);
               },
               false};
    auto res = send_and_wait(local(srv));
    CAF_CHECK_EQUAL(res.permanent, permanent);
    CAF_CHECK(contains(res.error,
                       "message: the server answered "
                         + std::string{reply}.substr(0, 3)));
  }
}

CAF_TEST(a reply sent a byte at a time counts against one timeout) {
  server srv{[&](tcp::socket& sock, const std::string&) {
               for (char c : std::string{"220 a slow greeting\r\n"}) {
                 if (!server::write(sock, std::string(1, c)))
                   return;
                 server::sleep(50);
               }
               server::wait_closed(sock);
             },
             false};
  auto cfg = local(srv);
  cfg.timeout = 300ms;
  auto start = std::chrono::steady_clock::now();
  auto res = send_and_wait(cfg);
  CAF_CHECK_LESS(std::chrono::steady_clock::now() - start, 900ms);
  CAF_CHECK(!res.permanent);
  CAF_CHECK(contains(res.error, "greeting: no greeting within 300 ms"));
}

CAF_TEST(the whole dialogue is bounded by five timeouts) {
  // Each reply comes within the timeout, but nine of them take longer than
  // five timeouts together.
  server srv{[&](tcp::socket& sock, const std::string&) {
               auto reply = [&](const std::string& r) {
                 server::sleep(280);
                 return server::write(sock, r);
               };
               if (!reply("220 mx\r\n"))
                 return;
               read_line(sock);
               reply("250-mx\r\n250 AUTH LOGIN\r\n");
               for (auto r :
                    {"334 VXNlcm5hbWU6\r\n", "334 UGFzc3dvcmQ6\r\n",
                     "235 ok\r\n", "250 ok\r\n", "250 ok\r\n", "354 go\r\n"}) {
                 if (read_line(sock) == "<closed>" || !reply(r))
                   return;
               }
               read_data(sock);
               reply("250 ok\r\n");
               server::wait_closed(sock);
             },
             false};
  auto cfg = local(srv);
  cfg.timeout = 400ms;
  cfg.username = "u";
  cfg.password = "p";
  auto start = std::chrono::steady_clock::now();
  auto res = send_and_wait(cfg);
  auto took = std::chrono::steady_clock::now() - start;
  CAF_CHECK(!res.permanent);
  CAF_CHECK(contains(res.error, "the dialogue took over 2000 ms"));
  CAF_CHECK_GREATER_OR_EQUAL(took, 2000ms);
  CAF_CHECK_LESS(took, 2600ms);
}

CAF_TEST(AUTH LOGIN sends the user name and password base64 encoded) {
  transcript t;
  server srv{[&](tcp::socket& sock, const std::string&) {
               server::write(sock, "220 mx\r\n");
               t.add(read_line(sock));
               server::write(sock, "250-mx\r\n250 AUTH CRAM-MD5 LOGIN\r\n");
               t.add(read_line(sock));
               server::write(sock, "334 VXNlcm5hbWU6\r\n");
               t.add(read_line(sock));
               server::write(sock, "334 UGFzc3dvcmQ6\r\n");
               t.add(read_line(sock));
               server::write(sock, "235 2.7.0 ok\r\n");
               accept_mail(sock, t);
             },
             false};
  auto cfg = local(srv);
  cfg.username = "user@example.com";
  cfg.password = "pa:ss word";
  auto res = send_and_wait(cfg);
  CAF_CHECK_EQUAL(res.error, "");
  auto lines = t.got();
  CAF_REQUIRE_GREATER(lines.size(), 4u);
  CAF_CHECK_EQUAL(lines[1], "AUTH LOGIN");
  CAF_CHECK_EQUAL(lines[2], net::base64_encode(cfg.username));
  CAF_CHECK_EQUAL(lines[3], net::base64_encode(cfg.password));
}

CAF_TEST(an AUTH mechanism the client lacks fails the send) {
  server srv{[&](tcp::socket& sock, const std::string&) {
               server::write(sock, "220 mx\r\n");
               read_line(sock);
               server::write(sock, "250-mx\r\n250 AUTH CRAM-MD5 XOAUTH2\r\n");
               server::wait_closed(sock);
             },
             false};
  auto cfg = local(srv);
  cfg.username = "u";
  cfg.password = "p";
  auto res = send_and_wait(cfg);
  CAF_CHECK(contains(res.error, "no AUTH mechanism supported here"));
  CAF_CHECK(contains(res.error, "CRAM-MD5 XOAUTH2"));
}
