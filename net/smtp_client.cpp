#include "net/smtp_client.hpp"

#include <algorithm>
#include <array>
#include <cstdio>
#include <memory>
#include <optional>
#include <utility>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <openssl/ssl.h>

#include "actors/log.hpp"
#include "net/io_thread.hpp"

namespace switchyard::net {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
using boost::system::error_code;
using tcp = asio::ip::tcp;

// -- text helpers -------------------------------------------------------------

namespace {

constexpr std::string_view crlf = "\r\n";

/// Longest header line we write by choice (RFC 5322 2.1.1 SHOULD); the
/// MUST of 998 is never reached.
constexpr size_t header_line_goal = 78;

/// Bytes of UTF-8 text per encoded-word: 39 bytes are 52 base64 characters,
/// a word of 64 ("=?UTF-8?B?" and "?="), so "Subject: " and a word stay
/// within 78.
constexpr size_t encoded_word_bytes = 39;

/// Base64 characters per body line (RFC 2045 6.8: at most 76).
constexpr size_t base64_line = 76;

/// Longest display name written as a quoted string; longer ones are
/// encoded, in words of their own lines.
constexpr size_t max_quoted_name = 64;

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

char to_upper(char c) {
  return c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c;
}

std::string upper(std::string_view s) {
  std::string out{s};
  for (auto& c : out)
    c = to_upper(c);
  return out;
}

/// RFC 5322 atext, the characters of a dot-atom besides '.'.
bool is_atext(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c))
    return true;
  return std::string_view{"!#$%&'*+-/=?^_`{|}~"}.find(c)
    != std::string_view::npos;
}

/// The characters an address may hold here: a dot-atom local part, '@',
/// and a domain name or an address literal ("[192.0.2.1]", "[IPv6:...]").
/// Quoted local parts and everything else are refused: no CR, LF, space,
/// <, >, comma, quote or control can reach a command or a header.
bool is_address_char(char c) {
  return is_atext(c) || c == '.' || c == '@' || c == '[' || c == ']'
    || c == ':';
}

/// Replaces each run of CR and LF with one space.
std::string one_line(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  bool in_break = false;
  for (char c : s) {
    if (c == '\r' || c == '\n') {
      if (!in_break)
        out += ' ';
      in_break = true;
      continue;
    }
    in_break = false;
    out += c;
  }
  return out;
}

/// Keeps the characters `keep` accepts, at most `max` of them.
template<class Pred>
std::string filtered(std::string_view s, Pred keep, size_t max) {
  std::string out;
  for (char c : s) {
    if (out.size() == max)
      break;
    if (keep(c))
      out += c;
  }
  return out;
}

std::string safe_address(std::string_view s) {
  return filtered(s, is_address_char, smtp_max_address);
}

/// Printable ASCII, other bytes as '?', at most `max` bytes (then "...").
std::string printable(std::string_view s, size_t max) {
  std::string out;
  for (char c : s.substr(0, max))
    out += c >= 0x20 && c <= 0x7E ? c : '?';
  if (s.size() > max)
    out += "...";
  return out;
}

/// The domain of an address, or "" when it has none.
std::string_view domain_of(std::string_view address) {
  auto at = address.rfind('@');
  return at == std::string_view::npos ? std::string_view{}
                                      : address.substr(at + 1);
}

/// 64-bit FNV-1a, for names that must differ between messages.
uint64_t fnv1a(std::string_view s, uint64_t h = 0xcbf29ce484222325ull) {
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

std::string hex64(uint64_t x) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out(16, '0');
  for (int i = 15; i >= 0; --i, x >>= 4)
    out[static_cast<size_t>(i)] = digits[x & 0xF];
  return out;
}

/// `s` with every line end (CRLF, a bare LF, a bare CR) as CRLF.
std::string to_crlf(std::string_view s) {
  std::string out;
  out.reserve(s.size() + s.size() / 32);
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '\r') {
      out += crlf;
      if (i + 1 < s.size() && s[i + 1] == '\n')
        ++i;
    } else if (c == '\n') {
      out += crlf;
    } else {
      out += c;
    }
  }
  return out;
}

/// Base64 of `bytes` in lines of 76 characters, each ending with CRLF.
void append_base64_lines(std::string& out, std::string_view bytes) {
  auto encoded = base64_encode(bytes);
  for (size_t pos = 0; pos < encoded.size(); pos += base64_line) {
    out.append(encoded, pos, base64_line);
    out += crlf;
  }
}

/// Cuts UTF-8 text into pieces of at most `max` bytes without splitting a
/// character (RFC 2047 5: each encoded-word holds whole characters). Bytes
/// that are no valid UTF-8 are cut anywhere.
std::vector<std::string_view> utf8_pieces(std::string_view s, size_t max) {
  std::vector<std::string_view> out;
  size_t pos = 0;
  while (pos < s.size()) {
    size_t end = std::min(pos + max, s.size());
    size_t cut = end;
    // Back up over at most three continuation bytes (10xxxxxx).
    while (cut < s.size() && cut > pos && end - cut < 3
           && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80)
      --cut;
    if (cut == pos
        || (cut < s.size()
            && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80))
      cut = end;
    out.push_back(s.substr(pos, cut - pos));
    pos = cut;
  }
  return out;
}

/// `value` as RFC 2047 encoded-words ("=?UTF-8?B?...?="), one per line:
/// the first follows `name` and a space, each further one is a folded line
/// of its own. Ends with CRLF.
std::string encoded_header(std::string_view name, std::string_view value,
                           std::string_view after = {}) {
  std::string out{name};
  out += ':';
  auto pieces = utf8_pieces(value, encoded_word_bytes);
  if (pieces.empty())
    out += ' ';
  for (size_t i = 0; i < pieces.size(); ++i) {
    if (i > 0)
      out += crlf;
    out += " =?UTF-8?B?";
    out += base64_encode(pieces[i]);
    out += "?=";
  }
  out += after;
  out += crlf;
  return out;
}

/// `name: value` folded at spaces into lines of at most 78 bytes when
/// `value` is printable ASCII that could not be taken for an encoded-word;
/// else nothing (the caller encodes it). Ends with CRLF.
std::optional<std::string> plain_header(std::string_view name,
                                        std::string_view value) {
  for (char c : value)
    if (c < 0x20 || c > 0x7E)
      return std::nullopt;
  if (value.find("=?") != std::string_view::npos)
    return std::nullopt;
  std::string out{name};
  out += ':';
  size_t line = out.size();
  size_t pos = 0;
  bool first = true;
  for (;;) {
    auto space = value.find(' ', pos);
    auto word = value.substr(
      pos,
      space == std::string_view::npos ? std::string_view::npos : space - pos);
    // Fold only before a word: a line of nothing but the folding space
    // would be obsolete syntax.
    if (!first && !word.empty() && line + 1 + word.size() > header_line_goal) {
      out += crlf;
      line = 0;
    }
    out += ' ';
    out += word;
    line += 1 + word.size();
    if (line > header_line_goal)
      return std::nullopt; // a word too long to fold: encoded-words split it
    first = false;
    if (space == std::string_view::npos)
      break;
    pos = space + 1;
  }
  out += crlf;
  return out;
}

/// The Subject header: plain when it can be, else encoded-words.
std::string subject_header(std::string_view subject) {
  auto value = one_line(subject);
  if (auto plain = plain_header("Subject", value))
    return *std::move(plain);
  return encoded_header("Subject", value);
}

/// The From header: `"Name" <address>`, `=?UTF-8?B?...?= <address>`, or
/// the bare address without a name.
std::string from_header(const smtp_config& cfg) {
  auto address = safe_address(cfg.from);
  auto name = one_line(cfg.from_name);
  name = name.substr(0, std::min(name.size(), smtp_max_field));
  if (name.empty())
    return "From: " + address + std::string{crlf};
  bool quotable = name.size() <= max_quoted_name
    && name.find("=?") == std::string::npos;
  for (char c : name)
    if (c < 0x20 || c > 0x7E)
      quotable = false;
  if (!quotable)
    return encoded_header("From", name, " <" + address + ">");
  std::string out = "From: \"";
  for (char c : name) {
    if (c == '"' || c == '\\')
      out += '\\';
    out += c;
  }
  out += "\" <" + address + ">";
  out += crlf;
  return out;
}

/// RFC 5322 3.3 date-time in UTC for `unix_ms`, clamped to the years 1970
/// to 9999.
std::string rfc5322_date(int64_t unix_ms) {
  constexpr int64_t max_ms = 253402300799999; // 9999-12-31T23:59:59.999Z
  unix_ms = std::clamp<int64_t>(unix_ms, 0, max_ms);
  int64_t secs = unix_ms / 1000;
  int64_t days = secs / 86400;
  int64_t rem = secs % 86400;
  // Howard Hinnant's civil_from_days.
  int64_t z = days + 719468;
  int64_t era = z / 146097;
  int64_t doe = z - era * 146097;
  int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t year = yoe + era * 400;
  int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  int64_t mp = (5 * doy + 2) / 153;
  int64_t day = doy - (153 * mp + 2) / 5 + 1;
  int64_t month = mp < 10 ? mp + 3 : mp - 9;
  if (month <= 2)
    ++year;
  static constexpr const char* weekdays[] = {"Thu", "Fri", "Sat", "Sun",
                                             "Mon", "Tue", "Wed"};
  static constexpr const char* months[] = {"Jan", "Feb", "Mar", "Apr",
                                           "May", "Jun", "Jul", "Aug",
                                           "Sep", "Oct", "Nov", "Dec"};
  char buf[64];
  snprintf(buf, sizeof(buf), "%s, %02d %s %04d %02d:%02d:%02d +0000",
           weekdays[days % 7], static_cast<int>(day), months[month - 1],
           static_cast<int>(year), static_cast<int>(rem / 3600),
           static_cast<int>(rem / 60 % 60), static_cast<int>(rem % 60));
  return buf;
}

/// A part's or the message's content headers for `type` (base64, UTF-8).
void append_content_headers(std::string& out, std::string_view type) {
  out += "Content-Type: ";
  out += type;
  out += "; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n";
}

} // namespace

std::string base64_encode(std::string_view bytes) {
  static constexpr char alphabet[]
    = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  auto at = [&](size_t k) {
    return static_cast<uint32_t>(static_cast<unsigned char>(bytes[k]));
  };
  for (; i + 2 < bytes.size(); i += 3) {
    uint32_t n = at(i) << 16 | at(i + 1) << 8 | at(i + 2);
    out += alphabet[n >> 18];
    out += alphabet[n >> 12 & 63];
    out += alphabet[n >> 6 & 63];
    out += alphabet[n & 63];
  }
  if (i + 1 == bytes.size()) {
    uint32_t n = at(i) << 16;
    out += alphabet[n >> 18];
    out += alphabet[n >> 12 & 63];
    out += "==";
  } else if (i + 2 == bytes.size()) {
    uint32_t n = at(i) << 16 | at(i + 1) << 8;
    out += alphabet[n >> 18];
    out += alphabet[n >> 12 & 63];
    out += alphabet[n >> 6 & 63];
    out += '=';
  }
  return out;
}

// -- validation and the message -----------------------------------------------

namespace {

/// Why `address` is no address we send to or from; empty when it is one.
std::string address_error(std::string_view what, std::string_view address) {
  if (address.empty())
    return std::string{what} + " address is empty";
  if (address.size() > smtp_max_address)
    return std::string{what} + " address is over "
      + std::to_string(smtp_max_address) + " bytes";
  for (char c : address)
    if (!is_address_char(c))
      return std::string{what} + " address "
        + printable(address, smtp_max_address)
        + " contains a character other than letters, digits, "
          "!#$%&'*+-/=?^_`{|}~.@[]: (CR, LF, space, < and > above all)";
  auto at = address.rfind('@');
  if (at == std::string_view::npos || at == 0 || at + 1 == address.size()
      || address.find('@') != at)
    return std::string{what} + " address " + printable(address, 64)
      + " is not local@domain";
  return {};
}

} // namespace

std::string validate_email(const smtp_config& cfg, const email& mail) {
  if (cfg.host.empty())
    return "email is not configured (no SMTP host)";
  if (auto err = address_error("sender", cfg.from); !err.empty())
    return err;
  if (auto err = address_error("recipient", mail.to); !err.empty())
    return err;
  if (cfg.helo.empty() || cfg.helo.size() > smtp_max_field)
    return "EHLO name is empty or over " + std::to_string(smtp_max_field)
      + " bytes";
  for (char c : cfg.helo)
    if (!is_address_char(c) || c == '@')
      return "EHLO name " + printable(cfg.helo, 64)
        + " is no domain name or address literal";
  if (cfg.from_name.size() > smtp_max_field)
    return "sender name is over " + std::to_string(smtp_max_field) + " bytes";
  if (mail.message_id.size() > smtp_max_field)
    return "Message-ID is over " + std::to_string(smtp_max_field) + " bytes";
  for (char c : mail.message_id)
    if (!is_atext(c) && c != '.' && c != '@')
      return "Message-ID " + printable(mail.message_id, 64)
        + " contains a character other than letters, digits, "
          "!#$%&'*+-/=?^_`{|}~.@";
  if (auto at = mail.message_id.find('@'); !mail.message_id.empty()
      && (at == std::string::npos || at == 0
          || at + 1 == mail.message_id.size()))
    return "Message-ID " + printable(mail.message_id, 64)
      + " is not left@right";
  if (cfg.username.size() > smtp_max_field
      || cfg.password.size() > smtp_max_field)
    return "SMTP user name or password is over "
      + std::to_string(smtp_max_field) + " bytes";
  if (cfg.username.find('\0') != std::string::npos
      || cfg.password.find('\0') != std::string::npos)
    return "SMTP user name or password contains NUL";
  if (mail.text.size() + mail.html.size() + mail.subject.size()
      > smtp_max_message / 2)
    return "message is over " + std::to_string(smtp_max_message / 2)
      + " bytes of text";
  if (cfg.timeout.count() <= 0)
    return "SMTP timeout must be positive";
  return {};
}

std::string compose_email(const smtp_config& cfg, const email& mail,
                          int64_t unix_ms) {
  auto to = safe_address(mail.to);
  auto message_id = filtered(
    mail.message_id,
    [](char c) {
      return is_atext(c) || c == '.' || c == '@';
    },
    smtp_max_field);
  auto seed = fnv1a(mail.subject, fnv1a(mail.text, fnv1a(mail.html)));
  seed = fnv1a(std::to_string(unix_ms) + "\n" + to + "\n" + message_id, seed);
  if (message_id.empty()) {
    auto domain = filtered(
      domain_of(safe_address(cfg.from)),
      [](char c) {
        return is_atext(c) || c == '.';
      },
      smtp_max_field / 2);
    message_id = std::to_string(std::max<int64_t>(unix_ms, 0)) + "."
      + hex64(seed) + "@"
      + (domain.empty() ? std::string{"switchyard"} : domain);
  }
  // '_' and '=' at once: no base64 line and no header we write holds it.
  auto boundary = "=_switchyard_" + hex64(seed ^ 0x5bd1e9955bd1e995ull);

  std::string out;
  out.reserve(512 + (mail.text.size() + mail.html.size()) * 14 / 10);
  out += "Date: " + rfc5322_date(unix_ms) + std::string{crlf};
  out += from_header(cfg);
  out += "To: " + to + std::string{crlf};
  out += subject_header(mail.subject);
  out += "Message-ID: <" + message_id + ">" + std::string{crlf};
  out += "MIME-Version: 1.0\r\n";
  if (mail.html.empty()) {
    append_content_headers(out, "text/plain");
    out += crlf;
    append_base64_lines(out, to_crlf(mail.text));
    return out;
  }
  out += "Content-Type: multipart/alternative; boundary=\"" + boundary
    + "\"\r\n";
  out += crlf;
  for (auto [type, body] : {std::pair{"text/plain", &mail.text},
                            std::pair{"text/html", &mail.html}}) {
    out += "--" + boundary + std::string{crlf};
    append_content_headers(out, type);
    out += crlf;
    append_base64_lines(out, to_crlf(*body));
    // An empty body is one empty line, so that the delimiter's CRLF is not
    // the one ending the part's header.
    if (body->empty())
      out += crlf;
  }
  out += "--" + boundary + "--" + std::string{crlf};
  return out;
}

std::string dot_stuff(std::string_view message) {
  std::string out;
  out.reserve(message.size() + message.size() / 64 + 8);
  bool line_start = true;
  for (char c : message) {
    if (line_start && c == '.')
      out += '.';
    out += c;
    line_start = c == '\n';
  }
  if (!message.empty() && !line_start)
    out += crlf;
  out += ".\r\n";
  return out;
}

// -- replies ------------------------------------------------------------------

std::string smtp_reply::text() const {
  std::string out;
  for (auto& line : lines) {
    if (!out.empty())
      out += ' ';
    out += line;
  }
  return out;
}

std::string smtp_reply::quoted() const {
  auto t = text();
  if (t.empty())
    return std::to_string(code);
  return std::to_string(code) + " " + printable(t, smtp_max_quoted_reply);
}

bool smtp_reply_reader::fail(std::string reason) {
  error_ = std::move(reason);
  line_.clear();
  current_ = {};
  return false;
}

bool smtp_reply_reader::feed(std::string_view chunk,
                             std::vector<smtp_reply>& out) {
  if (!error_.empty())
    return false;
  auto too_long = [this] {
    return fail("reply line over " + std::to_string(smtp_max_reply_line)
                + " bytes");
  };
  size_t pos = 0;
  while (pos < chunk.size()) {
    auto lf = chunk.find('\n', pos);
    if (lf == std::string_view::npos) {
      // The line's LF is still to come: it may hold one more byte.
      if (line_.size() + (chunk.size() - pos) + 1 > smtp_max_reply_line)
        return too_long();
      line_.append(chunk.substr(pos));
      return true;
    }
    if (line_.size() + (lf - pos) + 1 > smtp_max_reply_line)
      return too_long();
    bool ok;
    if (line_.empty()) {
      ok = on_line(chunk.substr(pos, lf - pos), out);
    } else {
      line_.append(chunk.substr(pos, lf - pos));
      ok = on_line(line_, out);
      line_.clear();
    }
    if (!ok)
      return false;
    pos = lf + 1;
  }
  return true;
}

bool smtp_reply_reader::on_line(std::string_view line,
                                std::vector<smtp_reply>& out) {
  if (!line.empty() && line.back() == '\r')
    line.remove_suffix(1);
  auto bad = [&](std::string_view why) {
    return fail("malformed reply line (" + std::string{why}
                + "): " + printable(line, 64));
  };
  if (line.size() < 3 || line[0] < '2' || line[0] > '5' || line[1] < '0'
      || line[1] > '5' || !is_digit(line[2]))
    return bad("no reply code");
  if (line.size() > 3 && line[3] != ' ' && line[3] != '-')
    return bad("no space or '-' after the code");
  for (char c : line)
    if (c == '\0' || c == '\r')
      return bad("NUL or CR in the text");
  int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
  if (!current_.lines.empty() && code != current_.code)
    return bad("code " + std::to_string(code) + " within a reply of code "
               + std::to_string(current_.code));
  if (current_.lines.size() == smtp_max_reply_lines)
    return fail("reply of more than " + std::to_string(smtp_max_reply_lines)
                + " lines");
  current_.code = code;
  current_.lines.emplace_back(line.size() > 4 ? line.substr(4)
                                              : std::string_view{});
  if (line.size() > 3 && line[3] == '-')
    return true;
  out.push_back(std::move(current_));
  current_ = {};
  return true;
}

bool smtp_capabilities::has_auth(std::string_view mechanism) const {
  return std::find(auth.begin(), auth.end(), mechanism) != auth.end();
}

smtp_capabilities parse_ehlo(const smtp_reply& reply) {
  smtp_capabilities caps;
  auto words = [](std::string_view s) {
    std::vector<std::string_view> out;
    size_t pos = 0;
    while (pos < s.size()) {
      auto end = s.find_first_of(" \t", pos);
      if (end == std::string_view::npos)
        end = s.size();
      if (end > pos)
        out.push_back(s.substr(pos, end - pos));
      pos = end + 1;
    }
    return out;
  };
  auto add_auth = [&caps](std::string_view mechanism) {
    auto m = upper(mechanism);
    if (!m.empty() && !caps.has_auth(m))
      caps.auth.push_back(std::move(m));
  };
  for (size_t i = 1; i < reply.lines.size(); ++i) {
    auto w = words(reply.lines[i]);
    if (w.empty())
      continue;
    auto keyword = upper(w[0]);
    if (keyword == "STARTTLS") {
      caps.starttls = true;
    } else if (keyword == "8BITMIME") {
      caps.eight_bit_mime = true;
    } else if (keyword == "SIZE") {
      caps.size = true;
      caps.max_size = 0;
      if (w.size() > 1 && w[1].size() <= 19
          && std::all_of(w[1].begin(), w[1].end(), is_digit)) {
        uint64_t n = 0;
        for (char c : w[1])
          n = n * 10 + static_cast<uint64_t>(c - '0');
        caps.max_size = n;
      }
    } else if (keyword == "AUTH") {
      for (size_t k = 1; k < w.size(); ++k)
        add_auth(w[k]);
    } else if (keyword.rfind("AUTH=", 0) == 0) {
      add_auth(w[0].substr(5));
      for (size_t k = 1; k < w.size(); ++k)
        add_auth(w[k]);
    }
  }
  return caps;
}

// -- the client ---------------------------------------------------------------

namespace {

std::string ms(std::chrono::milliseconds d) {
  return std::to_string(d.count()) + " ms";
}

/// The TLS context of sends that verify against the system's trust store,
/// made once (loading the store takes tens of milliseconds). Called on the
/// caller's thread only: each send holds a reference, so the context
/// outlives the sends still pending at exit.
std::shared_ptr<ssl::context> system_store_context() {
  static auto instance = [] {
    auto tls = std::make_shared<ssl::context>(ssl::context::tls_client);
    error_code ec;
    tls->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2
                       | ssl::context::no_sslv3 | ssl::context::no_tlsv1
                       | ssl::context::no_tlsv1_1,
                     ec);
    tls->set_verify_mode(ssl::verify_peer, ec);
    tls->set_default_verify_paths(ec);
    if (ec)
      logger("smtp")->error("cannot load the system's trust store: {}; "
                            "SMTP over TLS will fail verification",
                            ec.message());
    return tls;
  }();
  return instance;
}

/// The TLS context of `cfg`; sets `error` when its CA file cannot be read.
std::shared_ptr<ssl::context> tls_context(const smtp_config& cfg,
                                          std::string& error) {
  if (cfg.verify_peer && cfg.ca_file.empty())
    return system_store_context();
  auto tls = std::make_shared<ssl::context>(ssl::context::tls_client);
  error_code ec;
  tls->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2
                     | ssl::context::no_sslv3 | ssl::context::no_tlsv1
                     | ssl::context::no_tlsv1_1,
                   ec);
  if (!cfg.verify_peer) {
    tls->set_verify_mode(ssl::verify_none, ec);
    return tls;
  }
  tls->set_verify_mode(ssl::verify_peer, ec);
  tls->load_verify_file(cfg.ca_file, ec);
  if (ec)
    error = "cannot load the SMTP CA file " + cfg.ca_file + ": " + ec.message();
  return tls;
}

using done_handler = std::function<void(smtp_result)>;

/// One message's dialogue with the server, on the I/O thread.
class smtp_session : public std::enable_shared_from_this<smtp_session> {
public:
  smtp_session(asio::io_context& io, const smtp_config& cfg, std::string to,
               std::string message_id, std::string message,
               std::shared_ptr<ssl::context> tls, done_handler done)
    : cfg_(cfg),
      to_(std::move(to)),
      message_id_(std::move(message_id)),
      message_(std::move(message)),
      done_(std::move(done)),
      tls_context_(std::move(tls)),
      resolver_(io),
      socket_(io),
      step_timer_(io),
      deadline_(io) {
    // nop
  }

  /// Starts the dialogue.
  void start() {
    auto whole = cfg_.timeout * smtp_dialogue_timeouts;
    deadline_.expires_after(whole);
    deadline_.async_wait([self = shared_from_this(), whole](error_code ec) {
      if (ec)
        return;
      self->time_out("the dialogue took over " + ms(whole));
    });
    phase_ = "connect";
    arm("no connection within " + ms(cfg_.timeout));
    resolver_.async_resolve(
      cfg_.host, cfg_.port,
      [self = shared_from_this()](error_code ec,
                                  tcp::resolver::results_type hosts) {
        if (ec)
          return self->fail_io(ec, "cannot resolve " + self->cfg_.host);
        self->connect(hosts);
      });
  }

  /// Fails before anything was sent: the input is invalid.
  void refuse(std::string error) {
    log()->warn("{}: not sent: {}", message_id_, error);
    report({std::move(error), true});
    closed_ = true;
    step_timer_.cancel();
    deadline_.cancel();
  }

private:
  using reply_handler = void (smtp_session::*)(const smtp_reply&);

  // -- steps ------------------------------------------------------------------

  // Each step begins by checking closed_: the handler of an operation that
  // completed just before a timeout still runs, and must not start the
  // next one.

  void connect(const tcp::resolver::results_type& hosts) {
    if (closed_)
      return;
    asio::async_connect(
      socket_, hosts,
      [self = shared_from_this()](error_code ec, const tcp::endpoint&) {
        if (ec)
          return self->fail_io(ec, "cannot connect");
        if (self->cfg_.tls == smtp_config::tls_mode::implicit)
          return self->handshake(&smtp_session::await_greeting);
        self->await_greeting();
      });
  }

  void await_greeting() {
    if (closed_)
      return;
    phase_ = "greeting";
    arm("no greeting within " + ms(cfg_.timeout));
    read_reply(&smtp_session::on_greeting);
  }

  void on_greeting(const smtp_reply& r) {
    if (r.code != 220)
      return fail_reply(r);
    send_ehlo();
  }

  void send_ehlo() {
    command("EHLO", "EHLO " + cfg_.helo, &smtp_session::on_ehlo);
  }

  void on_ehlo(const smtp_reply& r) {
    if (r.code == 250) {
      caps_ = parse_ehlo(r);
      return after_hello();
    }
    // HELO only for a server without ESMTP; after STARTTLS it had EHLO.
    if ((r.code == 500 || r.code == 502) && !tls_)
      return command("HELO", "HELO " + cfg_.helo, &smtp_session::on_helo);
    fail_reply(r);
  }

  void on_helo(const smtp_reply& r) {
    if (r.code != 250)
      return fail_reply(r);
    caps_ = {};
    after_hello();
  }

  void after_hello() {
    using mode = smtp_config::tls_mode;
    bool wants_tls = cfg_.tls == mode::starttls || cfg_.tls == mode::required;
    if (!tls_ && wants_tls && !starttls_refused_) {
      if (caps_.starttls)
        return command("STARTTLS", "STARTTLS", &smtp_session::on_starttls);
      if (cfg_.tls == mode::required)
        return fail("STARTTLS",
                    "the server does not offer STARTTLS, which "
                    "the configuration requires",
                    false);
      log()->debug("{}: {}:{} offers no STARTTLS; sending in plain text",
                   message_id_, cfg_.host, cfg_.port);
    }
    authenticate();
  }

  void on_starttls(const smtp_reply& r) {
    if (r.code == 220)
      return handshake(&smtp_session::send_ehlo);
    if (cfg_.tls == smtp_config::tls_mode::required)
      return fail_reply(r);
    log()->warn("{}: {}:{} refused STARTTLS ({}); sending in plain text",
                message_id_, cfg_.host, cfg_.port, r.quoted());
    starttls_refused_ = true;
    authenticate();
  }

  void handshake(void (smtp_session::*next)()) {
    if (closed_)
      return;
    phase_ = "TLS handshake";
    arm("no TLS handshake within " + ms(cfg_.timeout));
    tls_.emplace(socket_, *tls_context_);
    auto* ssl = tls_->native_handle();
    error_code ec;
    asio::ip::make_address(cfg_.host, ec);
    // SNI names hosts only; an IP address is verified as such.
    if (ec && SSL_set_tlsext_host_name(ssl, cfg_.host.c_str()) != 1)
      return fail(phase_, "cannot set the server name", false);
    if (cfg_.verify_peer) {
      tls_->set_verify_callback(ssl::host_name_verification(cfg_.host), ec);
      if (ec)
        return fail_io(ec, "");
    }
    tls_->async_handshake(ssl::stream_base::client,
                          [self = shared_from_this(), next](error_code ec) {
                            if (ec)
                              return self->fail_io(ec, "");
                            (self.get()->*next)();
                          });
  }

  void authenticate() {
    if (cfg_.username.empty() || cfg_.password.empty() || caps_.auth.empty())
      return mail_from();
    if (!tls_ && cfg_.tls != smtp_config::tls_mode::off)
      return fail("AUTH",
                  "not sending credentials over a connection "
                  "without TLS (the server offers no STARTTLS)",
                  false);
    if (caps_.has_auth("PLAIN")) {
      std::string creds;
      creds += '\0';
      creds += cfg_.username;
      creds += '\0';
      creds += cfg_.password;
      return command("AUTH", "AUTH PLAIN " + base64_encode(creds),
                     &smtp_session::on_auth, "AUTH PLAIN <credentials>");
    }
    if (caps_.has_auth("LOGIN"))
      return command("AUTH", "AUTH LOGIN", &smtp_session::on_login_user);
    std::string offered;
    for (auto& m : caps_.auth)
      offered += (offered.empty() ? "" : " ") + m;
    fail("AUTH",
         "the server offers no AUTH mechanism supported here (PLAIN, "
         "LOGIN): "
           + printable(offered, smtp_max_quoted_reply),
         false);
  }

  void on_login_user(const smtp_reply& r) {
    if (r.code != 334)
      return fail_reply(r);
    command("AUTH", base64_encode(cfg_.username),
            &smtp_session::on_login_password, "<user name>");
  }

  void on_login_password(const smtp_reply& r) {
    if (r.code != 334)
      return fail_reply(r);
    command("AUTH", base64_encode(cfg_.password), &smtp_session::on_auth,
            "<password>");
  }

  void on_auth(const smtp_reply& r) {
    if (r.code != 235)
      return fail_reply(r);
    mail_from();
  }

  void mail_from() {
    // The DATA terminator is no part of the message.
    auto size = message_.size() - 3;
    if (caps_.size && caps_.max_size != 0 && size > caps_.max_size)
      return fail("MAIL FROM",
                  "the message's " + std::to_string(size)
                    + " bytes are over the server's SIZE limit of "
                    + std::to_string(caps_.max_size),
                  true);
    auto line = "MAIL FROM:<" + cfg_.from + ">";
    if (caps_.size)
      line += " SIZE=" + std::to_string(size);
    command("MAIL FROM", line, &smtp_session::on_mail_from);
  }

  void on_mail_from(const smtp_reply& r) {
    if (r.code != 250)
      return fail_reply(r);
    command("RCPT TO", "RCPT TO:<" + to_ + ">", &smtp_session::on_rcpt_to);
  }

  void on_rcpt_to(const smtp_reply& r) {
    if (r.code != 250 && r.code != 251)
      return fail_reply(r);
    command("DATA", "DATA", &smtp_session::on_data);
  }

  void on_data(const smtp_reply& r) {
    if (r.code != 354)
      return fail_reply(r);
    phase_ = "message";
    arm("no reply to the message within " + ms(cfg_.timeout));
    write(message_, &smtp_session::on_message);
  }

  void on_message(const smtp_reply& r) {
    if (r.code != 250)
      return fail_reply(r);
    log()->info("{}: sent via {}:{}{}", message_id_, cfg_.host, cfg_.port,
                tls_ ? " (TLS)" : "");
    // Accepted: a failing QUIT no longer changes the result.
    report({});
    command("QUIT", "QUIT", &smtp_session::on_quit);
  }

  void on_quit(const smtp_reply&) {
    close();
  }

  // -- I/O --------------------------------------------------------------------

  template<class F>
  void with_stream(F&& f) {
    if (tls_)
      f(*tls_);
    else
      f(socket_);
  }

  /// Sends `line` and CRLF, then awaits one reply for `next`. `shown` is
  /// what the log shows instead of the line (credentials).
  void command(const char* phase, std::string line, reply_handler next,
               std::string_view shown = {}) {
    if (closed_)
      return;
    phase_ = phase;
    log()->debug("{}: > {}", message_id_, shown.empty() ? line : shown);
    arm("no reply to " + std::string{phase} + " within " + ms(cfg_.timeout));
    line += crlf;
    out_ = std::move(line);
    write(out_, next);
  }

  /// Writes `bytes` (which must live until the write completed), then
  /// awaits one reply for `next`.
  void write(const std::string& bytes, reply_handler next) {
    with_stream([&](auto& stream) {
      asio::async_write(stream, asio::buffer(bytes),
                        [self = shared_from_this(), next](error_code ec,
                                                          size_t) {
                          if (ec)
                            return self->fail_io(ec, "sending");
                          self->read_reply(next);
                        });
    });
  }

  /// Reads until the reader completed one reply, then hands it to `next`.
  void read_reply(reply_handler next) {
    if (closed_)
      return;
    with_stream([&](auto& stream) {
      stream.async_read_some(asio::buffer(buffer_),
                             [self = shared_from_this(), next](error_code ec,
                                                               size_t n) {
                               self->on_read(ec, n, next);
                             });
    });
  }

  void on_read(error_code ec, size_t n, reply_handler next) {
    if (closed_)
      return;
    if (ec)
      return fail_io(ec, "reading the reply");
    replies_.clear();
    if (!reader_.feed({buffer_.data(), n}, replies_))
      return fail(phase_, reader_.error(), false);
    if (replies_.empty())
      return read_reply(next);
    if (replies_.size() > 1 || reader_.pending())
      return fail(phase_,
                  "the server sent more than the reply (" + replies_[0].quoted()
                    + "): out of step, or text injected ahead of TLS",
                  false);
    log()->debug("{}: < {}", message_id_, replies_[0].quoted());
    (this->*next)(replies_[0]);
  }

  // -- timers and errors ------------------------------------------------------

  /// Starts the step timer; `what` is the error should it fire.
  void arm(std::string what) {
    step_timer_.expires_after(cfg_.timeout);
    step_timer_.async_wait([self = shared_from_this(),
                            what = std::move(what)](error_code ec) {
      // A timer re-armed after it expired still runs the old handler
      // without an error: only a deadline still past counts.
      if (ec
          || self->step_timer_.expiry() > asio::steady_timer::clock_type::now())
        return;
      self->time_out(what);
    });
  }

  void time_out(const std::string& what) {
    fail(phase_, what, false);
  }

  /// Fails with the error of an I/O operation, or the timer's.
  void fail_io(error_code ec, const std::string& during) {
    std::string why = ec == asio::error::eof
        || ec == ssl::error::stream_truncated
      ? "the server closed the connection"
      : ec.message();
    fail(phase_, during.empty() ? why : during + ": " + why, false);
  }

  /// Fails with a reply the phase did not expect; permanent when 5xx.
  void fail_reply(const smtp_reply& r) {
    fail(phase_, "the server answered " + r.quoted(), r.code >= 500);
  }

  /// Ends the dialogue and reports the error, unless the message was
  /// already accepted: then only QUIT failed, which changes nothing.
  void fail(const std::string& phase, const std::string& why, bool permanent) {
    if (closed_)
      return;
    close();
    if (reported_) {
      log()->debug("{}: {} after the message was accepted: {}", message_id_,
                   phase, why);
      return;
    }
    auto error = "SMTP " + cfg_.host + ":" + cfg_.port + " " + phase + ": "
      + why;
    log()->warn("{}: {}", message_id_, error);
    report({std::move(error), permanent});
  }

  /// Hands `result` to the caller, once.
  void report(smtp_result result) {
    if (reported_)
      return;
    reported_ = true;
    auto done = std::move(done_);
    done_ = nullptr;
    if (done)
      done(std::move(result));
  }

  /// Ends the connection. Handlers of operations still pending then see
  /// `closed_` or an aborted operation and stop.
  void close() {
    if (closed_)
      return;
    closed_ = true;
    step_timer_.cancel();
    deadline_.cancel();
    error_code ignored;
    resolver_.cancel();
    socket_.shutdown(tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
  }

  static std::shared_ptr<spdlog::logger> log() {
    return logger("smtp");
  }

  smtp_config cfg_;
  std::string to_;
  std::string message_id_;
  /// The dot-stuffed message with its terminator.
  std::string message_;
  done_handler done_;
  /// Declared before the stream, so destroyed after it.
  std::shared_ptr<ssl::context> tls_context_;
  tcp::resolver resolver_;
  tcp::socket socket_;
  std::optional<ssl::stream<tcp::socket&>> tls_;
  asio::steady_timer step_timer_;
  asio::steady_timer deadline_;
  std::array<char, 4096> buffer_;
  smtp_reply_reader reader_;
  std::vector<smtp_reply> replies_;
  smtp_capabilities caps_;
  /// The command being written.
  std::string out_;
  const char* phase_ = "connect";
  bool starttls_refused_ = false;
  bool reported_ = false;
  bool closed_ = false;
};

} // namespace

void send_email(const smtp_config& cfg, email mail,
                std::function<void(smtp_result)> done) {
  auto& io = client_io();
  auto error = validate_email(cfg, mail);
  std::string message;
  std::shared_ptr<ssl::context> tls;
  if (error.empty()) {
    auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                 std::chrono::system_clock::now().time_since_epoch())
                 .count();
    message = dot_stuff(compose_email(cfg, mail, now));
    if (message.size() > smtp_max_message)
      error = "message is over " + std::to_string(smtp_max_message)
        + " bytes once encoded";
  }
  if (error.empty() && cfg.tls != smtp_config::tls_mode::off)
    tls = tls_context(cfg, error);
  auto id = mail.message_id.empty() ? std::string{"<no Message-ID>"}
                                    : printable(mail.message_id, 64);
  auto session = std::make_shared<smtp_session>(
    io, cfg, std::move(mail.to), std::move(id), std::move(message),
    std::move(tls), std::move(done));
  asio::post(io, [session, error = std::move(error)]() mutable {
    if (error.empty())
      session->start();
    else
      session->refuse(std::move(error));
  });
}

} // namespace switchyard::net
