// swload: WebSocket load generator for Switchyard and nats-server.
//
// One invocation starts each server under test in turn (Switchyard on its
// in-process bus, Switchyard on NATS, nats-server's WebSocket listener), runs
// the same scenario against each with the same clients, and prints one table
// (and JSON lines with --json) so results are ratios taken on one machine at
// one time. Clients are plain non-blocking sockets on epoll, split over
// --procs processes (each process may open at most ~20k files here).
//
// Scenarios: fanout, many-topics, idle, storm; --smoke checks correctness
// (every event delivered once per subscriber) and never speed.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

namespace {

// -- time ---------------------------------------------------------------------

uint64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ull
    + static_cast<uint64_t>(ts.tv_nsec);
}

void sleep_ms(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
}

[[noreturn]] void die(const std::string& msg) {
  std::fprintf(stderr, "swload: %s\n", msg.c_str());
  std::exit(2);
}

// -- histogram ----------------------------------------------------------------

/// Log-linear buckets in the style of HdrHistogram: 32 sub-buckets per power
/// of two (~3% precision), nanoseconds up to 2^63.
struct histogram {
  static constexpr int sub_bits = 5;
  static constexpr int sub = 1 << sub_bits;
  std::array<uint64_t, 64 * sub> counts{};
  uint64_t total = 0;
  uint64_t max = 0;

  static size_t index(uint64_t v) {
    if (v < sub)
      return v;
    int msb = 63 - __builtin_clzll(v);
    int shift = msb - sub_bits;
    return static_cast<size_t>((shift + 1) * sub + ((v >> shift) & (sub - 1)));
  }

  static uint64_t value_at(size_t i) {
    if (i < sub)
      return i;
    auto shift = static_cast<int>(i / sub) - 1;
    auto mant = (i % sub) | sub;
    // Upper edge of the bucket, so percentiles never understate.
    return ((mant + 1) << shift) - 1;
  }

  void record(uint64_t v) {
    ++counts[index(v)];
    ++total;
    max = std::max(max, v);
  }

  void merge(const histogram& o) {
    for (size_t i = 0; i < counts.size(); ++i)
      counts[i] += o.counts[i];
    total += o.total;
    max = std::max(max, o.max);
  }

  uint64_t percentile(double p) const {
    if (total == 0)
      return 0;
    auto want = static_cast<uint64_t>(std::ceil(p / 100.0 * total));
    uint64_t seen = 0;
    for (size_t i = 0; i < counts.size(); ++i) {
      seen += counts[i];
      if (seen >= want && counts[i] > 0)
        return std::min(value_at(i), max);
    }
    return max;
  }
};

// -- options ------------------------------------------------------------------

struct options {
  std::string scenario = "fanout";
  std::vector<std::string> targets{"switchyard", "switchyard-nats", "nats"};
  int subs = 1000;           // fanout subscribers
  int conns = 1000;          // many-topics / idle / storm connections
  int per_org = 100;         // many-topics: connections per org
  std::vector<double> rates; // events/s; empty: scenario default
  bool saturate = false;     // keep doubling the rate until it saturates
  double duration = 5.0;     // seconds per measured step
  double warmup = 1.0;       // seconds before each step's measurement
  int procs = 2;             // client processes
  int payload = 200;         // bytes of event data
  int storm_window = 256;    // storm: connects in flight per process
  bool shared = false;       // idle/storm: one shared pattern per org
  bool smoke = false;        // correctness check mode
  int smoke_events = 100;
  std::string json_out;
  std::vector<std::string> source_ips{"127.0.0.1"};
  std::string switchyard_bin;
  std::string nats_bin = "nats-server";
  int io_threads = 1;
  int actor_threads = 1;
  std::string extra_args; // appended to the switchyard command line
};

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, sep))
    if (!item.empty())
      out.push_back(item);
  return out;
}

void usage() {
  std::puts(
    "usage: swload [options]\n"
    "  --scenario fanout|many-topics|idle|storm   (default fanout)\n"
    "  --targets switchyard,switchyard-nats,nats  servers to run, in order\n"
    "  --subs N            fanout subscribers (default 1000)\n"
    "  --conns N           connections for many-topics, idle, storm\n"
    "  --per-org N         many-topics: connections per org (default 100)\n"
    "  --shared            idle/storm: subscribe events.<org>.> (shared by\n"
    "                      the org's connections) instead of an own topic\n"
    "  --rates R1,R2,...   offered events/s per step\n"
    "  --saturate          double the rate from the last of --rates until\n"
    "                      delivery falls behind (saturating rate)\n"
    "  --duration S        measured seconds per step (default 5)\n"
    "  --warmup S          unmeasured seconds before each step (default 1)\n"
    "  --procs P           client processes (default 2)\n"
    "  --payload B         event data bytes (default 200)\n"
    "  --source-ips A,B    local addresses to bind (127.0.0.0/8 past 64k)\n"
    "  --smoke             small run; exit 1 unless every event arrives once\n"
    "  --json FILE         append one JSON line per result\n"
    "  --switchyard PATH   node binary (default: next to swload "
    "../switchyard)\n"
    "  --nats-server PATH  nats-server binary\n"
    "  --io-threads N, --actor-threads N   node threads (default 1 and 1)\n"
    "  --node-args '...'   extra node flags");
}

options parse(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc)
        die("missing value for " + a);
      return argv[++i];
    };
    if (a == "--scenario")
      o.scenario = next();
    else if (a == "--targets")
      o.targets = split(next(), ',');
    else if (a == "--subs")
      o.subs = std::stoi(next());
    else if (a == "--conns")
      o.conns = std::stoi(next());
    else if (a == "--per-org")
      o.per_org = std::stoi(next());
    else if (a == "--rates") {
      o.rates.clear();
      for (auto& r : split(next(), ','))
        o.rates.push_back(std::stod(r));
    } else if (a == "--saturate")
      o.saturate = true;
    else if (a == "--duration")
      o.duration = std::stod(next());
    else if (a == "--warmup")
      o.warmup = std::stod(next());
    else if (a == "--procs")
      o.procs = std::max(1, std::stoi(next()));
    else if (a == "--payload")
      o.payload = std::stoi(next());
    else if (a == "--storm-window")
      o.storm_window = std::stoi(next());
    else if (a == "--smoke")
      o.smoke = true;
    else if (a == "--shared")
      o.shared = true;
    else if (a == "--smoke-events")
      o.smoke_events = std::stoi(next());
    else if (a == "--json")
      o.json_out = next();
    else if (a == "--source-ips")
      o.source_ips = split(next(), ',');
    else if (a == "--switchyard")
      o.switchyard_bin = next();
    else if (a == "--nats-server")
      o.nats_bin = next();
    else if (a == "--io-threads")
      o.io_threads = std::stoi(next());
    else if (a == "--actor-threads")
      o.actor_threads = std::stoi(next());
    else if (a == "--node-args")
      o.extra_args = next();
    else if (a == "--help" || a == "-h") {
      usage();
      std::exit(0);
    } else
      die("unknown option " + a + " (see --help)");
  }
  if (o.switchyard_bin.empty()) {
    char self[4096];
    auto n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n > 0) {
      self[n] = 0;
      std::string dir{self};
      dir = dir.substr(0, dir.rfind('/'));
      o.switchyard_bin = dir + "/../../switchyard";
    }
  }
  return o;
}

// -- processes ----------------------------------------------------------------

struct proc_stat {
  uint64_t cpu_ticks = 0; // utime + stime
  uint64_t rss_kib = 0;
};

proc_stat read_proc(pid_t pid) {
  proc_stat st;
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (std::getline(f, line)) {
    auto rp = line.rfind(')');
    std::istringstream is(line.substr(rp + 2));
    std::string tok;
    std::vector<std::string> fields;
    while (is >> tok)
      fields.push_back(tok);
    // fields[0] is state (field 3); utime is field 14, stime 15.
    if (fields.size() > 13)
      st.cpu_ticks = std::stoull(fields[11]) + std::stoull(fields[12]);
  }
  std::ifstream s("/proc/" + std::to_string(pid) + "/status");
  while (std::getline(s, line))
    if (line.rfind("VmRSS:", 0) == 0)
      st.rss_kib = std::stoull(line.substr(6));
  return st;
}

bool port_open(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) == 0;
  close(fd);
  return ok;
}

int free_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa));
  socklen_t len = sizeof(sa);
  getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
  close(fd);
  return ntohs(sa.sin_port);
}

pid_t spawn(const std::vector<std::string>& args, const std::string& log) {
  pid_t pid = fork();
  if (pid == 0) {
    int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    std::vector<char*> argv;
    for (auto& a : args)
      argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execvp(argv[0], argv.data());
    _exit(127);
  }
  return pid;
}

void stop(pid_t pid) {
  if (pid <= 0)
    return;
  kill(pid, SIGTERM);
  for (int i = 0; i < 300; ++i) {
    if (waitpid(pid, nullptr, WNOHANG) == pid)
      return;
    sleep_ms(10);
  }
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
}

std::string run_capture(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr)
    die("cannot run " + cmd);
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0)
    out.append(buf, n);
  if (pclose(p) != 0)
    die("failed: " + cmd);
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r'))
    out.pop_back();
  return out;
}

// -- servers under test -------------------------------------------------------

constexpr const char* bench_secret = "swload-bench-secret";

/// One server under test, started fresh for each target.
struct server {
  std::string target;
  pid_t node_pid = -1; // switchyard node (or nats-server for "nats")
  pid_t nats_pid = -1; // nats-server behind a switchyard node
  int ws_port = 0;     // where clients connect
  int http_port = 0;   // switchyard: POST /v1/publish
  int nats_port = 0;   // NATS TCP for the publisher
  bool is_nats() const {
    return target == "nats";
  }
  bool via_nats() const {
    return target != "switchyard";
  }

  proc_stat stat() const {
    return read_proc(node_pid);
  }

  proc_stat nats_stat() const {
    return nats_pid > 0 ? read_proc(nats_pid) : proc_stat{};
  }

  void start(const options& o) {
    auto wait_port = [](int port, const char* what) {
      for (int i = 0; i < 500; ++i) {
        if (port_open(port))
          return;
        sleep_ms(10);
      }
      die(std::string{"server did not open its port: "} + what);
    };
    auto start_nats = [&](bool websocket) {
      nats_port = free_port();
      std::string conf = "/tmp/swload-nats-" + std::to_string(getpid())
        + ".conf";
      std::ofstream f(conf);
      f << "listen: 127.0.0.1:" << nats_port << "\n"
        << "max_payload: 1048576\n";
      if (websocket) {
        ws_port = free_port();
        f << "websocket {\n  host: 127.0.0.1\n  port: " << ws_port
          << "\n  no_tls: true\n}\n";
      }
      f.close();
      auto pid = spawn({o.nats_bin, "-c", conf}, "/tmp/swload-nats.log");
      wait_port(nats_port, "nats-server");
      if (websocket)
        wait_port(ws_port, "nats-server websocket");
      return pid;
    };
    if (target == "nats") {
      node_pid = start_nats(true);
      return;
    }
    if (target == "switchyard-nats")
      nats_pid = start_nats(false);
    ws_port = http_port = free_port();
    std::vector<std::string> args{o.switchyard_bin,
                                  "--port",
                                  std::to_string(ws_port),
                                  "--jwt-secret",
                                  bench_secret,
                                  "--max-connections-per-user",
                                  "100000000",
                                  "--max-inbound-rate",
                                  "100000",
                                  "--outbound-queue-limit",
                                  "16777216",
                                  "--io-threads",
                                  std::to_string(o.io_threads),
                                  "--actor-threads",
                                  std::to_string(o.actor_threads),
                                  "--log-level",
                                  "warn"};
    if (target == "switchyard-nats") {
      args.push_back("--nats");
      args.push_back("nats://127.0.0.1:" + std::to_string(nats_port));
    }
    for (auto& a : split(o.extra_args, ' '))
      args.push_back(a);
    node_pid = spawn(args, "/tmp/swload-switchyard.log");
    wait_port(ws_port, "switchyard");
  }

  void stop_all() {
    stop(node_pid);
    stop(nats_pid);
    node_pid = nats_pid = -1;
  }
};

// -- client connections
// ---------------------------------------------------------

enum class cstate { connecting, upgrading, handshaking, ready, dead };

/// Counters one client process reports.
struct stats {
  uint64_t received = 0;
  uint64_t duplicates = 0;
  uint64_t errors = 0;
  uint64_t closed = 0;
  uint64_t ready = 0;
  uint64_t ready_ns_first = 0;
  uint64_t ready_ns_last = 0;
  uint64_t close_codes[8] = {}; // 4408, 4409, 4429, 1001, 4401, other, -, -
  histogram latency;
};

struct conn {
  int fd = -1;
  cstate state = cstate::connecting;
  std::string out;
  size_t out_off = 0;
  std::string in;
  std::string nats_buf; // NATS protocol bytes across frames
  std::vector<std::string> patterns;
  size_t oks = 0;
  std::string token;
  std::vector<uint8_t> seen; // smoke: seq numbers received
};

/// Encodes a masked client frame. The key is zero: the frame is masked as
/// RFC 6455 requires (mask bit set) without spending generator CPU on XOR.
void ws_client_frame(std::string& out, uint8_t opcode, std::string_view p) {
  out.push_back(static_cast<char>(0x80 | opcode));
  auto n = p.size();
  if (n < 126) {
    out.push_back(static_cast<char>(0x80 | n));
  } else if (n <= 0xFFFF) {
    out.push_back(static_cast<char>(0x80 | 126));
    out.push_back(static_cast<char>(n >> 8));
    out.push_back(static_cast<char>(n & 0xFF));
  } else {
    out.push_back(static_cast<char>(0x80 | 127));
    for (int s = 56; s >= 0; s -= 8)
      out.push_back(static_cast<char>((static_cast<uint64_t>(n) >> s) & 0xFF));
  }
  out.append(4, '\0');
  out.append(p.data(), p.size());
}

/// Reads `"key":<digits>` from a JSON text.
bool find_u64(std::string_view s, std::string_view key, uint64_t& out) {
  auto pos = s.find(key);
  if (pos == std::string_view::npos)
    return false;
  pos += key.size();
  uint64_t v = 0;
  bool any = false;
  while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
    v = v * 10 + static_cast<uint64_t>(s[pos] - '0');
    ++pos;
    any = true;
  }
  out = v;
  return any;
}

/// One client process: connections on one epoll loop.
class client_set {
public:
  client_set(const options& o, const server& srv, bool smoke_track)
    : o_(o), srv_(srv), track_(smoke_track) {
    ep_ = epoll_create1(0);
  }

  ~client_set() {
    for (auto& c : conns_)
      if (c.fd >= 0)
        close(c.fd);
    close(ep_);
  }

  /// Adds a connection that subscribes `patterns` with `token`.
  void add(std::vector<std::string> patterns, std::string token) {
    conn c;
    c.patterns = std::move(patterns);
    c.token = std::move(token);
    if (track_)
      c.seen.assign(static_cast<size_t>(o_.smoke_events) + 1, 0);
    conns_.push_back(std::move(c));
  }

  size_t size() const {
    return conns_.size();
  }

  /// Opens connections, at most `window` handshakes in flight at once.
  void open_all(size_t window) {
    window_ = window;
    next_open_ = 0;
    open_more();
  }

  bool all_settled() const {
    return st_.ready + st_.closed + failed_ >= conns_.size();
  }

  /// Runs the loop for up to `ms` milliseconds.
  void poll(int ms) {
    epoll_event evs[256];
    int n = epoll_wait(ep_, evs, 256, ms);
    for (int i = 0; i < n; ++i) {
      auto idx = evs[i].data.u32;
      auto& c = conns_[idx];
      if (evs[i].events & (EPOLLERR | EPOLLHUP)) {
        if (c.state != cstate::dead) {
          if (c.state != cstate::ready)
            ++failed_;
          else
            ++st_.closed;
          kill_conn(idx);
        }
        continue;
      }
      if (evs[i].events & EPOLLOUT)
        on_writable(idx);
      if (evs[i].events & EPOLLIN)
        on_readable(idx);
    }
  }

  stats& st() {
    return st_;
  }

  size_t failed() const {
    return failed_;
  }

  /// Smoke mode: (missing, duplicates) over `events` expected per pattern.
  std::pair<uint64_t, uint64_t> smoke_result(int events) const {
    uint64_t missing = 0;
    for (auto& c : conns_)
      for (int s = 1; s <= events; ++s)
        if (c.seen[static_cast<size_t>(s)] == 0)
          ++missing;
    return {missing, st_.duplicates};
  }

private:
  void open_more() {
    while (next_open_ < conns_.size() && in_flight_ < window_) {
      open_one(next_open_++);
    }
  }

  void open_one(size_t idx) {
    auto& c = conns_[idx];
    c.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (c.fd < 0) {
      ++failed_;
      c.state = cstate::dead;
      return;
    }
    int one = 1;
    setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    auto& ip = o_.source_ips[idx % o_.source_ips.size()];
    if (ip != "127.0.0.1") {
      sockaddr_in local{};
      local.sin_family = AF_INET;
      inet_pton(AF_INET, ip.c_str(), &local.sin_addr);
      bind(c.fd, reinterpret_cast<sockaddr*>(&local), sizeof(local));
    }
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<uint16_t>(srv_.ws_port));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connect(c.fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa));
    c.state = cstate::upgrading;
    std::string path = srv_.is_nats() ? "/" : "/v1/ws?token=" + c.token;
    c.out = "GET " + path
      + " HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: "
        "dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT;
    ev.data.u32 = static_cast<uint32_t>(idx);
    epoll_ctl(ep_, EPOLL_CTL_ADD, c.fd, &ev);
    ++in_flight_;
  }

  void kill_conn(size_t idx) {
    auto& c = conns_[idx];
    if (c.state != cstate::ready && c.state != cstate::dead && in_flight_ > 0) {
      --in_flight_;
      open_more();
    }
    c.state = cstate::dead;
    if (c.fd >= 0) {
      epoll_ctl(ep_, EPOLL_CTL_DEL, c.fd, nullptr);
      close(c.fd);
      c.fd = -1;
    }
  }

  void send(size_t idx, std::string_view bytes) {
    auto& c = conns_[idx];
    bool was_empty = c.out.size() == c.out_off;
    c.out.append(bytes.data(), bytes.size());
    if (was_empty)
      on_writable(idx);
  }

  void on_writable(size_t idx) {
    auto& c = conns_[idx];
    while (c.out_off < c.out.size()) {
      auto n = ::send(c.fd, c.out.data() + c.out_off, c.out.size() - c.out_off,
                      MSG_NOSIGNAL);
      if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
          break;
        return;
      }
      c.out_off += static_cast<size_t>(n);
    }
    epoll_event ev{};
    ev.data.u32 = static_cast<uint32_t>(idx);
    if (c.out_off == c.out.size()) {
      c.out.clear();
      c.out_off = 0;
      ev.events = EPOLLIN;
    } else {
      ev.events = EPOLLIN | EPOLLOUT;
    }
    epoll_ctl(ep_, EPOLL_CTL_MOD, c.fd, &ev);
  }

  void on_readable(size_t idx) {
    auto& c = conns_[idx];
    for (;;) {
      auto n = recv(c.fd, buf_, sizeof(buf_), 0);
      if (n > 0) {
        c.in.append(buf_, static_cast<size_t>(n));
        if (static_cast<size_t>(n) < sizeof(buf_))
          break;
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        break;
      // EOF or error.
      if (c.state == cstate::ready)
        ++st_.closed;
      else if (c.state != cstate::dead)
        ++failed_;
      kill_conn(idx);
      return;
    }
    process(idx);
  }

  void mark_ready(size_t idx) {
    auto& c = conns_[idx];
    c.state = cstate::ready;
    ++st_.ready;
    auto t = now_ns();
    if (st_.ready_ns_first == 0)
      st_.ready_ns_first = t;
    st_.ready_ns_last = t;
    if (in_flight_ > 0)
      --in_flight_;
    open_more();
  }

  void process(size_t idx) {
    auto& c = conns_[idx];
    size_t pos = 0;
    if (c.state == cstate::upgrading) {
      auto end = c.in.find("\r\n\r\n");
      if (end == std::string::npos)
        return;
      if (c.in.compare(0, 12, "HTTP/1.1 101") != 0) {
        ++failed_;
        std::fprintf(stderr, "swload: upgrade refused: %.80s\n", c.in.c_str());
        kill_conn(idx);
        return;
      }
      pos = end + 4;
      c.state = cstate::handshaking;
    }
    // Server frames: unmasked.
    while (c.state != cstate::dead) {
      if (c.in.size() - pos < 2)
        break;
      auto* p = reinterpret_cast<const uint8_t*>(c.in.data() + pos);
      uint8_t op = p[0] & 0x0F;
      uint64_t len = p[1] & 0x7F;
      size_t hdr = 2;
      if (len == 126) {
        if (c.in.size() - pos < 4)
          break;
        len = (uint64_t{p[2]} << 8) | p[3];
        hdr = 4;
      } else if (len == 127) {
        if (c.in.size() - pos < 10)
          break;
        len = 0;
        for (int i = 0; i < 8; ++i)
          len = (len << 8) | p[2 + i];
        hdr = 10;
      }
      if (c.in.size() - pos < hdr + len)
        break;
      std::string_view payload{c.in.data() + pos + hdr,
                               static_cast<size_t>(len)};
      pos += hdr + len;
      on_frame(idx, op, payload);
    }
    if (c.state == cstate::dead)
      return;
    c.in.erase(0, pos);
  }

  void on_frame(size_t idx, uint8_t op, std::string_view payload) {
    auto& c = conns_[idx];
    if (op == 0x9) { // ping
      std::string pong;
      ws_client_frame(pong, 0xA, payload);
      send(idx, pong);
      return;
    }
    if (op == 0x8) { // close
      uint16_t code = payload.size() >= 2
        ? static_cast<uint16_t>((static_cast<uint8_t>(payload[0]) << 8)
                                | static_cast<uint8_t>(payload[1]))
        : 1005;
      int slot = code == 4408 ? 0
        : code == 4409        ? 1
        : code == 4429        ? 2
        : code == 1001        ? 3
        : code == 4401        ? 4
                              : 5;
      ++st_.close_codes[slot];
      if (c.state == cstate::ready)
        ++st_.closed;
      else
        ++failed_;
      kill_conn(idx);
      return;
    }
    if (op != 0x1 && op != 0x2 && op != 0x0)
      return;
    if (srv_.is_nats())
      on_nats_bytes(idx, payload);
    else
      on_switchyard_text(idx, payload);
  }

  void on_event_payload(size_t idx, std::string_view data) {
    uint64_t t = 0;
    uint64_t seq = 0;
    if (!find_u64(data, "\"t\":", t))
      return;
    find_u64(data, "\"s\":", seq);
    auto now = now_ns();
    ++st_.received;
    st_.latency.record(now > t ? now - t : 0);
    if (track_) {
      auto& c = conns_[idx];
      if (seq < c.seen.size()) {
        if (c.seen[seq] != 0)
          ++st_.duplicates;
        c.seen[seq] = 1;
      }
    }
  }

  void on_switchyard_text(size_t idx, std::string_view text) {
    auto& c = conns_[idx];
    if (text.compare(0, 15, "{\"type\":\"event\"") == 0) {
      on_event_payload(idx, text);
      return;
    }
    if (text.find("\"type\":\"welcome\"") != std::string_view::npos) {
      std::string frames;
      for (size_t i = 0; i < c.patterns.size(); ++i)
        ws_client_frame(frames, 0x1,
                        "{\"type\":\"subscribe\",\"id\":\"" + std::to_string(i)
                          + "\",\"topic\":\"" + c.patterns[i] + "\"}");
      if (c.patterns.empty())
        mark_ready(idx);
      else
        send(idx, frames);
      return;
    }
    if (text.find("\"type\":\"ok\"") != std::string_view::npos) {
      if (++c.oks == c.patterns.size() && c.state == cstate::handshaking)
        mark_ready(idx);
      return;
    }
    if (text.find("\"type\":\"error\"") != std::string_view::npos) {
      ++st_.errors;
      if (st_.errors < 5)
        std::fprintf(stderr, "swload: server error: %.*s\n",
                     static_cast<int>(text.size()), text.data());
    }
  }

  void on_nats_bytes(size_t idx, std::string_view bytes) {
    auto& c = conns_[idx];
    c.nats_buf.append(bytes.data(), bytes.size());
    size_t pos = 0;
    for (;;) {
      auto eol = c.nats_buf.find("\r\n", pos);
      if (eol == std::string::npos)
        break;
      std::string_view line{c.nats_buf.data() + pos, eol - pos};
      if (line.compare(0, 4, "MSG ") == 0) {
        auto sp = line.rfind(' ');
        size_t n = std::stoul(std::string{line.substr(sp + 1)});
        if (c.nats_buf.size() < eol + 2 + n + 2)
          break; // payload not complete yet
        on_event_payload(idx, std::string_view{c.nats_buf.data() + eol + 2, n});
        pos = eol + 2 + n + 2;
        continue;
      }
      if (line.compare(0, 4, "PING") == 0) {
        std::string f;
        ws_client_frame(f, 0x2, "PONG\r\n");
        send(idx, f);
      } else if (line.compare(0, 4, "PONG") == 0) {
        if (c.state == cstate::handshaking)
          mark_ready(idx);
      } else if (line.compare(0, 4, "INFO") == 0) {
        std::string proto = "CONNECT {\"verbose\":false,\"pedantic\":false,"
                            "\"protocol\":1,\"echo\":false}\r\n";
        for (size_t i = 0; i < c.patterns.size(); ++i)
          proto += "SUB " + c.patterns[i] + " " + std::to_string(i + 1)
            + "\r\n";
        proto += "PING\r\n";
        std::string f;
        ws_client_frame(f, 0x2, proto);
        send(idx, f);
      } else if (line.compare(0, 4, "-ERR") == 0) {
        ++st_.errors;
        std::fprintf(stderr, "swload: nats error: %.*s\n",
                     static_cast<int>(line.size()), line.data());
      }
      pos = eol + 2;
    }
    c.nats_buf.erase(0, pos);
  }

  const options& o_;
  const server& srv_;
  bool track_;
  int ep_;
  std::vector<conn> conns_;
  stats st_;
  size_t failed_ = 0;
  size_t next_open_ = 0;
  size_t in_flight_ = 0;
  size_t window_ = 256;
  char buf_[65536];
};

// -- publisher
// ------------------------------------------------------------------

/// The org of `topic` (`events.<org>.…`).
std::string org_of(const std::string& topic) {
  auto begin = topic.find('.') + 1;
  return topic.substr(begin, topic.find('.', begin) - begin);
}

/// Publishes events: NATS TCP for nats-server and Switchyard on NATS,
/// pipelined HTTP POST /v1/publish for Switchyard's in-process bus, with
/// the token of each topic's org (tokens publish inside their org only).
class publisher {
public:
  publisher(const options& o, const server& srv,
            std::unordered_map<std::string, std::string> tokens)
    : o_(o), srv_(srv), tokens_(std::move(tokens)) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(
      static_cast<uint16_t>(srv.via_nats() ? srv.nats_port : srv.http_port));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0)
      die("publisher cannot connect");
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (srv.via_nats()) {
      std::string connect_line = "CONNECT {\"verbose\":false,\"pedantic\":"
                                 "false,\"protocol\":1,\"echo\":false}\r\n";
      write_all(connect_line);
    }
    fcntl(fd_, F_SETFL, O_NONBLOCK);
    pad_.assign(static_cast<size_t>(std::max(0, o.payload - 40)), 'x');
  }

  ~publisher() {
    close(fd_);
  }

  /// Queues one event on `topic` with sequence number `seq`.
  void publish(const std::string& topic, uint64_t seq) {
    char data[128];
    auto t = now_ns();
    int n = std::snprintf(data, sizeof(data), "{\"t\":%llu,\"s\":%llu,\"p\":\"",
                          static_cast<unsigned long long>(t),
                          static_cast<unsigned long long>(seq));
    std::string json{data, static_cast<size_t>(n)};
    json += pad_;
    json += "\"}";
    if (srv_.target == "nats") {
      out_ += "PUB " + topic + " " + std::to_string(json.size()) + "\r\n";
      out_ += json;
      out_ += "\r\n";
    } else if (srv_.target == "switchyard-nats") {
      auto env = msgpack_envelope(t, seq);
      out_ += "PUB " + topic + " " + std::to_string(env.size()) + "\r\n";
      out_ += env;
      out_ += "\r\n";
    } else {
      std::string body = "{\"topic\":\"" + topic + "\",\"data\":" + json + "}";
      out_ += "POST /v1/publish HTTP/1.1\r\nHost: 127.0.0.1\r\n"
              "Authorization: Bearer "
        + tokens_.at(org_of(topic)) + "\r\nContent-Length: "
        + std::to_string(body.size()) + "\r\n\r\n" + body;
      ++http_in_flight_;
    }
    ++published_;
  }

  /// Writes what is queued and reads replies; returns false on failure.
  bool pump() {
    while (!out_.empty()) {
      auto n = ::send(fd_, out_.data(), out_.size(), MSG_NOSIGNAL);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        break;
      if (n <= 0)
        return false;
      out_.erase(0, static_cast<size_t>(n));
    }
    char buf[65536];
    for (;;) {
      auto n = recv(fd_, buf, sizeof(buf), 0);
      if (n <= 0)
        break;
      in_.append(buf, static_cast<size_t>(n));
    }
    if (!srv_.via_nats()) {
      // Count HTTP status lines; anything but 202 is an error.
      size_t pos;
      while ((pos = in_.find("HTTP/1.1 ")) != std::string::npos
             && in_.size() >= pos + 12) {
        if (in_.compare(pos + 9, 3, "202") != 0)
          ++errors_;
        --http_in_flight_;
        in_.erase(0, pos + 12);
      }
    } else {
      if (in_.find("-ERR") != std::string::npos)
        ++errors_;
      if (in_.find("PING") != std::string::npos) {
        out_ += "PONG\r\n";
      }
      in_.clear();
    }
    return true;
  }

  /// HTTP publishes whose reply has not arrived.
  uint64_t backlog() const {
    return http_in_flight_ + out_.size() / 256;
  }

  uint64_t published() const {
    return published_;
  }

  uint64_t errors() const {
    return errors_;
  }

private:
  /// {"source":"bench","data":<json>} in msgpack, the data map hand-built:
  /// {"t": uint64, "s": uint64, "p": str}.
  std::string msgpack_envelope(uint64_t t, uint64_t seq) {
    std::string m;
    auto str = [&](std::string_view s) {
      if (s.size() < 32) {
        m.push_back(static_cast<char>(0xa0 | s.size()));
      } else if (s.size() < 256) {
        m.push_back(static_cast<char>(0xd9));
        m.push_back(static_cast<char>(s.size()));
      } else {
        m.push_back(static_cast<char>(0xda));
        m.push_back(static_cast<char>(s.size() >> 8));
        m.push_back(static_cast<char>(s.size() & 0xFF));
      }
      m.append(s.data(), s.size());
    };
    auto u64 = [&](uint64_t v) {
      m.push_back(static_cast<char>(0xcf));
      for (int s = 56; s >= 0; s -= 8)
        m.push_back(static_cast<char>((v >> s) & 0xFF));
    };
    m.push_back(static_cast<char>(0x82)); // map of 2
    str("source");
    str("bench");
    str("data");
    m.push_back(static_cast<char>(0x83)); // map of 3
    str("t");
    u64(t);
    str("s");
    u64(seq);
    str("p");
    str(pad_);
    return m;
  }

  void write_all(const std::string& s) {
    size_t off = 0;
    while (off < s.size()) {
      auto n = ::send(fd_, s.data() + off, s.size() - off, MSG_NOSIGNAL);
      if (n <= 0)
        die("publisher write failed");
      off += static_cast<size_t>(n);
    }
  }

  const options& o_;
  const server& srv_;
  std::unordered_map<std::string, std::string> tokens_;
  int fd_;
  std::string out_;
  std::string in_;
  std::string pad_;
  uint64_t published_ = 0;
  uint64_t http_in_flight_ = 0;
  uint64_t errors_ = 0;
};

// -- client processes and the control protocol
// ------------------------------------

/// What a client process reports to the parent, as one binary record.
struct report {
  uint64_t received, duplicates, errors, closed, ready, failed;
  uint64_t ready_first, ready_last, missing;
  uint64_t close_codes[8];
  histogram latency;
};

void write_full(int fd, const void* data, size_t n) {
  auto* p = static_cast<const char*>(data);
  while (n > 0) {
    auto w = write(fd, p, n);
    if (w <= 0) {
      if (errno == EINTR)
        continue;
      _exit(3);
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
}

bool read_full(int fd, void* data, size_t n) {
  auto* p = static_cast<char*>(data);
  while (n > 0) {
    auto r = read(fd, p, n);
    if (r <= 0) {
      if (r < 0 && errno == EINTR)
        continue;
      return false;
    }
    p += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

/// A forked client process, driven over two pipes.
struct child {
  pid_t pid = -1;
  int ctl = -1;    // parent -> child commands
  int result = -1; // child -> parent reports
};

/// One connection to open: its patterns and token.
struct conn_plan {
  std::vector<std::string> patterns;
  std::string token;
};

std::unique_ptr<report> make_report(client_set& cs, bool with_smoke,
                                    int events) {
  auto r = std::make_unique<report>();
  auto& st = cs.st();
  r->received = st.received;
  r->duplicates = st.duplicates;
  r->errors = st.errors;
  r->closed = st.closed;
  r->ready = st.ready;
  r->failed = cs.failed();
  r->ready_first = st.ready_ns_first;
  r->ready_last = st.ready_ns_last;
  r->missing = with_smoke ? cs.smoke_result(events).first : 0;
  std::copy(std::begin(st.close_codes), std::end(st.close_codes),
            r->close_codes);
  r->latency = st.latency;
  return r;
}

[[noreturn]] void child_main(const options& o, const server& srv,
                             std::vector<conn_plan> plan, int ctl, int result) {
  client_set cs(o, srv, o.smoke);
  for (auto& p : plan)
    cs.add(std::move(p.patterns), std::move(p.token));
  cs.open_all(static_cast<size_t>(o.storm_window));
  while (!cs.all_settled())
    cs.poll(5);
  auto ready = make_report(cs, false, 0);
  write_full(result, ready.get(), sizeof(report));
  fcntl(ctl, F_SETFL, O_NONBLOCK);
  for (;;) {
    cs.poll(2);
    char cmd;
    auto n = read(ctl, &cmd, 1);
    if (n == 0)
      _exit(0); // parent gone
    if (n < 0)
      continue;
    if (cmd == 'Q')
      _exit(0);
    auto r = make_report(cs, cmd == 'S', o.smoke_events);
    write_full(result, r.get(), sizeof(report));
    if (cmd == 'R') { // reset the measured counters
      cs.st().received = 0;
      cs.st().duplicates = 0;
      cs.st().latency = histogram{};
    }
  }
}

/// The client processes of one run.
class fleet {
public:
  /// Forks `o.procs` processes; connection i goes to process i % procs.
  fleet(const options& o, const server& srv, std::vector<conn_plan> plan)
    : o_(o) {
    auto procs = static_cast<size_t>(std::min<int>(
      o.procs, static_cast<int>(std::max<size_t>(1, plan.size()))));
    std::vector<std::vector<conn_plan>> shares(procs);
    for (size_t i = 0; i < plan.size(); ++i)
      shares[i % procs].push_back(std::move(plan[i]));
    for (auto& share : shares)
      if (share.size() > 19000)
        std::fprintf(stderr,
                     "swload: %zu connections in one process exceed the "
                     "20,000-file limit here; raise --procs\n",
                     share.size());
    started_ = now_ns();
    std::fflush(nullptr);
    for (auto& share : shares) {
      int c2p[2];
      int p2c[2];
      if (pipe(c2p) != 0 || pipe(p2c) != 0)
        die("pipe failed");
      pid_t pid = fork();
      if (pid == 0) {
        close(c2p[0]);
        close(p2c[1]);
        child_main(o, srv, std::move(share), p2c[0], c2p[1]);
      }
      close(c2p[1]);
      close(p2c[0]);
      children_.push_back(child{pid, p2c[1], c2p[0]});
    }
    // Each child reports once when all its connections settled.
    ready_ = collect_reports();
  }

  ~fleet() {
    for (auto& c : children_) {
      char q = 'Q';
      write_full(c.ctl, &q, 1);
      close(c.ctl);
      close(c.result);
      waitpid(c.pid, nullptr, 0);
    }
  }

  /// Asks every child for its counters ('R' resets them, 'P' peeks, 'S'
  /// adds the smoke check) and merges the answers.
  report ask(char cmd) {
    for (auto& c : children_)
      write_full(c.ctl, &cmd, 1);
    return *collect_reports();
  }

  const report& ready() const {
    return *ready_;
  }

  uint64_t started() const {
    return started_;
  }

  /// CPU ticks of this process and every child.
  uint64_t cpu_ticks() const {
    uint64_t t = read_proc(getpid()).cpu_ticks;
    for (auto& c : children_)
      t += read_proc(c.pid).cpu_ticks;
    return t;
  }

private:
  std::unique_ptr<report> collect_reports() {
    auto total = std::make_unique<report>();
    std::memset(static_cast<void*>(total.get()), 0, sizeof(report));
    auto part = std::make_unique<report>();
    for (auto& c : children_) {
      if (!read_full(c.result, part.get(), sizeof(report)))
        die("a client process died");
      total->received += part->received;
      total->duplicates += part->duplicates;
      total->errors += part->errors;
      total->closed += part->closed;
      total->ready += part->ready;
      total->failed += part->failed;
      total->missing += part->missing;
      if (part->ready_first != 0
          && (total->ready_first == 0
              || part->ready_first < total->ready_first))
        total->ready_first = part->ready_first;
      total->ready_last = std::max(total->ready_last, part->ready_last);
      for (int i = 0; i < 8; ++i)
        total->close_codes[i] += part->close_codes[i];
      total->latency.merge(part->latency);
    }
    return total;
  }

  const options& o_;
  std::vector<child> children_;
  std::unique_ptr<report> ready_;
  uint64_t started_ = 0;
};

// -- results
// ----------------------------------------------------------------------

struct row {
  std::string scenario;
  std::string target;
  uint64_t conns = 0;
  double rate = 0;
  double delivered_per_s = 0;
  double ratio = 0;
  double p50_us = 0, p99_us = 0, p999_us = 0, max_us = 0;
  double server_cpu = 0, nats_cpu = 0, gen_cpu = 0;
  double rss_mib = 0;
  double kib_per_conn = 0;
  double conns_per_s = 0;
  uint64_t closed = 0, failed = 0, errors = 0;
  bool saturated = false;
};

void print_header(const std::string& scenario) {
  std::printf("\n== %s ==\n", scenario.c_str());
  std::printf(
    "%-16s %7s %9s %12s %6s %9s %9s %9s %9s %6s %6s %6s %8s %8s %9s %5s\n",
    "target", "conns", "rate/s", "deliv/s", "ratio", "p50us", "p99us",
    "p99.9us", "maxus", "srv%", "nats%", "gen%", "rssMiB", "KiB/conn", "conn/s",
    "lost");
}

void print_row(const row& r) {
  std::printf("%-16s %7llu %9.0f %12.0f %6.3f %9.0f %9.0f %9.0f %9.0f %6.0f "
              "%6.0f %6.0f %8.1f %8.2f %9.0f %5llu%s\n",
              r.target.c_str(), static_cast<unsigned long long>(r.conns),
              r.rate, r.delivered_per_s, r.ratio, r.p50_us, r.p99_us, r.p999_us,
              r.max_us, r.server_cpu, r.nats_cpu, r.gen_cpu, r.rss_mib,
              r.kib_per_conn, r.conns_per_s,
              static_cast<unsigned long long>(r.closed + r.failed),
              r.saturated ? "  <- saturated" : "");
  std::fflush(stdout);
}

void write_json(const options& o, const row& r) {
  if (o.json_out.empty())
    return;
  std::ofstream f(o.json_out, std::ios::app);
  f << "{\"scenario\":\"" << r.scenario << "\",\"target\":\"" << r.target
    << "\",\"conns\":" << r.conns << ",\"rate\":" << r.rate
    << ",\"delivered_per_s\":" << r.delivered_per_s << ",\"ratio\":" << r.ratio
    << ",\"p50_us\":" << r.p50_us << ",\"p99_us\":" << r.p99_us
    << ",\"p999_us\":" << r.p999_us << ",\"max_us\":" << r.max_us
    << ",\"server_cpu\":" << r.server_cpu << ",\"nats_cpu\":" << r.nats_cpu
    << ",\"gen_cpu\":" << r.gen_cpu << ",\"rss_mib\":" << r.rss_mib
    << ",\"kib_per_conn\":" << r.kib_per_conn
    << ",\"conns_per_s\":" << r.conns_per_s
    << ",\"lost\":" << (r.closed + r.failed) << ",\"errors\":" << r.errors
    << ",\"saturated\":" << (r.saturated ? "true" : "false") << "}\n";
}

// -- scenarios
// --------------------------------------------------------------------

std::string mint(const options& o, const std::string& sub,
                 const std::string& org, bool publisher) {
  std::string cmd = "'" + o.switchyard_bin + "' token --jwt-secret "
    + bench_secret + " --sub " + sub + " --org " + org + " --ttl 24h";
  if (publisher)
    cmd += " --pub 'events." + org + ".>'";
  return run_capture(cmd);
}

/// Publisher tokens for the orgs of `topics`, by org; none unless the
/// publisher talks HTTP to Switchyard.
std::unordered_map<std::string, std::string>
publisher_tokens(const options& o, const server& srv,
                 const std::vector<std::string>& topics) {
  std::unordered_map<std::string, std::string> tokens;
  if (srv.target == "switchyard")
    for (auto& topic : topics)
      if (auto org = org_of(topic); tokens.count(org) == 0)
        tokens.emplace(org, mint(o, "bench_pub", org, true));
  return tokens;
}

double ticks_to_pct(uint64_t ticks, double seconds) {
  return 100.0 * static_cast<double>(ticks)
    / static_cast<double>(sysconf(_SC_CLK_TCK)) / seconds;
}

/// Publishes at `rate` for `seconds` over `topics`; returns events sent.
uint64_t publish_for(publisher& pub, double rate, double seconds,
                     const std::vector<std::string>& topics, uint64_t& seq) {
  auto t0 = now_ns();
  auto end = t0 + static_cast<uint64_t>(seconds * 1e9);
  uint64_t sent = 0;
  for (;;) {
    auto now = now_ns();
    if (now >= end)
      break;
    auto due
      = static_cast<uint64_t>(rate * static_cast<double>(now - t0) / 1e9);
    while (sent < due && pub.backlog() < 4096) {
      ++seq;
      pub.publish(topics[seq % topics.size()], seq);
      ++sent;
    }
    if (!pub.pump())
      die("publisher connection lost");
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  return sent;
}

/// Runs rate steps against a ready fleet; `per_event` deliveries per event.
void rate_steps(const options& o, const server& srv, fleet& fl,
                const std::vector<std::string>& topics, double per_event,
                const std::string& scenario, uint64_t conns) {
  publisher pub(o, srv, publisher_tokens(o, srv, topics));
  uint64_t seq = 0;
  std::vector<double> rates = o.rates;
  if (rates.empty())
    rates = {1000};
  double best = 0;
  for (size_t step = 0; step < rates.size(); ++step) {
    double rate = rates[step];
    publish_for(pub, rate, o.warmup, topics, seq);
    fl.ask('R');
    auto s0 = srv.stat();
    auto n0 = srv.nats_stat();
    auto g0 = fl.cpu_ticks();
    auto t0 = now_ns();
    auto sent = publish_for(pub, rate, o.duration, topics, seq);
    auto elapsed = static_cast<double>(now_ns() - t0) / 1e9;
    auto rep = fl.ask('R');
    auto s1 = srv.stat();
    auto n1 = srv.nats_stat();
    auto g1 = fl.cpu_ticks();
    row r;
    r.scenario = scenario;
    r.target = srv.target;
    r.conns = conns;
    r.rate = static_cast<double>(sent) / elapsed;
    r.delivered_per_s = static_cast<double>(rep.received) / elapsed;
    r.ratio = sent == 0 ? 0
                        : static_cast<double>(rep.received)
        / (static_cast<double>(sent) * per_event);
    r.p50_us = static_cast<double>(rep.latency.percentile(50)) / 1e3;
    r.p99_us = static_cast<double>(rep.latency.percentile(99)) / 1e3;
    r.p999_us = static_cast<double>(rep.latency.percentile(99.9)) / 1e3;
    r.max_us = static_cast<double>(rep.latency.max) / 1e3;
    r.server_cpu = ticks_to_pct(s1.cpu_ticks - s0.cpu_ticks, elapsed);
    r.nats_cpu = ticks_to_pct(n1.cpu_ticks - n0.cpu_ticks, elapsed);
    r.gen_cpu = ticks_to_pct(g1 - g0, elapsed);
    r.rss_mib = static_cast<double>(s1.rss_kib) / 1024.0;
    r.closed = rep.closed;
    r.errors = rep.errors + pub.errors();
    // Saturated: deliveries fall behind the offered load, or the offered
    // load itself could not be sent, or the latency tail runs away.
    r.saturated = r.ratio < 0.97 || r.rate < 0.97 * rate || r.p99_us > 200'000
      || rep.closed > 0;
    print_row(r);
    write_json(o, r);
    best = std::max(best, r.delivered_per_s);
    if (o.saturate && step + 1 == rates.size() && !r.saturated
        && rates.size() < 24)
      rates.push_back(rate * 2);
    // Let the queues drain before the next step.
    publish_for(pub, 0, 0.5, topics, seq);
    fl.ask('R');
  }
}

std::vector<conn_plan> fanout_plan(const options& o, const server& srv,
                                   int subs, const std::string& topic) {
  auto token = srv.is_nats() ? "" : mint(o, "bench_user", "org_bench", false);
  return std::vector<conn_plan>(static_cast<size_t>(subs),
                                conn_plan{{topic}, token});
}

std::string resource_topic(int org, int i) {
  return "events.org_" + std::to_string(org) + ".svc.task.done.r"
    + std::to_string(i);
}

std::vector<conn_plan> per_org_plan(const options& o, const server& srv,
                                    int conns, bool watchers) {
  std::vector<conn_plan> plan;
  std::map<int, std::string> tokens;
  for (int i = 0; i < conns; ++i) {
    int org = i / o.per_org;
    if (!srv.is_nats() && tokens.count(org) == 0)
      tokens[org] = mint(o, "bench_user", "org_" + std::to_string(org), false);
    conn_plan p{{o.shared && !watchers
                   ? "events.org_" + std::to_string(org) + ".>"
                   : resource_topic(org, i)},
                tokens[org]};
    if (watchers && i % o.per_org == 0)
      p.patterns.push_back("events.org_" + std::to_string(org)
                           + ".svc.task.done.*");
    plan.push_back(std::move(p));
  }
  return plan;
}

int run_smoke(const options& o, server& srv) {
  auto subs = std::min(o.subs, 300);
  const std::string topic = "events.org_bench.svc.task.done.smoke";
  fleet fl(o, srv, fanout_plan(o, srv, subs, topic));
  if (fl.ready().ready != static_cast<uint64_t>(subs)) {
    std::printf("%-16s FAIL: %llu of %d subscribers ready\n",
                srv.target.c_str(),
                static_cast<unsigned long long>(fl.ready().ready), subs);
    return 1;
  }
  publisher pub(o, srv, publisher_tokens(o, srv, {topic}));
  for (int s = 1; s <= o.smoke_events; ++s)
    pub.publish(topic, static_cast<uint64_t>(s));
  auto expected = static_cast<uint64_t>(subs) * o.smoke_events;
  report rep{};
  auto deadline = now_ns() + 30'000'000'000ull;
  while (now_ns() < deadline) {
    pub.pump();
    rep = fl.ask('P');
    if (rep.received >= expected)
      break;
    sleep_ms(50);
  }
  sleep_ms(200); // a duplicate would arrive right behind the last event
  rep = fl.ask('S');
  bool ok = rep.received == expected && rep.missing == 0 && rep.duplicates == 0
    && rep.closed == 0 && pub.errors() == 0;
  std::printf("%-16s %s: %d subscribers x %d events: received %llu of %llu, "
              "missing %llu, duplicates %llu, closed %llu, publish errors "
              "%llu\n",
              srv.target.c_str(), ok ? "ok" : "FAIL", subs, o.smoke_events,
              static_cast<unsigned long long>(rep.received),
              static_cast<unsigned long long>(expected),
              static_cast<unsigned long long>(rep.missing),
              static_cast<unsigned long long>(rep.duplicates),
              static_cast<unsigned long long>(rep.closed),
              static_cast<unsigned long long>(pub.errors()));
  return ok ? 0 : 1;
}

void run_scenario(const options& o, server& srv) {
  if (o.scenario == "fanout") {
    const std::string topic = "events.org_bench.svc.task.done.t1";
    fleet fl(o, srv, fanout_plan(o, srv, o.subs, topic));
    if (fl.ready().ready < static_cast<uint64_t>(o.subs))
      std::fprintf(stderr, "swload: only %llu of %d subscribers ready\n",
                   static_cast<unsigned long long>(fl.ready().ready), o.subs);
    rate_steps(o, srv, fl, {topic}, static_cast<double>(fl.ready().ready),
               "fanout", fl.ready().ready);
  } else if (o.scenario == "many-topics") {
    auto plan = per_org_plan(o, srv, o.conns, true);
    std::vector<std::string> topics;
    for (int i = 0; i < o.conns; ++i)
      topics.push_back(resource_topic(i / o.per_org, i));
    fleet fl(o, srv, std::move(plan));
    rate_steps(o, srv, fl, topics, 2.0, "many-topics", fl.ready().ready);
  } else if (o.scenario == "idle" || o.scenario == "storm") {
    auto plan = per_org_plan(o, srv, o.conns, false);
    sleep_ms(300);
    auto before = srv.stat();
    auto t0 = now_ns();
    fleet fl(o, srv, std::move(plan));
    auto& ready = fl.ready();
    row r;
    r.scenario = o.scenario;
    r.target = srv.target;
    r.conns = ready.ready;
    r.failed = ready.failed;
    r.closed = ready.closed;
    if (o.scenario == "storm") {
      auto secs = static_cast<double>(ready.ready_last - t0) / 1e9;
      r.conns_per_s = secs > 0 ? static_cast<double>(ready.ready) / secs : 0;
    }
    // Measure the steady state: past the 10 s request timeouts the node
    // keeps for each session's first requests.
    sleep_ms(o.scenario == "idle" ? 12000 : 2000);
    auto after = srv.stat();
    r.rss_mib = static_cast<double>(after.rss_kib) / 1024.0;
    if (ready.ready > 0)
      r.kib_per_conn = static_cast<double>(after.rss_kib - before.rss_kib)
        / static_cast<double>(ready.ready);
    if (o.scenario == "idle") {
      // Hold the connections through heartbeats; none may drop.
      auto s0 = srv.stat();
      auto end = now_ns() + static_cast<uint64_t>(o.duration * 1e9);
      while (now_ns() < end)
        sleep_ms(100);
      auto rep = fl.ask('P');
      r.closed = rep.closed;
      r.server_cpu = ticks_to_pct(srv.stat().cpu_ticks - s0.cpu_ticks,
                                  o.duration);
    }
    print_row(r);
    write_json(o, r);
  } else {
    die("unknown scenario " + o.scenario);
  }
}

} // namespace

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  auto o = parse(argc, argv);
  rlimit lim;
  getrlimit(RLIMIT_NOFILE, &lim);
  lim.rlim_cur = lim.rlim_max;
  setrlimit(RLIMIT_NOFILE, &lim);
  if (!o.smoke)
    print_header(o.scenario);
  int failures = 0;
  for (auto& target : o.targets) {
    if (target != "switchyard" && target != "switchyard-nats"
        && target != "nats")
      die("unknown target " + target);
    server srv;
    srv.target = target;
    srv.start(o);
    if (o.smoke)
      failures += run_smoke(o, srv);
    else
      run_scenario(o, srv);
    srv.stop_all();
  }
  return failures == 0 ? 0 : 1;
}
