// An asynchronous SMTP client (RFC 5321) for email notifications: one
// connection per message, STARTTLS (RFC 3207) or implicit TLS, AUTH PLAIN
// or LOGIN (RFC 4954), a MIME message of its own making (RFC 5322, 2045,
// 2046, 2047).
//
// Every send runs on the process-wide client I/O thread
// (net/io_thread.hpp); `send_email` returns at once and its callback runs
// on that thread. The pure parts (the reply reader, the EHLO capabilities,
// the message) are free functions and classes of their own, unit-tested and
// fuzzed (tests/unit/smtp.cpp, tests/fuzz/fuzz_smtp.cpp).

#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace switchyard::net {

// -- configuration and input --------------------------------------------------

/// Where and how to send.
struct smtp_config {
  /// A name or an IP address; empty: email is not configured.
  std::string host;
  std::string port = "25";
  enum class tls_mode {
    /// STARTTLS when the server offers it (the default); plain text when
    /// it does not, or refuses the command.
    starttls,
    /// Fail unless STARTTLS succeeds.
    required,
    /// TLS from the first byte (port 465).
    implicit,
    /// Never (loopback tests only).
    off,
  };
  tls_mode tls = tls_mode::starttls;
  /// Certificate chain and host name check.
  bool verify_peer = true;
  /// Extra trust anchor (PEM), else the system store. When set, the
  /// certificates of this file are the only trust anchors.
  std::string ca_file;
  /// AUTH when both are set and the server offers AUTH (PLAIN, else LOGIN).
  /// Credentials are only ever sent over TLS, unless tls == off: a server
  /// that offers no STARTTLS then fails the send.
  std::string username, password;
  /// Envelope sender address, e.g. noreply@example.com.
  std::string from;
  /// Display name of the From header (optional).
  std::string from_name;
  /// EHLO name.
  std::string helo = "switchyard";
  /// Limit of each step (connecting, the TLS handshake, each reply); the
  /// whole dialogue is bounded by `smtp_dialogue_timeouts` times this.
  std::chrono::milliseconds timeout{30'000};
};

/// One message to one recipient.
struct email {
  /// One address.
  std::string to;
  /// UTF-8; RFC 2047-encoded when not ASCII (CR and LF become spaces).
  std::string subject;
  /// The text/plain part, UTF-8.
  std::string text;
  /// The text/html part, UTF-8 (already escaped by the caller). Empty: the
  /// message has a text/plain body only.
  std::string html;
  /// Without the angle brackets, e.g. "n_42@switchyard"; used as
  /// Message-ID. Empty: one is made from a hash of the message and the time,
  /// in the sender's domain.
  std::string message_id;
};

/// Result: empty `error` on success; `permanent` is true when the server
/// refused with a 5xx (do not retry) or the input is invalid, false for 4xx,
/// timeouts and connection errors (retry later).
struct smtp_result {
  std::string error;
  bool permanent = false;
};

// -- limits -------------------------------------------------------------------

/// Longest reply line, CRLF included: RFC 5321 says 512, some servers send
/// longer text lines, 1000 is its limit for any text line.
constexpr size_t smtp_max_reply_line = 1000;

/// Most lines in one reply (an EHLO reply has one per extension: a dozen).
constexpr size_t smtp_max_reply_lines = 100;

/// Longest address (RFC 5321: a path is at most 256 octets with its <>).
constexpr size_t smtp_max_address = 254;

/// Longest Message-ID, user name, password and EHLO name.
constexpr size_t smtp_max_field = 256;

/// Largest composed message (headers, base64 bodies): a notification is a
/// few KiB; servers commonly refuse over 10 to 50 MB.
constexpr size_t smtp_max_message = 10 * 1024 * 1024;

/// The whole dialogue, connecting included, takes at most this many times
/// `smtp_config::timeout`.
constexpr int smtp_dialogue_timeouts = 5;

/// Most bytes of the server's reply text quoted in an error.
constexpr size_t smtp_max_quoted_reply = 200;

// -- sending ------------------------------------------------------------------

/// Starts sending `mail`; returns at once. `done` runs exactly once on the
/// client's I/O thread (it must only hand the result on, e.g. an actor sends
/// itself a message); invalid input fails through it too. Only a send still
/// pending when the process exits never calls it.
void send_email(const smtp_config& cfg, email mail,
                std::function<void(smtp_result)> done);

/// Why `cfg` and `mail` cannot be sent (empty when they can): no host, an
/// address with CR, LF, <, >, a space, a control or non-ASCII byte or
/// without @, fields over their limits, NUL in the credentials. Errors of
/// this kind are permanent.
std::string validate_email(const smtp_config& cfg, const email& mail);

// -- the message --------------------------------------------------------------

/// The RFC 5322 message: Date (from `unix_ms`, UTC), From, To, Subject,
/// Message-ID, MIME-Version, and a multipart/alternative body of the text
/// and the HTML part (or only the text part when `html` is empty), each
/// UTF-8, base64 in lines of 76 characters. CRLF line ends throughout, no
/// line over 998 bytes, 7-bit only; the line ends of text and html become
/// CRLF before encoding (the canonical form of text). Pure. Fields that
/// `validate_email` would refuse are made safe (CR and LF dropped or
/// encoded, forbidden address bytes dropped, lengths capped), never copied
/// into a header as they are.
std::string compose_email(const smtp_config& cfg, const email& mail,
                          int64_t unix_ms);

/// `message` as the DATA command sends it: every line that starts with '.'
/// gets another one (RFC 5321 4.5.2), then the terminating ".\r\n".
/// `message` must end with CRLF (compose_email's does).
std::string dot_stuff(std::string_view message);

/// RFC 4648 base64 of `bytes`, one line (no line breaks).
std::string base64_encode(std::string_view bytes);

// -- replies ------------------------------------------------------------------

/// One complete reply of the server.
struct smtp_reply {
  /// Three digits, 200 to 599.
  int code = 0;
  /// The text of each line, after the code and its separator.
  std::vector<std::string> lines;

  /// The lines joined with spaces.
  std::string text() const;

  /// "<code> <text>", printable ASCII only (other bytes become '?'), at
  /// most `smtp_max_quoted_reply` bytes of text: safe for logs and JSON.
  std::string quoted() const;
};

/// Incremental reader of replies (RFC 5321 4.2): lines of three digits, then
/// '-' for a line that continues the reply or ' ' (or nothing) for its last
/// line, each ending with CRLF (a bare LF is accepted too). Replies arrive
/// in chunks cut anywhere, so the reader keeps the unfinished line and reply
/// between calls. Memory is bounded: a line over `smtp_max_reply_line`
/// bytes (CRLF included) and a reply of more than `smtp_max_reply_lines`
/// lines are errors, as soon as they are seen.
class smtp_reply_reader {
public:
  /// Reads `chunk`, appending each reply it completes to `out`. Returns
  /// false once the input broke the syntax or a limit, with `error()`
  /// saying how; the reader is then spent and every later call returns
  /// false at once.
  bool feed(std::string_view chunk, std::vector<smtp_reply>& out);

  /// Why `feed` returned false; empty while the input is fine.
  const std::string& error() const {
    return error_;
  }

  /// Whether part of a reply is buffered (a line or the first lines of a
  /// multi-line reply). The client treats any byte after a complete reply
  /// as a protocol error: it sends one command at a time, and after
  /// STARTTLS such bytes would be plain text injected ahead of TLS.
  bool pending() const {
    return !line_.empty() || !current_.lines.empty();
  }

private:
  bool on_line(std::string_view line, std::vector<smtp_reply>& out);

  bool fail(std::string reason);

  std::string line_;
  smtp_reply current_;
  std::string error_;
};

/// What an EHLO reply says the server supports.
struct smtp_capabilities {
  bool starttls = false;
  bool eight_bit_mime = false;
  /// SIZE announced; `max_size` is its limit, 0 when none (or too large).
  bool size = false;
  uint64_t max_size = 0;
  /// The AUTH mechanisms, upper case, in the server's order.
  std::vector<std::string> auth;

  /// Whether `mechanism` (upper case) is offered.
  bool has_auth(std::string_view mechanism) const;
};

/// Reads the extension lines of an EHLO reply (every line but the first,
/// keywords in any case). Also reads the obsolete `AUTH=PLAIN LOGIN` form.
/// Unknown and malformed lines are ignored.
smtp_capabilities parse_ehlo(const smtp_reply& reply);

} // namespace switchyard::net
