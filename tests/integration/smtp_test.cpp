// The SMTP client (net/smtp_client.hpp) against a real SMTP server,
// tests/e2e/lib/smtp_server.py (aiosmtpd), started once per case with the
// options the case needs. Usage:
//   smtp_test <python> <smtp_server.py> <dir>
// where <dir> holds cert.pem and key.pem (self-signed for localhost and
// 127.0.0.1) and other.pem and other-key.pem (for another name);
// tests/integration/with-smtp.sh makes them and passes the arguments.
// Prints every failed check; exits 0 when all passed.

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "net/smtp_client.hpp"

extern char** environ;

using namespace switchyard;
using namespace std::chrono_literals;
using net::smtp_config;
using net::smtp_result;
using json = nlohmann::json;
using tls_mode = smtp_config::tls_mode;

namespace {

int failures = 0;

void check(bool ok, const std::string& what) {
  if (ok)
    return;
  ++failures;
  std::cout << "FAILED: " << what << std::endl;
}

std::string python;
std::string script;
std::string dir;

/// One smtp_server.py process, stopped (SIGTERM) with the object.
class smtp_server {
public:
  explicit smtp_server(std::vector<std::string> options, std::string name)
    : out_(dir + "/" + name + ".jsonl") {
    std::remove(out_.c_str());
    std::vector<std::string> args{python,   script, "--host", "127.0.0.1",
                                  "--port", "0",    "--out",  out_};
    args.insert(args.end(), options.begin(), options.end());
    std::vector<char*> argv;
    for (auto& a : args)
      argv.push_back(a.data());
    argv.push_back(nullptr);
    int fds[2];
    if (pipe(fds) != 0)
      throw std::runtime_error("pipe failed");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&actions, fds[0]);
    posix_spawn_file_actions_addclose(&actions, fds[1]);
    if (posix_spawn(&pid_, python.c_str(), &actions, nullptr, argv.data(),
                    environ)
        != 0)
      throw std::runtime_error("cannot start " + python);
    posix_spawn_file_actions_destroy(&actions);
    close(fds[1]);
    // "ready <port>\n" within 10 s.
    std::string line;
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (line.find('\n') == std::string::npos) {
      pollfd p{fds[0], POLLIN, 0};
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    deadline - std::chrono::steady_clock::now())
                    .count();
      if (left <= 0 || poll(&p, 1, static_cast<int>(left)) <= 0)
        break;
      char buf[256];
      auto n = read(fds[0], buf, sizeof(buf));
      if (n <= 0)
        break;
      line.append(buf, static_cast<size_t>(n));
    }
    close(fds[0]);
    if (line.rfind("ready ", 0) != 0)
      throw std::runtime_error("smtp_server.py did not get ready: " + line);
    port_ = std::to_string(std::stoi(line.substr(6)));
  }

  ~smtp_server() {
    kill(pid_, SIGTERM);
    int status = 0;
    waitpid(pid_, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      ++failures;
      std::cout << "FAILED: smtp_server.py did not exit cleanly on SIGTERM"
                << std::endl;
    }
  }

  const std::string& port() const {
    return port_;
  }

  /// The messages received so far.
  std::vector<json> received() const {
    std::vector<json> out;
    std::ifstream in{out_};
    std::string line;
    while (std::getline(in, line))
      out.push_back(json::parse(line));
    return out;
  }

  const std::string& out_file() const {
    return out_;
  }

private:
  std::string out_;
  pid_t pid_ = -1;
  std::string port_;
};

/// Sends and waits for the result; checks that `done` ran once.
smtp_result send(const smtp_config& cfg, const net::email& mail,
                 std::chrono::milliseconds wait = 30s) {
  struct state {
    std::mutex mtx;
    std::condition_variable cv;
    std::vector<smtp_result> results;
  };
  auto st = std::make_shared<state>();
  net::send_email(cfg, mail, [st](smtp_result res) {
    std::lock_guard<std::mutex> guard{st->mtx};
    st->results.push_back(std::move(res));
    st->cv.notify_all();
  });
  std::unique_lock<std::mutex> guard{st->mtx};
  if (!st->cv.wait_for(guard, wait, [&] {
        return !st->results.empty();
      })) {
    check(false, "no result within " + std::to_string(wait.count()) + " ms");
    return {"<no result>", false};
  }
  // A second call would come right after the first.
  st->cv.wait_for(guard, 100ms, [&] {
    return st->results.size() > 1;
  });
  check(st->results.size() == 1, "done ran more than once");
  return st->results.front();
}

smtp_config base_config(const std::string& port) {
  smtp_config cfg;
  cfg.host = "127.0.0.1";
  cfg.port = port;
  cfg.from = "noreply@switchyard.test";
  cfg.from_name = "Switchyard Benachrichtigung";
  cfg.timeout = 5s;
  return cfg;
}

smtp_config tls_config(const std::string& port) {
  auto cfg = base_config(port);
  cfg.tls = tls_mode::required;
  cfg.ca_file = dir + "/cert.pem";
  cfg.verify_peer = true;
  cfg.username = "alice";
  cfg.password = "s3cret pass";
  return cfg;
}

net::email test_mail(const std::string& id) {
  net::email m;
  m.to = "bob@example.org";
  m.subject = "Neue Nachricht in „Planung“ ✓";
  m.text = "Hello Bob,\n\n.a line with a dot\nAlice wrote: hi.\n";
  m.html = "<p>Hello Bob,</p>\n<p>Alice wrote: <b>hi</b>.</p>\n";
  m.message_id = id + "@switchyard";
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

/// Python's email package (an independent MIME parser) reads the message:
/// decoded headers and the text of each part.
json python_parse(const std::string& raw) {
  auto path = dir + "/message.eml";
  std::ofstream{path, std::ios::binary} << raw;
  auto cmd = python
    + " -c '"
      "import email, email.policy, json, sys\n"
      "m = email.message_from_binary_file(open(sys.argv[1], \"rb\"),"
      " policy=email.policy.default)\n"
      "out = {k: str(m[k]) for k in (\"From\", \"To\", \"Subject\","
      " \"Message-ID\", \"Date\", \"MIME-Version\")}\n"
      "out[\"defects\"] = [str(d) for d in m.defects]\n"
      "out[\"type\"] = m.get_content_type()\n"
      "out[\"parts\"] = {p.get_content_type(): p.get_content()"
      " for p in m.walk() if not p.is_multipart()}\n"
      "out[\"part_defects\"] = [str(d) for p in m.walk() for d in "
      "p.defects]\n"
      "print(json.dumps(out))' "
    + path;
  std::string output;
  if (auto* p = popen(cmd.c_str(), "r")) {
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), p)) > 0)
      output.append(buf, n);
    pclose(p);
  }
  try {
    return json::parse(output);
  } catch (const std::exception& e) {
    check(false,
          std::string{"python could not parse the message: "} + e.what() + ": "
            + output);
    return json::object();
  }
}

/// A port nothing listens on (bound, then closed).
std::string closed_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return std::to_string(ntohs(addr.sin_port));
}

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

std::string show(const smtp_result& res) {
  return "'" + res.error + "' permanent=" + (res.permanent ? "true" : "false");
}

// -- cases --------------------------------------------------------------------

void starttls_and_auth_plain() {
  smtp_server server{{"--cert", dir + "/cert.pem", "--key", dir + "/key.pem",
                      "--user", "alice", "--password", "s3cret pass",
                      "--require-tls"},
                     "starttls_auth"};
  auto mail = test_mail("plain.1");
  auto res = send(tls_config(server.port()), mail);
  check(res.error.empty(), "STARTTLS + AUTH PLAIN: " + show(res));
  auto got = server.received();
  check(got.size() == 1,
        "STARTTLS + AUTH PLAIN: one message, got "
          + std::to_string(got.size()));
  if (got.size() != 1)
    return;
  auto& m = got[0];
  check(m["tls"] == true, "the message came over TLS");
  check(m["auth_user"] == "alice", "auth_user is alice: " + m.dump());
  check(m["mail_from"] == "noreply@switchyard.test", "mail_from");
  check(m["rcpt_tos"] == json::array({"bob@example.org"}), "rcpt_tos");
  auto raw = m["data"].get<std::string>();
  check(contains(raw, "\r\nMessage-ID: <plain.1@switchyard>\r\n"),
        "Message-ID in the raw message");
  auto parsed = python_parse(raw);
  check(parsed["defects"].empty() && parsed["part_defects"].empty(),
        "python sees no MIME defects: " + parsed.dump());
  check(parsed["Subject"] == mail.subject,
        "Subject decodes: " + parsed["Subject"].dump());
  check(parsed["From"]
          == "Switchyard Benachrichtigung <noreply@switchyard.test>",
        "From: " + parsed["From"].dump());
  check(parsed["To"] == "bob@example.org", "To: " + parsed["To"].dump());
  check(parsed["Message-ID"] == "<plain.1@switchyard>", "Message-ID");
  check(parsed["MIME-Version"] == "1.0", "MIME-Version");
  check(parsed["type"] == "multipart/alternative", "multipart/alternative");
  // The parts' line ends are CRLF, the canonical form of text.
  check(parsed["parts"]["text/plain"] == crlf(mail.text),
        "text part: " + parsed["parts"]["text/plain"].dump());
  check(parsed["parts"]["text/html"] == crlf(mail.html),
        "html part: " + parsed["parts"]["text/html"].dump());
}

void auth_login() {
  smtp_server server{{"--cert", dir + "/cert.pem", "--key", dir + "/key.pem",
                      "--user", "alice", "--password", "s3cret pass",
                      "--auth-exclude", "PLAIN"},
                     "auth_login"};
  auto res = send(tls_config(server.port()), test_mail("login.1"));
  check(res.error.empty(), "AUTH LOGIN: " + show(res));
  auto got = server.received();
  check(got.size() == 1 && got[0]["auth_user"] == "alice"
          && got[0]["tls"] == true,
        "AUTH LOGIN: one message from alice over TLS");
}

void wrong_password() {
  smtp_server server{{"--cert", dir + "/cert.pem", "--key", dir + "/key.pem",
                      "--user", "alice", "--password", "s3cret pass"},
                     "wrong_password"};
  auto cfg = tls_config(server.port());
  cfg.password = "wrong";
  auto res = send(cfg, test_mail("wrong.1"));
  check(!res.error.empty() && res.permanent && contains(res.error, "AUTH")
          && contains(res.error, "535"),
        "wrong password: permanent 535 in AUTH, got " + show(res));
  check(server.received().empty(), "wrong password: nothing delivered");
}

void closed_port_fails_temporarily() {
  auto cfg = base_config(closed_port());
  cfg.tls = tls_mode::off;
  auto res = send(cfg, test_mail("closed.1"));
  check(!res.error.empty() && !res.permanent && contains(res.error, "connect"),
        "closed port: temporary connect error, got " + show(res));
}

void required_tls_without_starttls() {
  smtp_server server{{}, "no_starttls"};
  auto cfg = base_config(server.port());
  cfg.tls = tls_mode::required;
  auto res = send(cfg, test_mail("notls.1"));
  check(!res.error.empty() && contains(res.error, "STARTTLS"),
        "tls required without STARTTLS: error, got " + show(res));
  check(server.received().empty(), "tls required: nothing delivered");
  // Opportunistic STARTTLS sends in plain text there.
  cfg.tls = tls_mode::starttls;
  res = send(cfg, test_mail("notls.2"));
  check(res.error.empty(), "starttls mode without STARTTLS: " + show(res));
  auto got = server.received();
  check(got.size() == 1 && got[0]["tls"] == false
          && got[0]["auth_user"].is_null(),
        "starttls mode: one plain message");
}

void certificate_checks() {
  smtp_server server{{"--cert", dir + "/cert.pem", "--key", dir + "/key.pem"},
                     "cert_checks"};
  auto cfg = base_config(server.port());
  cfg.tls = tls_mode::required;
  // The system store does not know the self-signed certificate.
  auto res = send(cfg, test_mail("verify.1"));
  check(!res.error.empty() && !res.permanent
          && contains(res.error, "TLS handshake"),
        "self-signed against the system store: handshake error, got "
          + show(res));
  // Trusted, but issued to another name.
  cfg.ca_file = dir + "/other.pem";
  res = send(cfg, test_mail("verify.2"));
  check(!res.error.empty() && contains(res.error, "TLS handshake"),
        "certificate of another name: handshake error, got " + show(res));
  // By name: SNI and a DNS name check.
  cfg.ca_file = dir + "/cert.pem";
  cfg.host = "localhost";
  res = send(cfg, test_mail("verify.3"));
  check(res.error.empty(), "localhost with its certificate: " + show(res));
  // Without verification anything goes.
  cfg.ca_file.clear();
  cfg.verify_peer = false;
  res = send(cfg, test_mail("verify.4"));
  check(res.error.empty(), "verify_peer off: " + show(res));
  check(server.received().size() == 2, "two of four delivered");
}

void implicit_tls() {
  smtp_server server{{"--cert", dir + "/cert.pem", "--key", dir + "/key.pem",
                      "--user", "alice", "--password", "s3cret pass",
                      "--implicit-tls"},
                     "implicit"};
  auto cfg = tls_config(server.port());
  cfg.tls = tls_mode::implicit;
  auto res = send(cfg, test_mail("implicit.1"));
  check(res.error.empty(), "implicit TLS: " + show(res));
  auto got = server.received();
  check(got.size() == 1 && got[0]["tls"] == true
          && got[0]["auth_user"] == "alice",
        "implicit TLS: one message from alice over TLS");
}

void credentials_need_tls() {
  // AUTH offered in plain text: not taken unless tls == off.
  smtp_server server{{"--user", "alice", "--password", "s3cret pass"},
                     "plain_auth"};
  auto cfg = tls_config(server.port());
  cfg.tls = tls_mode::starttls;
  auto res = send(cfg, test_mail("plainauth.1"));
  check(!res.error.empty() && contains(res.error, "credentials"),
        "credentials without TLS: refused, got " + show(res));
  cfg.tls = tls_mode::off;
  res = send(cfg, test_mail("plainauth.2"));
  check(res.error.empty(), "credentials with tls off: " + show(res));
  auto got = server.received();
  check(got.size() == 1 && got[0]["auth_user"] == "alice"
          && got[0]["tls"] == false,
        "tls off: one message from alice in plain text");
}

void rcpt_refusals() {
  {
    smtp_server server{{"--rcpt-reply", "450 4.2.1 Mailbox busy"}, "rcpt450"};
    auto cfg = base_config(server.port());
    auto res = send(cfg, test_mail("rcpt.1"));
    check(!res.error.empty() && !res.permanent && contains(res.error, "RCPT TO")
            && contains(res.error, "450"),
          "RCPT 450: temporary, got " + show(res));
  }
  smtp_server server{{"--rcpt-reply", "550 5.1.1 No such user"}, "rcpt550"};
  auto res = send(base_config(server.port()), test_mail("rcpt.2"));
  check(!res.error.empty() && res.permanent && contains(res.error, "550"),
        "RCPT 550: permanent, got " + show(res));
}

void silent_server_times_out() {
  // Listens, never accepts: the kernel completes the handshake, nobody
  // greets.
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  listen(fd, 8);
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  auto cfg = base_config(std::to_string(ntohs(addr.sin_port)));
  cfg.timeout = 300ms;
  auto start = std::chrono::steady_clock::now();
  auto res = send(cfg, test_mail("silent.1"), 5s);
  auto took = std::chrono::steady_clock::now() - start;
  check(!res.error.empty() && !res.permanent
          && contains(res.error, "no greeting within 300 ms"),
        "silent server: greeting timeout, got " + show(res));
  check(took < 2s, "silent server: failed within 2 s");
  close(fd);
}

void invalid_input_fails_permanently() {
  auto cfg = base_config("25");
  auto mail = test_mail("invalid.1");
  mail.to = "bob@example.org>\r\nRCPT TO:<eve@example.net";
  auto res = send(cfg, mail);
  check(!res.error.empty() && res.permanent,
        "injected recipient: permanent error, got " + show(res));
  cfg.host.clear();
  res = send(cfg, test_mail("invalid.2"));
  check(!res.error.empty() && res.permanent,
        "no host: permanent error, got " + show(res));
}

void concurrent_sends() {
  smtp_server server{{"--cert", dir + "/cert.pem", "--key", dir + "/key.pem",
                      "--user", "alice", "--password", "s3cret pass"},
                     "concurrent"};
  constexpr int n = 8;
  std::mutex mtx;
  std::condition_variable cv;
  std::vector<smtp_result> results;
  for (int i = 0; i < n; ++i)
    net::send_email(tls_config(server.port()),
                    test_mail("many." + std::to_string(i)),
                    [&](smtp_result res) {
                      std::lock_guard<std::mutex> guard{mtx};
                      results.push_back(std::move(res));
                      cv.notify_all();
                    });
  std::unique_lock<std::mutex> guard{mtx};
  cv.wait_for(guard, 30s, [&] {
    return results.size() == n;
  });
  check(results.size() == n, "concurrent: every send finished");
  for (auto& res : results)
    check(res.error.empty(), "concurrent send: " + show(res));
  check(server.received().size() == n, "concurrent: every message arrived");
}

} // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::cerr << "usage: " << argv[0] << " <python> <smtp_server.py> <dir>\n";
    return 2;
  }
  python = argv[1];
  script = argv[2];
  dir = argv[3];
  signal(SIGPIPE, SIG_IGN);
  std::pair<const char*, void (*)()> cases[] = {
    {"STARTTLS and AUTH PLAIN", starttls_and_auth_plain},
    {"AUTH LOGIN", auth_login},
    {"a wrong password", wrong_password},
    {"a closed port", closed_port_fails_temporarily},
    {"tls required without STARTTLS", required_tls_without_starttls},
    {"certificate checks", certificate_checks},
    {"implicit TLS", implicit_tls},
    {"credentials need TLS", credentials_need_tls},
    {"RCPT refusals", rcpt_refusals},
    {"a silent server", silent_server_times_out},
    {"invalid input", invalid_input_fails_permanently},
    {"concurrent sends", concurrent_sends},
  };
  for (auto& [name, run] : cases) {
    auto before = failures;
    try {
      run();
    } catch (const std::exception& e) {
      check(false, std::string{name} + ": " + e.what());
    }
    std::cout << (failures == before ? "ok: " : "FAILED: ") << name
              << std::endl;
  }
  std::cout << (failures == 0 ? "all passed" : "failures: ")
            << (failures == 0 ? "" : std::to_string(failures)) << std::endl;
  return failures == 0 ? 0 : 1;
}
