// swload: WebSocket load generator for Switchyard and nats-server.
//
// One invocation starts every server under test (Switchyard on its
// in-process bus, Switchyard on NATS, nats-server's WebSocket listener),
// warms each with an unmeasured run, then alternates over the targets for
// --rounds rounds (A, B, C, A, B, C, ...) and prints the per-round figures
// and their medians with min-max (and JSON lines with --json), so results are
// ratios taken on one machine at one time. Clients are plain non-blocking
// sockets on epoll, split over --procs processes (each process may open at
// most ~20k files here), reconnected for every run.
//
// Fan-out is measured closed-loop (--closed-loop: at most --window
// deliveries per subscriber in flight, the publisher as fast as that allows)
// or
// open-loop at fixed rates (--rates, for latency at equal load). Scenarios:
// fanout, many-topics, idle, storm; --smoke checks correctness (every event
// delivered once per subscriber) and never speed.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
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

/// Events in flight in closed-loop mode, chosen where nats-server delivered
/// most: its throughput rose with the window up to 256 events (more events
/// per WebSocket frame) and no further at 512, at 1k and at 10k subscribers
/// (tests/bench/notes.md has the figures). Closed-loop latency is the
/// window's own queue; latency at equal load comes from the open-loop steps.
constexpr int default_window = 256;

/// Closed loop: at most this many publisher connections (--publishers).
constexpr int max_publishers = 8;

struct options {
  std::string scenario = "fanout";
  std::vector<std::string> servers{"switchyard", "switchyard-nats", "nats"};
  std::vector<std::string> subprotocols{"json"};
  int subs = 1000;           // fanout subscribers
  int conns = 1000;          // many-topics / idle / storm connections
  int per_org = 100;         // many-topics: connections per org
  std::vector<double> rates; // events/s; empty: scenario default
  bool saturate = false;     // keep doubling the rate until it saturates
  bool closed_loop = false;  // fanout: bounded events in flight, no rate
  int window = default_window;
  int publishers = 1;         // closed loop: publisher connections
  int rounds = 3;             // alternations over the targets
  double duration = 5.0;      // seconds per measured step
  double warmup = 1.0;        // seconds before each step's measurement
  double server_warmup = 3.0; // unmeasured seconds per server at start
  int procs = 2;              // client processes
  int payload = 200;          // bytes of event data
  int storm_window = 256;     // storm: connects in flight per process
  bool shared = false;        // idle/storm: one shared pattern per org
  bool smoke = false;         // correctness check mode
  int smoke_events = 100;
  bool self_test = false; // unit checks of the parsers, no servers
  std::string json_out;
  std::vector<std::string> source_ips{"127.0.0.1"};
  std::string switchyard_bin;
  std::string nats_bin = "nats-server";
  int io_threads = 1;
  int actor_threads = 1;
  std::string extra_args; // appended to the switchyard command line
  int nodes = 1;          // switchyard-nats: clustered nodes, clients spread
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
  std::printf(
    "usage: swload [options]\n"
    "  --scenario fanout|many-topics|idle|storm   (default fanout)\n"
    "  --targets switchyard,switchyard-nats,nats  servers to run, in order\n"
    "                      (switchyard-history: switchyard-nats with\n"
    "                      JetStream and --history, every event stored)\n"
    "  --nodes N           switchyard-nats as a cluster of N nodes on one\n"
    "                      nats-server, subscribers spread round-robin; its\n"
    "                      CPU and RSS are the sums over the nodes (default "
    "1)\n"
    "  --subprotocol json,ndjson,msgpack  Switchyard wire formats; each is a\n"
    "                      target of its own (switchyard/ndjson; default "
    "json)\n"
    "  --subs N            fanout subscribers (default 1000)\n"
    "  --conns N           connections for many-topics, idle, storm\n"
    "  --per-org N         many-topics: connections per org (default 100)\n"
    "  --shared            idle/storm: subscribe events.<org>.> (shared by\n"
    "                      the org's connections) instead of an own topic\n"
    "  --closed-loop       fanout: publish as fast as the window allows\n"
    "  --window N          closed loop: deliveries in flight per subscriber\n"
    "                      (default %d)\n"
    "  --publishers N      closed loop: publisher connections, event s on\n"
    "                      connection s %% N (default 1, at most 8)\n"
    "  --rates R1,R2,...   open loop: offered events/s per step\n"
    "  --saturate          double the rate from the last of --rates until\n"
    "                      delivery falls behind (saturating rate)\n"
    "  --rounds N          alternations over the targets (default 3)\n"
    "  --duration S        measured seconds per step (default 5)\n"
    "  --warmup S          unmeasured seconds before each step (default 1)\n"
    "  --server-warmup S   unmeasured run per server at start (default 3)\n"
    "  --procs P           client processes (default 2)\n"
    "  --payload B         event data bytes (default 200)\n"
    "  --source-ips A,B    local addresses to bind (127.0.0.0/8 past 64k)\n"
    "  --smoke             small run; exit 1 unless every event arrives once\n"
    "                      (with --closed-loop: through the window)\n"
    "  --json FILE         append one JSON line per result\n"
    "  --switchyard PATH   node binary (default: next to swload "
    "../switchyard)\n"
    "  --nats-server PATH  nats-server binary\n"
    "  --io-threads N, --actor-threads N   node threads (default 1 and 1)\n"
    "  --node-args '...'   extra node flags\n",
    default_window);
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
    else if (a == "--nodes")
      o.nodes = std::stoi(next());
    else if (a == "--targets")
      o.servers = split(next(), ',');
    else if (a == "--subprotocol")
      o.subprotocols = split(next(), ',');
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
    else if (a == "--closed-loop")
      o.closed_loop = true;
    else if (a == "--window")
      o.window = std::max(1, std::stoi(next()));
    else if (a == "--publishers")
      o.publishers = std::clamp(std::stoi(next()), 1, max_publishers);
    else if (a == "--rounds")
      o.rounds = std::max(1, std::stoi(next()));
    else if (a == "--duration")
      o.duration = std::stod(next());
    else if (a == "--warmup")
      o.warmup = std::stod(next());
    else if (a == "--server-warmup")
      o.server_warmup = std::stod(next());
    else if (a == "--procs")
      o.procs = std::max(1, std::stoi(next()));
    else if (a == "--payload")
      o.payload = std::stoi(next());
    else if (a == "--storm-window")
      o.storm_window = std::stoi(next());
    else if (a == "--smoke")
      o.smoke = true;
    else if (a == "--self-test")
      o.self_test = true;
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
  for (auto& s : o.servers)
    if (s != "switchyard" && s != "switchyard-nats" && s != "switchyard-history"
        && s != "nats")
      die("unknown target " + s);
  if (o.nodes < 1 || o.nodes > 8)
    die("--nodes takes 1 to 8");
  for (auto& p : o.subprotocols)
    if (p != "json" && p != "ndjson" && p != "msgpack")
      die("unknown subprotocol " + p);
  if (o.procs > 64)
    die("at most 64 client processes");
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

// -- msgpack ------------------------------------------------------------------

/// A small msgpack reader: only what swload needs from Switchyard's
/// messages, skipping every other value. Each call reports whether the
/// buffer held the whole value (`ok`), ended inside it (`more`), or was not
/// msgpack (`bad`).
namespace mp {

enum class status { ok, more, bad };

struct reader {
  const uint8_t* p;
  const uint8_t* end;

  explicit reader(std::string_view s)
    : p(reinterpret_cast<const uint8_t*>(s.data())), end(p + s.size()) {}

  size_t left() const {
    return static_cast<size_t>(end - p);
  }

  /// Reads an `n`-byte big-endian unsigned integer.
  status be(size_t n, uint64_t& v) {
    if (left() < n)
      return status::more;
    v = 0;
    for (size_t i = 0; i < n; ++i)
      v = (v << 8) | p[i];
    p += n;
    return status::ok;
  }

  status bytes(uint64_t n) {
    if (left() < n)
      return status::more;
    p += n;
    return status::ok;
  }
};

bool is_str(uint8_t b) {
  return (b >= 0xa0 && b <= 0xbf) || (b >= 0xd9 && b <= 0xdb);
}

bool is_map(uint8_t b) {
  return (b >= 0x80 && b <= 0x8f) || b == 0xde || b == 0xdf;
}

bool is_num(uint8_t b) {
  return b <= 0x7f || b >= 0xe0 || (b >= 0xca && b <= 0xd3);
}

constexpr int max_depth = 32;

status skip(reader& r, int depth = 0);

status skip_n(reader& r, uint64_t n, int depth) {
  if (depth > max_depth)
    return status::bad;
  for (uint64_t i = 0; i < n; ++i)
    if (auto s = skip(r, depth + 1); s != status::ok)
      return s;
  return status::ok;
}

/// Skips a value whose length follows the type byte in `len_bytes` bytes;
/// `extra` bytes (ext type) come before the body.
status skip_sized(reader& r, size_t len_bytes, uint64_t extra) {
  uint64_t n = 0;
  if (auto s = r.be(len_bytes, n); s != status::ok)
    return s;
  return r.bytes(n + extra);
}

status skip(reader& r, int depth) {
  if (r.left() == 0)
    return status::more;
  uint8_t b = *r.p++;
  if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3)
    return status::ok;
  if (b <= 0x8f)
    return skip_n(r, 2 * uint64_t{b & 0x0fu}, depth);
  if (b <= 0x9f)
    return skip_n(r, b & 0x0fu, depth);
  if (b <= 0xbf)
    return r.bytes(b & 0x1fu);
  uint64_t n = 0;
  status s = status::ok;
  switch (b) {
    case 0xc4:
    case 0xd9: return skip_sized(r, 1, 0);
    case 0xc5:
    case 0xda: return skip_sized(r, 2, 0);
    case 0xc6:
    case 0xdb: return skip_sized(r, 4, 0);
    case 0xc7: return skip_sized(r, 1, 1);
    case 0xc8: return skip_sized(r, 2, 1);
    case 0xc9: return skip_sized(r, 4, 1);
    case 0xca:
    case 0xce:
    case 0xd2: return r.bytes(4);
    case 0xcb:
    case 0xcf:
    case 0xd3: return r.bytes(8);
    case 0xcc:
    case 0xd0: return r.bytes(1);
    case 0xcd:
    case 0xd1: return r.bytes(2);
    case 0xd4: return r.bytes(2);
    case 0xd5: return r.bytes(3);
    case 0xd6: return r.bytes(5);
    case 0xd7: return r.bytes(9);
    case 0xd8: return r.bytes(17);
    case 0xdc:
    case 0xdd:
      s = r.be(b == 0xdc ? 2 : 4, n);
      return s == status::ok ? skip_n(r, n, depth) : s;
    case 0xde:
    case 0xdf:
      s = r.be(b == 0xde ? 2 : 4, n);
      return s == status::ok ? skip_n(r, 2 * n, depth) : s;
    default: return status::bad; // 0xc1 is never used
  }
}

/// Reads a string (the caller checked `is_str`).
status str(reader& r, std::string_view& out) {
  uint8_t b = *r.p++;
  uint64_t n = b & 0x1fu;
  if (b >= 0xd9)
    if (auto s = r.be(size_t{1} << (b - 0xd9), n); s != status::ok)
      return s;
  if (r.left() < n)
    return status::more;
  out = {reinterpret_cast<const char*>(r.p), static_cast<size_t>(n)};
  r.p += n;
  return status::ok;
}

/// Reads a map header (the caller checked `is_map`).
status map_size(reader& r, uint64_t& n) {
  uint8_t b = *r.p++;
  if (b <= 0x8f) {
    n = b & 0x0fu;
    return status::ok;
  }
  return r.be(b == 0xde ? 2 : 4, n);
}

/// Reads a number (the caller checked `is_num`) as an unsigned integer;
/// negative values read as 0.
status number(reader& r, uint64_t& out) {
  uint8_t b = *r.p++;
  if (b <= 0x7f) {
    out = b;
    return status::ok;
  }
  if (b >= 0xe0) {
    out = 0;
    return status::ok;
  }
  uint64_t v = 0;
  if (b == 0xca || b == 0xcb) {
    auto s = r.be(b == 0xca ? 4 : 8, v);
    if (s != status::ok)
      return s;
    double d;
    if (b == 0xca) {
      float f;
      auto bits = static_cast<uint32_t>(v);
      std::memcpy(&f, &bits, sizeof(f));
      d = f;
    } else {
      std::memcpy(&d, &v, sizeof(d));
    }
    out = d > 0 ? static_cast<uint64_t>(d) : 0;
    return status::ok;
  }
  bool is_signed = b >= 0xd0;
  size_t n = size_t{1} << (b - (is_signed ? 0xd0 : 0xcc));
  if (auto s = r.be(n, v); s != status::ok)
    return s;
  out = is_signed && (v >> (8 * n - 1)) != 0 ? 0 : v;
  return status::ok;
}

void put_str(std::string& m, std::string_view s) {
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
}

void put_u64(std::string& m, uint64_t v) {
  m.push_back(static_cast<char>(0xcf));
  for (int s = 56; s >= 0; s -= 8)
    m.push_back(static_cast<char>((v >> s) & 0xFF));
}

} // namespace mp

// -- Switchyard messages ------------------------------------------------------

/// What swload reads from one Switchyard message (a JSON object or a
/// msgpack map) or NATS MSG: its type and error code, and for events the
/// publisher's stamp `t` and sequence number `s` from the data.
struct message {
  std::string_view type;
  std::string_view code;
  uint64_t t = 0;
  uint64_t s = 0;
  bool stamped = false;
};

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

/// Reads `"key":"<value>"` from a JSON text (values without escapes).
std::string_view find_str(std::string_view s, std::string_view key) {
  auto pos = s.find(key);
  if (pos == std::string_view::npos)
    return {};
  pos += key.size();
  auto end = s.find('"', pos);
  return end == std::string_view::npos ? std::string_view{}
                                       : s.substr(pos, end - pos);
}

/// Reads the publisher's stamp (`t` and `s`) from the flat object at
/// `brace`: string values without escapes and unsigned integers, in any
/// order (the node prints keys sorted). False on anything else.
bool read_stamp(std::string_view s, size_t brace, message& m) {
  bool t = false;
  bool seq = false;
  auto pos = brace + 1;
  while (pos + 4 < s.size() && s[pos] == '"') {
    auto key_end = s.find('"', pos + 1);
    if (key_end == std::string_view::npos || key_end + 1 >= s.size()
        || s[key_end + 1] != ':')
      return false;
    auto key = s.substr(pos + 1, key_end - pos - 1);
    pos = key_end + 2;
    if (pos < s.size() && s[pos] == '"') {
      auto close = s.find('"', pos + 1);
      if (close == std::string_view::npos)
        return false;
      pos = close + 1;
    } else {
      uint64_t v = 0;
      auto start = pos;
      while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9')
        v = v * 10 + static_cast<uint64_t>(s[pos++] - '0');
      if (pos == start)
        return false;
      if (key == "t") {
        m.t = v;
        t = true;
      } else if (key == "s") {
        m.s = v;
        seq = true;
      }
    }
    if (pos < s.size() && s[pos] == ',')
      ++pos;
    else
      break;
  }
  return m.stamped = t && seq;
}

message json_message(std::string_view obj) {
  message m;
  // Fast path for the node's own field order: the type first, and the data
  // object the only nested object, so found with one memchr; searching for
  // quoted keys runs memchr for every quote, which took a third of the
  // generator's CPU.
  constexpr std::string_view event_head = "{\"type\":\"event\"";
  if (obj.substr(0, event_head.size()) == event_head) {
    m.type = "event";
    auto brace = obj.find('{', 1);
    if (brace != std::string_view::npos && read_stamp(obj, brace, m))
      return m;
  } else {
    m.type = find_str(obj, "\"type\":\"");
  }
  if (m.type == "event") {
    auto d = obj.find("\"data\":");
    if (d != std::string_view::npos) {
      auto data = obj.substr(d);
      m.stamped = find_u64(data, "\"t\":", m.t);
      find_u64(data, "\"s\":", m.s);
    }
  } else if (m.type == "error") {
    m.code = find_str(obj, "\"code\":\"");
  }
  return m;
}

/// Reads the map at `r` entry by entry: `value(key)` reads (or skips) each
/// value, `key` empty when it is not a string.
template<class F>
mp::status for_each_entry(mp::reader& r, F value) {
  uint64_t n = 0;
  if (auto s = mp::map_size(r, n); s != mp::status::ok)
    return s;
  for (uint64_t i = 0; i < n; ++i) {
    if (r.left() == 0)
      return mp::status::more;
    std::string_view key;
    if (!mp::is_str(*r.p)) {
      if (auto s = mp::skip(r); s != mp::status::ok)
        return s;
    } else if (auto s = mp::str(r, key); s != mp::status::ok) {
      return s;
    }
    if (r.left() == 0)
      return mp::status::more;
    if (auto s = value(key); s != mp::status::ok)
      return s;
  }
  return mp::status::ok;
}

mp::status read_data(mp::reader& r, message& m) {
  return for_each_entry(r, [&](std::string_view key) {
    bool stamp = key == "t" && mp::is_num(*r.p);
    bool seq = key == "s" && mp::is_num(*r.p);
    auto s = stamp ? mp::number(r, m.t)
      : seq        ? mp::number(r, m.s)
                   : mp::skip(r);
    m.stamped = m.stamped || (stamp && s == mp::status::ok);
    return s;
  });
}

/// Reads one msgpack map message from `r`.
mp::status msgpack_message(mp::reader& r, message& m) {
  if (r.left() == 0)
    return mp::status::more;
  if (!mp::is_map(*r.p))
    return mp::status::bad;
  return for_each_entry(r, [&](std::string_view key) {
    auto b = *r.p;
    if (key == "type" && mp::is_str(b))
      return mp::str(r, m.type);
    if (key == "code" && mp::is_str(b))
      return mp::str(r, m.code);
    if (key == "data" && mp::is_map(b))
      return read_data(r, m);
    return mp::skip(r);
  });
}

// -- the receive path ---------------------------------------------------------

/// How a target's server frames its messages.
enum class wire {
  nats,    // NATS protocol in binary frames, split anywhere
  json,    // switchyard.v1.json: one JSON object per text frame
  ndjson,  // switchyard.v1.ndjson: JSON objects separated by '\n'
  msgpack, // switchyard.v1.msgpack: msgpack maps back to back
};

wire wire_of(const std::string& subprotocol) {
  return subprotocol == "ndjson" ? wire::ndjson
    : subprotocol == "msgpack"   ? wire::msgpack
                                 : wire::json;
}

/// Decodes one connection's bytes from the server as each read returns
/// them: WebSocket frames, and in their payloads NATS protocol or Switchyard
/// messages. Across reads it keeps only what is incomplete: a frame header, a
/// control payload, or one protocol line, JSON object or msgpack map; buffers
/// that grew for a large unit are released once it is consumed.
///
/// A Sink has `stopped()`, `event(t, s)`, `message(const message&)`,
/// `nats_line(line)`, `control(opcode, payload)` and `frame(events)` (once
/// per data message, with the events it completed).
class stream_decoder {
public:
  explicit stream_decoder(wire w) : wire_(w) {}

  /// False on a protocol error.
  template<class Sink>
  bool feed(std::string_view bytes, Sink& sink) {
    while (!bytes.empty() && !sink.stopped()) {
      if (!in_payload_) {
        auto h = header(bytes);
        if (h < 0)
          return false;
        if (h == 0)
          return true;
        if (left_ == 0) {
          if (frame_op_ < 8 && !data({}, fin_, sink))
            return false;
          if (!frame_done(sink))
            return false;
          continue;
        }
      }
      auto take = static_cast<size_t>(std::min<uint64_t>(left_, bytes.size()));
      auto chunk = bytes.substr(0, take);
      bytes.remove_prefix(take);
      left_ -= take;
      if (frame_op_ >= 8)
        ctl_.append(chunk.data(), chunk.size());
      else if (!data(chunk, left_ == 0 && fin_, sink))
        return false;
      if (left_ == 0 && !frame_done(sink))
        return false;
    }
    return true;
  }

private:
  static constexpr size_t max_unit = 16u << 20;
  static constexpr size_t keep_capacity = 4096;

  /// 1 when a frame header is complete, 0 when more bytes are needed, -1
  /// when it is not a valid server frame.
  int header(std::string_view& bytes) {
    auto need = [this] {
      if (hdr_len_ < 2)
        return size_t{2};
      auto len = hdr_[1] & 0x7F;
      return size_t{2} + (len == 126 ? 2 : len == 127 ? 8 : 0);
    };
    while (hdr_len_ < need() && !bytes.empty()) {
      hdr_[hdr_len_++] = static_cast<uint8_t>(bytes.front());
      bytes.remove_prefix(1);
    }
    if (hdr_len_ < need())
      return 0;
    if ((hdr_[1] & 0x80) != 0)
      return -1; // server frames are never masked
    uint64_t len = hdr_[1] & 0x7F;
    if (len >= 126) {
      len = 0;
      for (size_t i = 2; i < hdr_len_; ++i)
        len = (len << 8) | hdr_[i];
    }
    frame_op_ = hdr_[0] & 0x0F;
    fin_ = (hdr_[0] & 0x80) != 0;
    hdr_len_ = 0;
    left_ = len;
    in_payload_ = true;
    if (frame_op_ >= 8 && len > 125)
      return -1;
    return 1;
  }

  template<class Sink>
  bool frame_done(Sink& sink) {
    in_payload_ = false;
    if (frame_op_ >= 8) {
      sink.control(frame_op_, ctl_);
      ctl_.clear();
      return true;
    }
    if (fin_) {
      sink.frame(events_);
      events_ = 0;
    }
    return true;
  }

  void release_carry() {
    carry_.clear();
    if (carry_.capacity() > keep_capacity)
      std::string{}.swap(carry_);
  }

  bool hold(std::string_view chunk) {
    carry_.append(chunk.data(), chunk.size());
    return carry_.size() <= max_unit;
  }

  template<class Sink>
  void deliver(const message& m, Sink& sink) {
    if (m.type == "event") {
      if (m.stamped) {
        ++events_;
        sink.event(m.t, m.s);
      }
    } else {
      sink.message(m);
    }
  }

  /// A chunk of a data message's payload; `end`: the message ends with it.
  template<class Sink>
  bool data(std::string_view chunk, bool end, Sink& sink) {
    if (chunk.empty() && !end)
      return true;
    switch (wire_) {
      case wire::nats: return nats(chunk, sink);
      case wire::json: return json(chunk, end, sink);
      case wire::ndjson: return ndjson(chunk, end, sink);
      case wire::msgpack: return msgpack(chunk, end, sink);
    }
    return false;
  }

  template<class Sink>
  bool json(std::string_view chunk, bool end, Sink& sink) {
    if (!end)
      return hold(chunk);
    if (chunk.empty() && carry_.empty())
      return true;
    if (carry_.empty()) {
      deliver(json_message(chunk), sink);
      return true;
    }
    if (!hold(chunk))
      return false;
    deliver(json_message(carry_), sink);
    release_carry();
    return true;
  }

  template<class Sink>
  bool ndjson(std::string_view chunk, bool end, Sink& sink) {
    while (!sink.stopped()) {
      auto nl = chunk.find('\n');
      if (nl == std::string_view::npos) {
        if (!end)
          return hold(chunk);
        nl = chunk.size();
      }
      auto piece = chunk.substr(0, nl);
      if (!carry_.empty()) {
        if (!hold(piece))
          return false;
        deliver(json_message(carry_), sink);
        release_carry();
      } else if (!piece.empty()) {
        deliver(json_message(piece), sink);
      }
      if (nl == chunk.size())
        return true;
      chunk.remove_prefix(nl + 1);
    }
    return true;
  }

  template<class Sink>
  bool msgpack(std::string_view chunk, bool end, Sink& sink) {
    // A map begun in an earlier read: complete it from the front of this
    // chunk, copying only as much of the chunk as it needs.
    if (!carry_.empty()) {
      auto had = carry_.size();
      auto add = std::min(chunk.size(), size_t{2048});
      for (;;) {
        carry_.resize(had);
        carry_.append(chunk.data(), add);
        mp::reader r{carry_};
        message m;
        auto s = msgpack_message(r, m);
        if (s == mp::status::bad || carry_.size() > max_unit)
          return false;
        if (s == mp::status::ok) {
          deliver(m, sink);
          auto used = static_cast<size_t>(
            r.p - reinterpret_cast<const uint8_t*>(carry_.data()));
          chunk.remove_prefix(used - had);
          release_carry();
          break;
        }
        if (add == chunk.size())
          return !end; // all of it held: wait for the next read
        add = std::min(chunk.size(), add * 2);
      }
    }
    while (!chunk.empty() && !sink.stopped()) {
      mp::reader r{chunk};
      message m;
      auto s = msgpack_message(r, m);
      if (s == mp::status::bad)
        return false;
      if (s == mp::status::more)
        return !end && hold(chunk);
      deliver(m, sink);
      chunk.remove_prefix(static_cast<size_t>(
        r.p - reinterpret_cast<const uint8_t*>(chunk.data())));
    }
    return true;
  }

  template<class Sink>
  bool nats(std::string_view chunk, Sink& sink) {
    while (!chunk.empty() && !sink.stopped()) {
      if (msg_left_ > 0) {
        auto take
          = static_cast<size_t>(std::min<uint64_t>(msg_left_, chunk.size()));
        auto payload_left = msg_left_ > 2 ? msg_left_ - 2 : 0;
        auto to_head = static_cast<size_t>(
          std::min<uint64_t>({take, payload_left, sizeof(head_) - head_len_}));
        std::memcpy(head_ + head_len_, chunk.data(), to_head);
        head_len_ += to_head;
        msg_left_ -= take;
        chunk.remove_prefix(take);
        if (msg_left_ == 0) {
          std::string_view head{head_, head_len_};
          message m;
          m.type = "event";
          m.stamped = find_u64(head, "\"t\":", m.t);
          find_u64(head, "\"s\":", m.s);
          deliver(m, sink);
        }
        continue;
      }
      auto nl = chunk.find('\n');
      if (nl == std::string_view::npos)
        return hold(chunk);
      std::string_view line = chunk.substr(0, nl);
      if (!carry_.empty()) {
        if (!hold(line))
          return false;
        line = carry_;
      }
      chunk.remove_prefix(nl + 1);
      if (!line.empty() && line.back() == '\r')
        line.remove_suffix(1);
      bool ok = nats_line(line, sink);
      release_carry();
      if (!ok)
        return false;
    }
    return true;
  }

  template<class Sink>
  bool nats_line(std::string_view line, Sink& sink) {
    if (line.compare(0, 4, "MSG ") != 0) {
      sink.nats_line(line);
      return true;
    }
    auto sp = line.rfind(' ');
    uint64_t size = 0;
    if (sp + 1 >= line.size())
      return false;
    for (auto ch : line.substr(sp + 1)) {
      if (ch < '0' || ch > '9')
        return false;
      size = size * 10 + static_cast<uint64_t>(ch - '0');
    }
    msg_left_ = size + 2; // payload and its CRLF
    head_len_ = 0;
    return true;
  }

  wire wire_;
  uint8_t hdr_[10] = {};
  size_t hdr_len_ = 0;
  uint8_t frame_op_ = 0;
  bool fin_ = false;
  bool in_payload_ = false;
  uint64_t left_ = 0;     // payload bytes left in this frame
  uint32_t events_ = 0;   // events completed in this data message
  std::string ctl_;       // control frame payload
  std::string carry_;     // an incomplete unit
  uint64_t msg_left_ = 0; // NATS: bytes left of a MSG payload and its CRLF
  char head_[64] = {};    // NATS: the payload's start (stamp and sequence)
  size_t head_len_ = 0;
};

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

/// One server under test, started once and kept running across rounds.
struct server {
  std::string name;
  pid_t node_pid = -1; // switchyard node (or nats-server for "nats")
  pid_t nats_pid = -1; // nats-server behind a switchyard node
  int ws_port = 0;     // where clients connect
  int http_port = 0;   // switchyard: POST /v1/publish
  int nats_port = 0;   // NATS TCP for the publisher
  /// With --nodes N (switchyard-nats): the other N-1 nodes of the cluster,
  /// each bridged to the same nats-server; client i connects to node i % N.
  std::vector<pid_t> more_pids;
  std::vector<int> more_ports;

  int ws_port_of(size_t conn) const {
    auto i = conn % (more_ports.size() + 1);
    return i == 0 ? ws_port : more_ports[i - 1];
  }
  bool is_nats() const {
    return name == "nats";
  }
  bool via_nats() const {
    return name != "switchyard";
  }
  /// A node bridged to a nats-server (switchyard-nats, and
  /// switchyard-history: the same with JetStream and --history).
  bool bridged() const {
    return name == "switchyard-nats" || name == "switchyard-history";
  }

  /// CPU and RSS of the node, summed over every node of a cluster.
  proc_stat stat() const {
    auto st = read_proc(node_pid);
    for (auto pid : more_pids) {
      auto more = read_proc(pid);
      st.cpu_ticks += more.cpu_ticks;
      st.rss_kib += more.rss_kib;
    }
    return st;
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
    auto start_nats = [&](bool websocket, bool jetstream) {
      nats_port = free_port();
      std::string conf = "/tmp/swload-" + name + "-" + std::to_string(getpid())
        + ".conf";
      std::ofstream f(conf);
      f << "listen: 127.0.0.1:" << nats_port << "\n"
        << "max_payload: 1048576\n";
      if (jetstream) {
        auto dir = "/tmp/swload-" + name + "-" + std::to_string(getpid())
          + "-js";
        std::filesystem::remove_all(dir);
        f << "jetstream {\n  store_dir: \"" << dir << "\"\n}\n";
      }
      if (websocket) {
        ws_port = free_port();
        f << "websocket {\n  host: 127.0.0.1\n  port: " << ws_port
          << "\n  no_tls: true\n}\n";
      }
      f.close();
      auto pid = spawn({o.nats_bin, "-c", conf},
                       "/tmp/swload-" + name + "-nats.log");
      wait_port(nats_port, "nats-server");
      if (websocket)
        wait_port(ws_port, "nats-server websocket");
      return pid;
    };
    if (name == "nats") {
      node_pid = start_nats(true, false);
      return;
    }
    if (bridged())
      nats_pid = start_nats(false, name == "switchyard-history");
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
                                  "--io-threads",
                                  std::to_string(o.io_threads),
                                  "--actor-threads",
                                  std::to_string(o.actor_threads),
                                  "--log-level",
                                  "warn"};
    if (bridged()) {
      args.push_back("--nats");
      args.push_back("nats://127.0.0.1:" + std::to_string(nats_port));
    }
    if (name == "switchyard-history")
      args.push_back("--history");
    for (auto& a : split(o.extra_args, ' '))
      args.push_back(a);
    if (!bridged() || o.nodes == 1) {
      node_pid = spawn(args, "/tmp/swload-" + name + ".log");
      wait_port(ws_port, "switchyard");
      return;
    }
    // A cluster: every node seeded with the others.
    std::vector<int> cluster_ports;
    for (int i = 0; i < o.nodes; ++i)
      cluster_ports.push_back(free_port());
    for (int i = 0; i < o.nodes; ++i) {
      auto node_args = args;
      auto port = i == 0 ? ws_port : free_port();
      node_args[2] = std::to_string(port); // after "--port"
      std::string seeds;
      for (int j = 0; j < o.nodes; ++j)
        if (j != i)
          seeds += (seeds.empty() ? "" : ",") + std::string{"127.0.0.1:"}
            + std::to_string(cluster_ports[j]);
      for (auto a :
           {std::string{"--cluster-port"}, std::to_string(cluster_ports[i]),
            std::string{"--node-name"}, "n" + std::to_string(i + 1),
            std::string{"--cluster-seeds"}, seeds})
        node_args.push_back(a);
      auto pid
        = spawn(node_args,
                "/tmp/swload-" + name + "-n" + std::to_string(i + 1) + ".log");
      wait_port(port, "switchyard");
      if (i == 0) {
        node_pid = pid;
      } else {
        more_pids.push_back(pid);
        more_ports.push_back(port);
      }
    }
  }

  void stop_all() {
    stop(node_pid);
    for (auto pid : more_pids)
      stop(pid);
    stop(nats_pid);
    if (name == "switchyard-history")
      std::filesystem::remove_all("/tmp/swload-" + name + "-"
                                  + std::to_string(getpid()) + "-js");
    node_pid = nats_pid = -1;
    more_pids.clear();
    more_ports.clear();
  }
};

/// Reads Switchyard's write counters from /metrics: frames written and
/// socket writes.
std::pair<uint64_t, uint64_t> write_counters(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string body;
  if (connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) == 0) {
    std::string req = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      "Connection: close\r\n\r\n";
    if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL)
        == static_cast<ssize_t>(req.size())) {
      char buf[16384];
      ssize_t n;
      while ((n = recv(fd, buf, sizeof(buf), 0)) > 0)
        body.append(buf, static_cast<size_t>(n));
    }
  }
  close(fd);
  auto counter = [&](const std::string& name) -> uint64_t {
    auto pos = body.find("\n" + name + " ");
    return pos == std::string::npos
      ? 0
      : std::strtoull(body.c_str() + pos + name.size() + 2, nullptr, 10);
  };
  return {counter("switchyard_frames_written_total"),
          counter("switchyard_socket_writes_total")};
}

/// One measured target: a server and the wire its clients speak.
struct target {
  std::string name; // nats, switchyard/json, switchyard-nats/msgpack
  server* srv = nullptr;
  std::string subprotocol; // Switchyard only
  wire w = wire::nats;
};

// -- client connections -------------------------------------------------------

enum class cstate { connecting, upgrading, handshaking, ready, dead };

/// Close codes counted by slot; the last slot: closed without a close frame.
constexpr std::array<int, 6> close_code_slots{4408, 4409, 4429, 1001, 4401, 0};
constexpr size_t no_close_frame = close_code_slots.size();

/// Where the publisher reads how far the subscribers have come, in memory
/// shared by the publisher and the client processes (mapped before fork).
/// Each client process writes only its own slot; nobody takes a lock.
struct alignas(64) proc_slot {
  std::atomic<uint64_t> sum{0};  // sum of its live subscribers' last sequence
  std::atomic<uint64_t> live{0}; // its subscribers still connected
};

struct shared_state {
  alignas(64) std::atomic<uint64_t> published{0}; // highest sequence sent
  proc_slot slots[64];
};

/// How far the live subscribers of one process have come, kept in O(1) per
/// event: their number and the sum of the events each one has accounted
/// for (received, or skipped by a gap; counted from 0 with the events
/// published before it joined). With the publisher at sequence s,
/// `s * live - sum` deliveries are in flight: the closed loop bounds that
/// number, not the slowest subscriber's lag, so one subscriber served late
/// does not stall every other one.
class progress_tracker {
public:
  void add(uint64_t count) {
    sum_ += count;
    ++live_;
  }

  void remove(uint64_t count) {
    sum_ -= count;
    --live_;
  }

  void move(uint64_t delta) {
    sum_ += delta;
  }

  uint64_t sum() const {
    return sum_;
  }

  uint64_t live() const {
    return live_;
  }

private:
  uint64_t sum_ = 0;
  uint64_t live_ = 0;
};

/// Counters one client process reports.
struct stats {
  // Measured: reset at the start of each measurement.
  uint64_t received = 0;
  uint64_t frames = 0; // data messages received
  uint64_t bytes = 0;
  uint64_t reads = 0; // recv calls that returned data
  histogram latency;
  // Over the whole run.
  uint64_t duplicates = 0;
  uint64_t gaps = 0; // sequence numbers a subscriber skipped
  uint64_t errors = 0;
  uint64_t closed = 0;
  uint64_t ready = 0;
  uint64_t ready_ns_first = 0;
  uint64_t ready_ns_last = 0;
  uint64_t unnamed_protocol = 0; // json assumed: no Sec-WebSocket-Protocol
  uint64_t close_codes[close_code_slots.size() + 1] = {};
};

struct conn {
  explicit conn(wire w) : dec(w) {}
  int fd = -1;
  cstate state = cstate::connecting;
  std::string out;
  size_t out_off = 0;
  std::string in; // the upgrade response until it is complete
  stream_decoder dec;
  std::vector<std::string> patterns;
  size_t oks = 0;
  std::string token;
  /// Per publisher (sequence numbers s with s % publishers == i): the last
  /// one received, or where its stream stood when the connection joined.
  std::array<int64_t, max_publishers> last{};
  uint64_t count = 0;   // events accounted for (see progress_tracker)
  bool tracked = false; // counted in the process's progress
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

/// The value of header `name` (lower case, with the colon) in an HTTP head.
std::string header_value(std::string head, const std::string& name) {
  std::transform(head.begin(), head.end(), head.begin(), [](unsigned char ch) {
    return std::tolower(ch);
  });
  auto pos = head.find("\r\n" + name);
  if (pos == std::string::npos)
    return {};
  pos += 2 + name.size();
  auto end = head.find("\r\n", pos);
  auto v = head.substr(pos, end - pos);
  v.erase(0, v.find_first_not_of(" \t"));
  v.erase(v.find_last_not_of(" \t") + 1);
  return v;
}

/// One client process: connections on one epoll loop.
class client_set {
public:
  /// `track`: count each connection's sequence numbers (one topic per
  /// connection); `closed`: publish this process's progress in slot `slot` of
  /// `shm` (closed loop).
  client_set(const options& o, const target& t, bool track, bool closed,
             shared_state* shm, size_t slot)
    : o_(o),
      t_(t),
      track_(track),
      closed_(closed),
      streams_(closed ? o.publishers : 1),
      shm_(shm),
      slot_(slot) {
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
    conn c{t_.w};
    c.patterns = std::move(patterns);
    c.token = std::move(token);
    conns_.push_back(std::move(c));
  }

  /// Wakes `poll` when `fd` is readable.
  void watch(int fd) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u32 = ctl_id;
    epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &ev);
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

  /// Runs the loop for up to `ms` milliseconds; true if the watched fd is
  /// readable.
  bool poll(int ms) {
    epoll_event evs[256];
    int n = epoll_wait(ep_, evs, 256, ms);
    bool ctl = false;
    for (int i = 0; i < n; ++i) {
      auto idx = evs[i].data.u32;
      if (idx == ctl_id) {
        ctl = true;
        continue;
      }
      auto& c = conns_[idx];
      if (evs[i].events & (EPOLLERR | EPOLLHUP)) {
        if (c.state != cstate::dead)
          lost_conn(idx, no_close_frame);
        continue;
      }
      if (evs[i].events & EPOLLOUT)
        on_writable(idx);
      if (evs[i].events & EPOLLIN)
        on_readable(idx);
    }
    if (closed_) {
      auto& slot = shm_->slots[slot_];
      slot.sum.store(progress_.sum(), std::memory_order_release);
      slot.live.store(progress_.live(), std::memory_order_release);
    }
    return ctl;
  }

  stats& st() {
    return st_;
  }

  size_t failed() const {
    return failed_;
  }

  /// Events published but not (yet) received, summed over live subscribers.
  uint64_t tail() const {
    if (!track_)
      return 0;
    auto published = shm_->published.load(std::memory_order_acquire);
    uint64_t n = 0;
    for (auto& c : conns_)
      if (c.state == cstate::ready && published > c.count)
        n += published - c.count;
    return n;
  }

private:
  static constexpr uint32_t ctl_id = UINT32_MAX;
  static constexpr size_t keep_capacity = 4096;

  /// Forwards what a connection's decoder reads.
  struct sink {
    client_set& cs;
    size_t idx;
    bool stopped() const {
      return cs.conns_[idx].state == cstate::dead;
    }
    void event(uint64_t t, uint64_t s) {
      cs.on_event(idx, t, s);
    }
    void message(const struct message& m) {
      cs.on_message(idx, m);
    }
    void nats_line(std::string_view line) {
      cs.on_nats_line(idx, line);
    }
    void control(uint8_t op, std::string_view payload) {
      cs.on_control(idx, op, payload);
    }
    void frame(uint32_t) {
      ++cs.st_.frames;
    }
  };

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
    sa.sin_port = htons(static_cast<uint16_t>(t_.srv->ws_port_of(idx)));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connect(c.fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa));
    c.state = cstate::upgrading;
    bool nats = t_.srv->is_nats();
    std::string path = nats ? "/" : "/v1/ws?token=" + c.token;
    c.out = "GET " + path
      + " HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: "
        "dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";
    if (!nats)
      c.out += "Sec-WebSocket-Protocol: switchyard.v1." + t_.subprotocol
        + "\r\n";
    c.out += "\r\n";
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
    if (c.tracked)
      progress_.remove(c.count);
    c.tracked = false;
    c.state = cstate::dead;
    if (c.fd >= 0) {
      epoll_ctl(ep_, EPOLL_CTL_DEL, c.fd, nullptr);
      close(c.fd);
      c.fd = -1;
    }
  }

  /// The server ended the connection (close code slot `slot`).
  void lost_conn(size_t idx, size_t slot) {
    ++st_.close_codes[slot];
    if (conns_[idx].state == cstate::ready)
      ++st_.closed;
    else
      ++failed_;
    kill_conn(idx);
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
      if (c.out.capacity() > keep_capacity)
        std::string{}.swap(c.out);
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
        ++st_.reads;
        st_.bytes += static_cast<uint64_t>(n);
        // Every event of one read arrived at the same time: one clock read
        // per read, not per event (per event it took 14% of the generator).
        read_at_ = now_ns();
        consume(idx, {buf_, static_cast<size_t>(n)});
        if (c.state == cstate::dead || static_cast<size_t>(n) < sizeof(buf_))
          return;
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return;
      lost_conn(idx, no_close_frame); // EOF or error
      return;
    }
  }

  void consume(size_t idx, std::string_view bytes) {
    auto& c = conns_[idx];
    if (c.state == cstate::upgrading) {
      c.in.append(bytes.data(), bytes.size());
      auto end = c.in.find("\r\n\r\n");
      if (end == std::string::npos)
        return;
      if (!upgraded(idx, c.in.substr(0, end + 2)))
        return;
      std::string rest = c.in.substr(end + 4);
      std::string{}.swap(c.in);
      c.state = cstate::handshaking;
      consume(idx, rest);
      return;
    }
    sink s{*this, idx};
    if (!c.dec.feed(bytes, s)) {
      ++st_.errors;
      if (st_.errors < 5)
        std::fprintf(stderr, "swload: %s sent a malformed frame\n",
                     t_.name.c_str());
      lost_conn(idx, close_code_slots.size() - 1);
    }
  }

  /// Checks the upgrade response `head`; false if the connection failed.
  bool upgraded(size_t idx, const std::string& head) {
    auto fail = [&](const std::string& why) {
      ++failed_;
      std::fprintf(stderr, "swload: %s: %s\n", t_.name.c_str(), why.c_str());
      kill_conn(idx);
      return false;
    };
    if (head.compare(0, 12, "HTTP/1.1 101") != 0)
      return fail("upgrade refused: " + head.substr(0, 80));
    if (t_.srv->is_nats())
      return true;
    auto named = header_value(head, "sec-websocket-protocol:");
    auto want = "switchyard.v1." + t_.subprotocol;
    if (named.empty() && t_.subprotocol == "json") {
      // A node that predates subprotocols speaks json.
      ++st_.unnamed_protocol;
      return true;
    }
    if (named != want)
      return fail("asked for " + want + ", the server named '" + named + "'");
    return true;
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
    // Joins at what was published so far: it cannot receive earlier events.
    auto published
      = static_cast<int64_t>(shm_->published.load(std::memory_order_acquire));
    c.count = static_cast<uint64_t>(published);
    for (int64_t i = 0; i < streams_; ++i)
      c.last[static_cast<size_t>(i)] = published
        - ((published - i) % streams_ + streams_) % streams_;
    if (closed_) {
      c.tracked = true;
      progress_.add(c.count);
    }
    open_more();
  }

  void on_event(size_t idx, uint64_t t, uint64_t seq) {
    auto now = read_at_;
    ++st_.received;
    st_.latency.record(now > t ? now - t : 0);
    if (!track_)
      return;
    auto& c = conns_[idx];
    auto& last = c.last[seq % static_cast<uint64_t>(streams_)];
    auto s = static_cast<int64_t>(seq);
    if (s <= last) {
      ++st_.duplicates;
      return;
    }
    auto step = static_cast<uint64_t>((s - last) / streams_);
    st_.gaps += step - 1;
    c.count += step;
    if (c.tracked)
      progress_.move(step);
    last = s;
  }

  void on_control(size_t idx, uint8_t op, std::string_view payload) {
    if (op == 0x9) { // ping
      std::string pong;
      ws_client_frame(pong, 0xA, payload);
      send(idx, pong);
    } else if (op == 0x8) { // close
      int code = payload.size() >= 2 ? (static_cast<uint8_t>(payload[0]) << 8)
          | static_cast<uint8_t>(payload[1])
                                     : 1005;
      auto slot = static_cast<size_t>(
        std::find(close_code_slots.begin(), close_code_slots.end() - 1, code)
        - close_code_slots.begin());
      lost_conn(idx, slot);
    }
  }

  void on_message(size_t idx, const message& m) {
    auto& c = conns_[idx];
    if (m.type == "welcome") {
      std::string frames;
      for (size_t i = 0; i < c.patterns.size(); ++i) {
        auto id = std::to_string(i);
        if (t_.w == wire::msgpack) {
          std::string map{static_cast<char>(0x83)};
          mp::put_str(map, "type");
          mp::put_str(map, "subscribe");
          mp::put_str(map, "id");
          mp::put_str(map, id);
          mp::put_str(map, "topic");
          mp::put_str(map, c.patterns[i]);
          ws_client_frame(frames, 0x2, map);
        } else {
          ws_client_frame(frames, 0x1,
                          "{\"type\":\"subscribe\",\"id\":\"" + id
                            + "\",\"topic\":\"" + c.patterns[i] + "\"}");
        }
      }
      if (c.patterns.empty())
        mark_ready(idx);
      else
        send(idx, frames);
    } else if (m.type == "ok") {
      if (++c.oks == c.patterns.size() && c.state == cstate::handshaking)
        mark_ready(idx);
    } else if (m.type == "error") {
      ++st_.errors;
      if (st_.errors < 5)
        std::fprintf(stderr, "swload: %s: server error %.*s\n", t_.name.c_str(),
                     static_cast<int>(m.code.size()), m.code.data());
    }
  }

  void on_nats_line(size_t idx, std::string_view line) {
    auto& c = conns_[idx];
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
        proto += "SUB " + c.patterns[i] + " " + std::to_string(i + 1) + "\r\n";
      proto += "PING\r\n";
      std::string f;
      ws_client_frame(f, 0x2, proto);
      send(idx, f);
    } else if (line.compare(0, 4, "-ERR") == 0) {
      ++st_.errors;
      std::fprintf(stderr, "swload: nats error: %.*s\n",
                   static_cast<int>(line.size()), line.data());
    }
  }

  const options& o_;
  const target& t_;
  bool track_;
  bool closed_;
  /// Publisher streams whose sequence numbers arrive in order each.
  int64_t streams_;
  shared_state* shm_;
  size_t slot_;
  progress_tracker progress_;
  /// When the current read returned.
  uint64_t read_at_ = 0;
  int ep_;
  std::vector<conn> conns_;
  stats st_;
  size_t failed_ = 0;
  size_t next_open_ = 0;
  size_t in_flight_ = 0;
  size_t window_ = 256;
  char buf_[65536];
};

// -- publisher ----------------------------------------------------------------

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
    if (srv_.name == "nats") {
      out_ += "PUB " + topic + " " + std::to_string(json.size()) + "\r\n";
      out_ += json;
      out_ += "\r\n";
    } else if (srv_.bridged()) {
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
    while (out_off_ < out_.size()) {
      auto n = ::send(fd_, out_.data() + out_off_, out_.size() - out_off_,
                      MSG_NOSIGNAL);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        break;
      if (n <= 0)
        return false;
      out_off_ += static_cast<size_t>(n);
    }
    if (out_off_ == out_.size()) {
      out_.clear();
      out_off_ = 0;
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
    return http_in_flight_ + (out_.size() - out_off_) / 256;
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
    m.push_back(static_cast<char>(0x82)); // map of 2
    mp::put_str(m, "source");
    mp::put_str(m, "bench");
    mp::put_str(m, "data");
    m.push_back(static_cast<char>(0x83)); // map of 3
    mp::put_str(m, "t");
    mp::put_u64(m, t);
    mp::put_str(m, "s");
    mp::put_u64(m, seq);
    mp::put_str(m, "p");
    mp::put_str(m, pad_);
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
  size_t out_off_ = 0;
  std::string in_;
  std::string pad_;
  uint64_t published_ = 0;
  uint64_t http_in_flight_ = 0;
  uint64_t errors_ = 0;
};

// -- client processes and the control protocol --------------------------------

/// What a client process reports to the parent, as one binary record.
struct report {
  uint64_t received, frames, bytes, reads;
  uint64_t duplicates, gaps, tail, errors, closed, ready, failed;
  uint64_t ready_first, ready_last, unnamed_protocol;
  uint64_t rss_kib, rss_growth_kib; // max over processes
  uint64_t close_codes[close_code_slots.size() + 1];
  histogram latency;

  /// Events lost so far: skipped, and still missing once drained.
  uint64_t lost() const {
    return gaps + tail;
  }

  uint64_t disconnects() const {
    return closed + failed;
  }
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

std::unique_ptr<report> make_report(client_set& cs, uint64_t rss_mark) {
  auto r = std::make_unique<report>();
  auto& st = cs.st();
  r->received = st.received;
  r->frames = st.frames;
  r->bytes = st.bytes;
  r->reads = st.reads;
  r->duplicates = st.duplicates;
  r->gaps = st.gaps;
  r->tail = cs.tail();
  r->errors = st.errors;
  r->closed = st.closed;
  r->ready = st.ready;
  r->failed = cs.failed();
  r->ready_first = st.ready_ns_first;
  r->ready_last = st.ready_ns_last;
  r->unnamed_protocol = st.unnamed_protocol;
  r->rss_kib = read_proc(getpid()).rss_kib;
  r->rss_growth_kib = r->rss_kib > rss_mark ? r->rss_kib - rss_mark : 0;
  std::copy(std::begin(st.close_codes), std::end(st.close_codes),
            r->close_codes);
  r->latency = st.latency;
  return r;
}

/// Commands: 'P' reports, 'R' reports and starts a measurement (resets the
/// measured counters and the RSS mark), 'Q' quits.
[[noreturn]] void child_main(const options& o, const target& t, bool track,
                             bool closed, shared_state* shm, size_t slot,
                             std::vector<conn_plan> plan, int ctl, int result) {
  client_set cs(o, t, track, closed, shm, slot);
  for (auto& p : plan)
    cs.add(std::move(p.patterns), std::move(p.token));
  plan.clear();
  plan.shrink_to_fit();
  cs.open_all(static_cast<size_t>(o.storm_window));
  while (!cs.all_settled())
    cs.poll(5);
  uint64_t rss_mark = read_proc(getpid()).rss_kib;
  auto ready = make_report(cs, rss_mark);
  write_full(result, ready.get(), sizeof(report));
  fcntl(ctl, F_SETFL, O_NONBLOCK);
  cs.watch(ctl);
  for (;;) {
    if (!cs.poll(100))
      continue;
    char cmd;
    ssize_t n;
    while ((n = read(ctl, &cmd, 1)) == 1) {
      if (cmd == 'Q')
        _exit(0);
      auto r = make_report(cs, rss_mark);
      write_full(result, r.get(), sizeof(report));
      if (cmd == 'R') {
        auto& st = cs.st();
        st.received = st.frames = st.bytes = st.reads = 0;
        st.latency = histogram{};
        rss_mark = r->rss_kib;
      }
    }
    if (n == 0)
      _exit(0); // parent gone
  }
}

/// The client processes of one run.
class fleet {
public:
  /// Forks `o.procs` processes; connection i goes to process i % procs.
  /// `track`: count sequence numbers per connection (fan-out); `closed`:
  /// each process publishes its subscribers' progress for the closed loop.
  fleet(const options& o, const target& t, std::vector<conn_plan> plan,
        bool track, bool closed) {
    void* mem = mmap(nullptr, sizeof(shared_state), PROT_READ | PROT_WRITE,
                     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED)
      die("mmap failed");
    shm_ = new (mem) shared_state;
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
    std::fflush(nullptr);
    for (size_t i = 0; i < shares.size(); ++i) {
      int c2p[2];
      int p2c[2];
      if (pipe(c2p) != 0 || pipe(p2c) != 0)
        die("pipe failed");
      pid_t pid = fork();
      if (pid == 0) {
        close(c2p[0]);
        close(p2c[1]);
        for (auto& c : children_) {
          close(c.ctl);
          close(c.result);
        }
        child_main(o, t, track, closed, shm_, i, std::move(shares[i]), p2c[0],
                   c2p[1]);
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
    shm_->~shared_state();
    munmap(shm_, sizeof(shared_state));
  }

  /// Asks every child for its counters ('R' also starts a measurement, 'P'
  /// only reads) and merges the answers.
  report ask(char cmd) {
    for (auto& c : children_)
      write_full(c.ctl, &cmd, 1);
    return *collect_reports();
  }

  const report& ready() const {
    return *ready_;
  }

  /// Closed loop, with `seq` published: the live subscribers, and the
  /// deliveries not yet received by them.
  std::pair<uint64_t, uint64_t> in_flight(uint64_t seq) const {
    uint64_t live = 0;
    uint64_t behind = 0;
    for (size_t i = 0; i < children_.size(); ++i) {
      auto& slot = shm_->slots[i];
      auto n = slot.live.load(std::memory_order_acquire);
      auto sum = slot.sum.load(std::memory_order_acquire);
      live += n;
      behind += seq * n - std::min(sum, seq * n);
    }
    return {live, behind};
  }

  void mark_published(uint64_t seq) {
    shm_->published.store(seq, std::memory_order_release);
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
      total->frames += part->frames;
      total->bytes += part->bytes;
      total->reads += part->reads;
      total->duplicates += part->duplicates;
      total->gaps += part->gaps;
      total->tail += part->tail;
      total->errors += part->errors;
      total->closed += part->closed;
      total->ready += part->ready;
      total->failed += part->failed;
      total->unnamed_protocol += part->unnamed_protocol;
      total->rss_kib = std::max(total->rss_kib, part->rss_kib);
      total->rss_growth_kib = std::max(total->rss_growth_kib,
                                       part->rss_growth_kib);
      if (part->ready_first != 0
          && (total->ready_first == 0
              || part->ready_first < total->ready_first))
        total->ready_first = part->ready_first;
      total->ready_last = std::max(total->ready_last, part->ready_last);
      for (size_t i = 0; i < std::size(part->close_codes); ++i)
        total->close_codes[i] += part->close_codes[i];
      total->latency.merge(part->latency);
    }
    return total;
  }

  std::vector<child> children_;
  shared_state* shm_ = nullptr;
  std::unique_ptr<report> ready_;
};

// -- results ------------------------------------------------------------------

struct row {
  std::string scenario;
  std::string mode; // closed, open, idle, storm
  std::string target;
  int round = 0;
  uint64_t conns = 0;
  int window = 0;          // closed loop
  double rate_nominal = 0; // open loop: the step's offered events/s
  double rate = 0;         // events/s published
  double delivered_per_s = 0;
  double ratio = 0;
  double p50_us = 0, p99_us = 0, p999_us = 0, max_us = 0;
  double server_cpu = 0, nats_cpu = 0, gen_cpu = 0;
  double rss_mib = 0; // server
  double kib_per_conn = 0;
  double conns_per_s = 0;
  double events_per_frame = 0, bytes_per_read = 0;
  double frames_per_write = 0; // Switchyard's /metrics; 0: not known
  double client_rss_mib = 0, client_rss_growth_mib = 0;
  uint64_t lost = 0, duplicates = 0, disconnects = 0, errors = 0;
  std::array<uint64_t, close_code_slots.size() + 1> close_codes{};
  bool saturated = false; // open loop: did not keep up with the offer
  bool stalled = false;   // closed loop: deliveries stopped
};

std::string close_codes_text(const row& r) {
  std::string s;
  for (size_t i = 0; i < r.close_codes.size(); ++i) {
    if (r.close_codes[i] == 0)
      continue;
    if (!s.empty())
      s += ' ';
    s += i == no_close_frame     ? std::string{"eof"}
      : close_code_slots[i] == 0 ? std::string{"other"}
                                 : std::to_string(close_code_slots[i]);
    s += ':' + std::to_string(r.close_codes[i]);
  }
  return s;
}

void print_header(const std::string& scenario, const std::string& mode) {
  std::printf("\n== %s (%s) ==\n", scenario.c_str(), mode.c_str());
  std::printf("%-24s %2s %6s %8s %11s %6s %8s %8s %8s %8s %5s %5s %5s %6s "
              "%7s %5s %9s %6s %4s %4s\n",
              "target", "rd", "conns", "events/s", "deliv/s", "ratio", "p50us",
              "p99us", "p99.9us", "maxus", "srv%", "bus%", "gen%", "ev/fr",
              "B/read", "fr/wr", "cliMiB", "lost", "dup", "disc");
}

void print_row(const row& r) {
  std::printf("%-24s %2d %6llu %8.0f %11.0f %6.3f %8.0f %8.0f %8.0f %8.0f "
              "%5.0f %5.0f %5.0f %6.2f %7.0f %5.2f %5.0f%+4.0f %6llu %4llu "
              "%4llu%s%s%s%s\n",
              r.target.c_str(), r.round,
              static_cast<unsigned long long>(r.conns), r.rate,
              r.delivered_per_s, r.ratio, r.p50_us, r.p99_us, r.p999_us,
              r.max_us, r.server_cpu, r.nats_cpu, r.gen_cpu, r.events_per_frame,
              r.bytes_per_read, r.frames_per_write, r.client_rss_mib,
              r.client_rss_growth_mib, static_cast<unsigned long long>(r.lost),
              static_cast<unsigned long long>(r.duplicates),
              static_cast<unsigned long long>(r.disconnects),
              r.saturated ? "  <- saturated" : "",
              r.stalled ? "  <- stalled" : "", r.disconnects ? "  closes " : "",
              close_codes_text(r).c_str());
  std::fflush(stdout);
}

void print_conn_row(const row& r) {
  std::printf("%-24s %7llu conns  server RSS %.1f MiB  %.2f KiB/conn  "
              "%.0f conns/s  srv %.0f%%  disconnects %llu\n",
              r.target.c_str(), static_cast<unsigned long long>(r.conns),
              r.rss_mib, r.kib_per_conn, r.conns_per_s, r.server_cpu,
              static_cast<unsigned long long>(r.disconnects));
  std::fflush(stdout);
}

std::string server_of(const std::string& target) {
  return target.substr(0, target.find('/'));
}

std::string subprotocol_of(const std::string& target) {
  auto slash = target.find('/');
  return slash == std::string::npos ? "" : target.substr(slash + 1);
}

void json_common(std::ostream& f, const row& r) {
  f << "\"scenario\":\"" << r.scenario << "\",\"mode\":\"" << r.mode
    << "\",\"target\":\"" << r.target << "\",\"server\":\""
    << server_of(r.target) << "\",\"subprotocol\":\""
    << subprotocol_of(r.target) << "\",\"conns\":" << r.conns
    << ",\"window\":" << r.window << ",\"rate_nominal\":" << r.rate_nominal;
}

void write_json(const options& o, const row& r) {
  if (o.json_out.empty())
    return;
  std::ofstream f(o.json_out, std::ios::app);
  f << "{\"kind\":\"run\",";
  json_common(f, r);
  f << ",\"round\":" << r.round << ",\"rate\":" << r.rate
    << ",\"delivered_per_s\":" << r.delivered_per_s << ",\"ratio\":" << r.ratio
    << ",\"p50_us\":" << r.p50_us << ",\"p99_us\":" << r.p99_us
    << ",\"p999_us\":" << r.p999_us << ",\"max_us\":" << r.max_us
    << ",\"server_cpu\":" << r.server_cpu << ",\"nats_cpu\":" << r.nats_cpu
    << ",\"gen_cpu\":" << r.gen_cpu << ",\"rss_mib\":" << r.rss_mib
    << ",\"kib_per_conn\":" << r.kib_per_conn
    << ",\"conns_per_s\":" << r.conns_per_s
    << ",\"events_per_frame\":" << r.events_per_frame
    << ",\"bytes_per_read\":" << r.bytes_per_read
    << ",\"frames_per_write\":" << r.frames_per_write
    << ",\"client_rss_mib\":" << r.client_rss_mib
    << ",\"client_rss_growth_mib\":" << r.client_rss_growth_mib
    << ",\"lost\":" << r.lost << ",\"duplicates\":" << r.duplicates
    << ",\"disconnects\":" << r.disconnects << ",\"close_codes\":{";
  bool first = true;
  for (size_t i = 0; i < r.close_codes.size(); ++i) {
    if (r.close_codes[i] == 0)
      continue;
    f << (first ? "" : ",") << "\""
      << (i == no_close_frame          ? std::string{"eof"}
            : close_code_slots[i] == 0 ? std::string{"other"}
                                       : std::to_string(close_code_slots[i]))
      << "\":" << r.close_codes[i];
    first = false;
  }
  f << "},\"errors\":" << r.errors
    << ",\"saturated\":" << (r.saturated ? "true" : "false")
    << ",\"stalled\":" << (r.stalled ? "true" : "false") << "}\n";
}

double median(std::vector<double> v) {
  if (v.empty())
    return 0;
  std::sort(v.begin(), v.end());
  auto n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/// Medians over rounds, with min-max, per target (and offered rate).
void print_summary(const options& o, const std::vector<row>& rows) {
  std::vector<std::vector<const row*>> groups;
  for (auto& r : rows) {
    auto it = std::find_if(groups.begin(), groups.end(), [&](auto& g) {
      return g[0]->target == r.target && g[0]->rate_nominal == r.rate_nominal;
    });
    if (it == groups.end())
      groups.push_back({&r});
    else
      it->push_back(&r);
  }
  if (groups.empty())
    return;
  std::printf("\n-- medians over rounds [min-max] --\n");
  std::printf("%-24s %8s %2s %-30s %8s %-26s %8s %5s %5s %5s %6s %7s %5s "
              "%8s %5s %4s %4s\n",
              "target", "offer/s", "n", "deliv/s", "p50us", "p99us", "p99.9us",
              "srv%", "bus%", "gen%", "ev/fr", "B/read", "fr/wr", "cliMiB",
              "lost", "dup", "disc");
  for (auto& g : groups) {
    auto col = [&](double row::*f) {
      std::vector<double> v;
      for (auto* r : g)
        v.push_back(r->*f);
      return v;
    };
    auto span = [](const std::vector<double>& v) {
      return std::make_pair(*std::min_element(v.begin(), v.end()),
                            *std::max_element(v.begin(), v.end()));
    };
    auto deliv = col(&row::delivered_per_s);
    auto p99 = col(&row::p99_us);
    auto [dmin, dmax] = span(deliv);
    auto [pmin, pmax] = span(p99);
    uint64_t lost = 0, dups = 0, disc = 0;
    int saturated = 0, stalled = 0;
    double rss = 0, growth = 0, max_us = 0;
    for (auto* r : g) {
      lost += r->lost;
      dups += r->duplicates;
      disc += r->disconnects;
      saturated += r->saturated;
      stalled += r->stalled;
      rss = std::max(rss, r->client_rss_mib);
      growth = std::max(growth, r->client_rss_growth_mib);
      max_us = std::max(max_us, r->max_us);
    }
    char d[64];
    char p[64];
    std::snprintf(d, sizeof(d), "%.0f [%.0f-%.0f]", median(deliv), dmin, dmax);
    std::snprintf(p, sizeof(p), "%.0f [%.0f-%.0f]", median(p99), pmin, pmax);
    auto& r0 = *g[0];
    std::printf("%-24s %8.0f %2zu %-30s %8.0f %-26s %8.0f %5.0f %5.0f %5.0f "
                "%6.2f %7.0f %5.2f %5.0f%+3.0f %5llu %4llu %4llu%s%s\n",
                r0.target.c_str(), r0.rate_nominal, g.size(), d,
                median(col(&row::p50_us)), p, median(col(&row::p999_us)),
                median(col(&row::server_cpu)), median(col(&row::nats_cpu)),
                median(col(&row::gen_cpu)), median(col(&row::events_per_frame)),
                median(col(&row::bytes_per_read)),
                median(col(&row::frames_per_write)), rss, growth,
                static_cast<unsigned long long>(lost),
                static_cast<unsigned long long>(dups),
                static_cast<unsigned long long>(disc),
                saturated ? "  <- saturated in a round" : "",
                stalled ? "  <- stalled in a round" : "");
    if (o.json_out.empty())
      continue;
    std::ofstream f(o.json_out, std::ios::app);
    f << "{\"kind\":\"summary\",";
    json_common(f, r0);
    f << ",\"rounds\":" << g.size() << ",\"rate\":" << median(col(&row::rate))
      << ",\"delivered_per_s\":" << median(deliv)
      << ",\"delivered_min\":" << dmin << ",\"delivered_max\":" << dmax
      << ",\"ratio\":" << median(col(&row::ratio))
      << ",\"p50_us\":" << median(col(&row::p50_us))
      << ",\"p99_us\":" << median(p99) << ",\"p99_min\":" << pmin
      << ",\"p99_max\":" << pmax
      << ",\"p999_us\":" << median(col(&row::p999_us))
      << ",\"max_us\":" << max_us
      << ",\"server_cpu\":" << median(col(&row::server_cpu))
      << ",\"nats_cpu\":" << median(col(&row::nats_cpu))
      << ",\"gen_cpu\":" << median(col(&row::gen_cpu))
      << ",\"rss_mib\":" << median(col(&row::rss_mib))
      << ",\"events_per_frame\":" << median(col(&row::events_per_frame))
      << ",\"bytes_per_read\":" << median(col(&row::bytes_per_read))
      << ",\"frames_per_write\":" << median(col(&row::frames_per_write))
      << ",\"client_rss_mib\":" << rss
      << ",\"client_rss_growth_mib\":" << growth << ",\"lost\":" << lost
      << ",\"duplicates\":" << dups << ",\"disconnects\":" << disc
      << ",\"saturated_rounds\":" << saturated
      << ",\"saturated\":" << (saturated > 0 ? "true" : "false")
      << ",\"stalled_rounds\":" << stalled << "}\n";
  }
}

// -- scenarios ----------------------------------------------------------------

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
  if (srv.name == "switchyard")
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
uint64_t publish_for(publisher& pub, fleet& fl, double rate, double seconds,
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
    fl.mark_published(seq);
    if (!pub.pump())
      die("publisher connection lost");
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  return sent;
}

/// The closed loop's publisher connections: event s goes out on s % n, so
/// a server that handles each connection on one thread can use several.
class publisher_set {
public:
  publisher_set(const options& o, const server& srv,
                const std::unordered_map<std::string, std::string>& tokens) {
    for (int i = 0; i < o.publishers; ++i)
      pubs_.emplace_back(std::make_unique<publisher>(o, srv, tokens));
  }

  void publish(const std::string& topic, uint64_t seq) {
    pubs_[seq % pubs_.size()]->publish(topic, seq);
  }

  bool pump() {
    bool ok = true;
    for (auto& p : pubs_)
      ok = p->pump() && ok;
    return ok;
  }

  uint64_t errors() const {
    uint64_t n = 0;
    for (auto& p : pubs_)
      n += p->errors();
    return n;
  }

private:
  std::vector<std::unique_ptr<publisher>> pubs_;
};

/// Nothing received for this long ends a closed-loop step as stalled.
constexpr uint64_t stall_ns = 5'000'000'000ull;

/// Publishes on `topic` for `seconds` as fast as the window allows: at most
/// `window` deliveries per live subscriber in flight (published, not yet
/// received). False if the subscribers stopped advancing.
bool closed_loop_for(const options& o, publisher_set& pub, fleet& fl,
                     const std::string& topic, double seconds, uint64_t& seq,
                     uint64_t last_seq = UINT64_MAX) {
  auto end = now_ns() + static_cast<uint64_t>(seconds * 1e9);
  auto progress = now_ns();
  uint64_t seen = UINT64_MAX;
  for (;;) {
    auto now = now_ns();
    if (now >= end || seq >= last_seq)
      return true;
    auto [live, behind] = fl.in_flight(seq);
    if (live == 0)
      die("every subscriber is gone");
    auto received = seq * live - behind;
    if (received != seen) {
      seen = received;
      progress = now;
    } else if (now - progress > stall_ns) {
      return false;
    }
    auto budget = static_cast<uint64_t>(o.window) * live;
    bool sent = false;
    while (behind + live <= budget && seq < last_seq) {
      pub.publish(topic, ++seq);
      behind += live;
      sent = true;
    }
    if (sent)
      fl.mark_published(seq);
    if (!pub.pump())
      die("publisher connection lost");
    if (!sent)
      std::this_thread::sleep_for(std::chrono::microseconds(20));
  }
}

/// Waits (pumping the publisher) until every event published reached every
/// live subscriber, or deliveries stop for a while.
template<class Publisher>
void drain(Publisher& pub, fleet& fl, bool closed, bool tracked, uint64_t seq) {
  auto deadline = now_ns() + 10'000'000'000ull;
  uint64_t prev = UINT64_MAX;
  int quiet = 0;
  while (now_ns() < deadline) {
    pub.pump();
    if (closed) {
      auto [live, behind] = fl.in_flight(seq);
      if (live == 0 || behind == 0)
        return;
      sleep_ms(1);
      continue;
    }
    auto rep = fl.ask('P');
    if ((tracked && rep.tail == 0) || (rep.received == prev && ++quiet >= 3))
      return;
    if (rep.received != prev)
      quiet = 0;
    prev = rep.received;
    sleep_ms(100);
  }
}

/// CPU, time and Switchyard's write counters across one measurement.
class meter {
public:
  meter(const target& t, fleet& fl) : t_(t), fl_(fl) {
    if (!t_.srv->is_nats())
      w0_ = write_counters(t_.srv->http_port);
    s0_ = t_.srv->stat();
    n0_ = t_.srv->nats_stat();
    g0_ = fl_.cpu_ticks();
    t0_ = now_ns();
  }

  /// Fills the figures of `r` from the measurement `rep`; returns seconds.
  double finish(row& r, const report& rep) {
    auto elapsed = static_cast<double>(now_ns() - t0_) / 1e9;
    auto s1 = t_.srv->stat();
    auto n1 = t_.srv->nats_stat();
    auto g1 = fl_.cpu_ticks();
    r.target = t_.name;
    r.delivered_per_s = static_cast<double>(rep.received) / elapsed;
    r.p50_us = static_cast<double>(rep.latency.percentile(50)) / 1e3;
    r.p99_us = static_cast<double>(rep.latency.percentile(99)) / 1e3;
    r.p999_us = static_cast<double>(rep.latency.percentile(99.9)) / 1e3;
    r.max_us = static_cast<double>(rep.latency.max) / 1e3;
    r.server_cpu = ticks_to_pct(s1.cpu_ticks - s0_.cpu_ticks, elapsed);
    r.nats_cpu = ticks_to_pct(n1.cpu_ticks - n0_.cpu_ticks, elapsed);
    r.gen_cpu = ticks_to_pct(g1 - g0_, elapsed);
    r.rss_mib = static_cast<double>(s1.rss_kib) / 1024.0;
    r.events_per_frame = rep.frames == 0
      ? 0
      : static_cast<double>(rep.received) / static_cast<double>(rep.frames);
    r.bytes_per_read = rep.reads == 0
      ? 0
      : static_cast<double>(rep.bytes) / static_cast<double>(rep.reads);
    r.client_rss_mib = static_cast<double>(rep.rss_kib) / 1024.0;
    r.client_rss_growth_mib = static_cast<double>(rep.rss_growth_kib) / 1024.0;
    if (!t_.srv->is_nats()) {
      auto w1 = write_counters(t_.srv->http_port);
      auto writes = w1.second - w0_.second;
      r.frames_per_write = writes == 0
        ? 0
        : static_cast<double>(w1.first - w0_.first)
          / static_cast<double>(writes);
    }
    return elapsed;
  }

private:
  const target& t_;
  fleet& fl_;
  std::pair<uint64_t, uint64_t> w0_{};
  proc_stat s0_, n0_;
  uint64_t g0_ = 0;
  uint64_t t0_ = 0;
};

/// Run-long counters of `fin` (a report after draining) into `r`, as the
/// change since `prev`.
void run_counters(row& r, const report& fin, const report& prev) {
  r.lost = fin.lost() - prev.lost();
  r.duplicates = fin.duplicates - prev.duplicates;
  r.disconnects = fin.disconnects() - prev.disconnects();
  r.errors = fin.errors - prev.errors;
  for (size_t i = 0; i < r.close_codes.size(); ++i)
    r.close_codes[i] = fin.close_codes[i] - prev.close_codes[i];
}

report zero_report() {
  report z;
  std::memset(static_cast<void*>(&z), 0, sizeof(z));
  return z;
}

const std::string fanout_topic = "events.org_bench.svc.task.done.t1";

std::vector<conn_plan> fanout_plan(const options& o, const server& srv,
                                   int subs, const std::string& topic) {
  auto token = srv.is_nats() ? "" : mint(o, "bench_user", "org_bench", false);
  return std::vector<conn_plan>(static_cast<size_t>(subs),
                                conn_plan{{topic}, token});
}

/// A note, once per target, when a node named no subprotocol in its upgrade
/// response.
void note_protocol(const target& t, const report& ready) {
  static std::vector<std::string> noted;
  if (ready.unnamed_protocol == 0
      || std::find(noted.begin(), noted.end(), t.name) != noted.end())
    return;
  noted.push_back(t.name);
  std::fprintf(stderr,
               "swload: %s named no subprotocol in %llu upgrades; json "
               "assumed (noted once per target)\n",
               t.name.c_str(),
               static_cast<unsigned long long>(ready.unnamed_protocol));
}

/// One closed-loop fan-out run on fresh connections: --warmup seconds
/// unmeasured, then --duration measured. With `rows` null the whole run of
/// `seconds` is a server's warm-up and nothing is reported.
void closed_run(const options& o, const target& t, int round,
                std::vector<row>* rows, double seconds) {
  fleet fl(o, t, fanout_plan(o, *t.srv, o.subs, fanout_topic), true, true);
  auto subs = fl.ready().ready;
  if (subs < static_cast<uint64_t>(o.subs))
    std::fprintf(stderr, "swload: %s: only %llu of %d subscribers ready\n",
                 t.name.c_str(), static_cast<unsigned long long>(subs), o.subs);
  note_protocol(t, fl.ready());
  publisher_set pub(o, *t.srv, publisher_tokens(o, *t.srv, {fanout_topic}));
  uint64_t seq = 0;
  if (rows == nullptr) {
    closed_loop_for(o, pub, fl, fanout_topic, seconds, seq);
    drain(pub, fl, true, true, seq);
    return;
  }
  closed_loop_for(o, pub, fl, fanout_topic, o.warmup, seq);
  fl.ask('R');
  auto seq0 = seq;
  meter m(t, fl);
  bool ok = closed_loop_for(o, pub, fl, fanout_topic, o.duration, seq);
  auto rep = fl.ask('P');
  row r;
  auto elapsed = m.finish(r, rep);
  drain(pub, fl, true, true, seq);
  auto fin = fl.ask('R');
  r.scenario = "fanout";
  r.mode = "closed";
  r.round = round;
  r.conns = subs;
  r.window = o.window;
  r.rate = static_cast<double>(seq - seq0) / elapsed;
  r.ratio = seq == seq0 ? 0
                        : static_cast<double>(rep.received)
      / (static_cast<double>(seq - seq0) * static_cast<double>(subs));
  run_counters(r, fin, zero_report());
  r.stalled = !ok;
  print_row(r);
  write_json(o, r);
  rows->push_back(r);
}

/// Rate steps on fresh connections; `per_event` deliveries per event. A
/// step that saturates ends the target's steps for this round, so no backlog
/// builds up past capacity. With `rows` null: one unmeasured step of
/// `seconds` at the first rate (a server's warm-up).
void open_run(const options& o, const target& t, std::vector<conn_plan> plan,
              const std::vector<std::string>& topics, bool per_subscriber,
              const std::string& scenario, int round, std::vector<row>* rows,
              double seconds) {
  bool tracked = scenario == "fanout";
  fleet fl(o, t, std::move(plan), tracked, false);
  auto conns = fl.ready().ready;
  note_protocol(t, fl.ready());
  double per_event = per_subscriber ? static_cast<double>(conns) : 2.0;
  publisher pub(o, *t.srv, publisher_tokens(o, *t.srv, topics));
  uint64_t seq = 0;
  std::vector<double> rates = o.rates;
  if (rates.empty())
    rates = {1000};
  if (rows == nullptr) {
    publish_for(pub, fl, rates[0], seconds, topics, seq);
    drain(pub, fl, false, tracked, seq);
    return;
  }
  auto prev = zero_report();
  for (size_t step = 0; step < rates.size(); ++step) {
    double rate = rates[step];
    publish_for(pub, fl, rate, o.warmup, topics, seq);
    fl.ask('R');
    meter m(t, fl);
    auto sent = publish_for(pub, fl, rate, o.duration, topics, seq);
    auto rep = fl.ask('P');
    row r;
    auto elapsed = m.finish(r, rep);
    drain(pub, fl, false, tracked, seq);
    auto fin = fl.ask('R');
    r.scenario = scenario;
    r.mode = "open";
    r.round = round;
    r.conns = conns;
    r.rate_nominal = rate;
    r.rate = static_cast<double>(sent) / elapsed;
    r.ratio = sent == 0 ? 0
                        : static_cast<double>(rep.received)
        / (static_cast<double>(sent) * per_event);
    run_counters(r, fin, prev);
    r.errors += pub.errors();
    prev = fin;
    // Saturated: deliveries fall behind the offered load, or the offered
    // load itself could not be sent, or the latency tail runs away.
    r.saturated = r.ratio < 0.97 || r.rate < 0.97 * rate || r.p99_us > 200'000
      || r.disconnects > 0;
    print_row(r);
    write_json(o, r);
    rows->push_back(r);
    if (r.saturated) {
      if (step + 1 < rates.size())
        std::printf("%-24s    (higher rates skipped this round: saturated)\n",
                    t.name.c_str());
      break;
    }
    if (o.saturate && step + 1 == rates.size() && rates.size() < 24)
      rates.push_back(rate * 2);
  }
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

std::vector<std::string> many_topics(const options& o) {
  std::vector<std::string> topics;
  for (int i = 0; i < o.conns; ++i)
    topics.push_back(resource_topic(i / o.per_org, i));
  return topics;
}

/// One run of the measured scenario against `t`; with `rows` null, an
/// unmeasured warm-up of `seconds`.
void run_once(const options& o, const target& t, int round,
              std::vector<row>* rows, double seconds) {
  if (o.scenario == "fanout" && o.closed_loop)
    closed_run(o, t, round, rows, seconds);
  else if (o.scenario == "fanout")
    open_run(o, t, fanout_plan(o, *t.srv, o.subs, fanout_topic), {fanout_topic},
             true, "fanout", round, rows, seconds);
  else
    open_run(o, t, per_org_plan(o, *t.srv, o.conns, true), many_topics(o),
             false, "many-topics", round, rows, seconds);
}

/// Idle or storm against a freshly started server.
void run_connections(const options& o, const target& t) {
  auto plan = per_org_plan(o, *t.srv, o.conns, false);
  sleep_ms(300);
  auto before = t.srv->stat();
  auto t0 = now_ns();
  fleet fl(o, t, std::move(plan), false, false);
  auto& ready = fl.ready();
  note_protocol(t, ready);
  row r;
  r.scenario = o.scenario;
  r.mode = o.scenario;
  r.target = t.name;
  r.round = 1;
  r.conns = ready.ready;
  r.disconnects = ready.disconnects();
  if (o.scenario == "storm") {
    auto secs = static_cast<double>(ready.ready_last - t0) / 1e9;
    r.conns_per_s = secs > 0 ? static_cast<double>(ready.ready) / secs : 0;
  }
  // Measure the steady state: past the 10 s request timeouts the node
  // keeps for each session's first requests.
  sleep_ms(o.scenario == "idle" ? 12000 : 2000);
  auto after = t.srv->stat();
  r.rss_mib = static_cast<double>(after.rss_kib) / 1024.0;
  if (ready.ready > 0)
    r.kib_per_conn = static_cast<double>(after.rss_kib - before.rss_kib)
      / static_cast<double>(ready.ready);
  if (o.scenario == "idle") {
    // Hold the connections through heartbeats; none may drop.
    auto s0 = t.srv->stat();
    auto end = now_ns() + static_cast<uint64_t>(o.duration * 1e9);
    while (now_ns() < end)
      sleep_ms(100);
    auto rep = fl.ask('P');
    r.disconnects = rep.disconnects();
    for (size_t i = 0; i < r.close_codes.size(); ++i)
      r.close_codes[i] = rep.close_codes[i];
    r.server_cpu = ticks_to_pct(t.srv->stat().cpu_ticks - s0.cpu_ticks,
                                o.duration);
  }
  print_conn_row(r);
  write_json(o, r);
}

int run_smoke(const options& o, const target& t) {
  auto subs = std::min(o.subs, 300);
  const std::string topic = "events.org_bench.svc.task.done.smoke";
  fleet fl(o, t, fanout_plan(o, *t.srv, subs, topic), true, o.closed_loop);
  if (fl.ready().ready != static_cast<uint64_t>(subs)) {
    std::printf("%-24s FAIL: %llu of %d subscribers ready\n", t.name.c_str(),
                static_cast<unsigned long long>(fl.ready().ready), subs);
    return 1;
  }
  note_protocol(t, fl.ready());
  // Open loop publishes on one connection, in order; closed loop on all.
  auto open = o;
  if (!o.closed_loop)
    open.publishers = 1;
  publisher_set pub(open, *t.srv, publisher_tokens(o, *t.srv, {topic}));
  fl.ask('R');
  auto events = static_cast<uint64_t>(o.smoke_events);
  uint64_t seq = 0;
  bool flowed = true;
  if (o.closed_loop) {
    flowed = closed_loop_for(o, pub, fl, topic, 30, seq, events);
  } else {
    while (seq < events)
      pub.publish(topic, ++seq);
    fl.mark_published(seq);
  }
  auto expected = static_cast<uint64_t>(subs) * events;
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
  rep = fl.ask('P');
  bool ok = flowed && seq == events && rep.received == expected
    && rep.lost() == 0 && rep.duplicates == 0 && rep.closed == 0
    && pub.errors() == 0;
  std::printf(
    "%-24s %s: %s%d subscribers x %llu events: received %llu of "
    "%llu, lost %llu, duplicates %llu, closed %llu, publish errors "
    "%llu, %.2f events per frame\n",
    t.name.c_str(), ok ? "ok" : "FAIL",
    o.closed_loop
      ? ("closed loop (window " + std::to_string(o.window) + "), ").c_str()
      : "",
    subs, static_cast<unsigned long long>(events),
    static_cast<unsigned long long>(rep.received),
    static_cast<unsigned long long>(expected),
    static_cast<unsigned long long>(rep.lost()),
    static_cast<unsigned long long>(rep.duplicates),
    static_cast<unsigned long long>(rep.closed),
    static_cast<unsigned long long>(pub.errors()),
    rep.frames == 0
      ? 0.0
      : static_cast<double>(rep.received) / static_cast<double>(rep.frames));
  return ok ? 0 : 1;
}

// -- self-test ----------------------------------------------------------------

/// What a decoder reported, for comparing one byte stream cut in different
/// places.
struct recording {
  std::vector<std::pair<uint64_t, uint64_t>> events;
  std::vector<std::string> messages; // "type code"
  std::vector<std::string> lines;
  std::vector<std::string> controls; // "<opcode>:<payload>"
  std::vector<uint32_t> frames;

  bool operator==(const recording& o) const {
    return events == o.events && messages == o.messages && lines == o.lines
      && controls == o.controls && frames == o.frames;
  }

  bool stopped() const {
    return false;
  }
  void event(uint64_t t, uint64_t s) {
    events.emplace_back(t, s);
  }
  void message(const struct message& m) {
    messages.push_back(std::string{m.type} + " " + std::string{m.code});
  }
  void nats_line(std::string_view line) {
    lines.emplace_back(line);
  }
  void control(uint8_t op, std::string_view payload) {
    controls.push_back(std::to_string(op) + ":" + std::string{payload});
  }
  void frame(uint32_t events) {
    frames.push_back(events);
  }
};

int self_test_failures = 0;

void check(bool ok, const std::string& what) {
  if (!ok) {
    ++self_test_failures;
    std::printf("self-test FAIL: %s\n", what.c_str());
  }
}

void ws_server_frame(std::string& out, uint8_t op, std::string_view p,
                     bool fin = true) {
  out.push_back(static_cast<char>((fin ? 0x80 : 0) | op));
  auto n = p.size();
  if (n < 126) {
    out.push_back(static_cast<char>(n));
  } else if (n <= 0xFFFF) {
    out.push_back(static_cast<char>(126));
    out.push_back(static_cast<char>(n >> 8));
    out.push_back(static_cast<char>(n & 0xFF));
  } else {
    out.push_back(static_cast<char>(127));
    for (int s = 56; s >= 0; s -= 8)
      out.push_back(static_cast<char>((static_cast<uint64_t>(n) >> s) & 0xFF));
  }
  out.append(p.data(), p.size());
}

/// Feeds `stream` whole, a byte at a time, and in pseudo-random pieces, and
/// checks each against `want`.
void check_stream(const std::string& name, wire w, const std::string& stream,
                  const recording& want) {
  auto run = [&](auto next_piece) {
    stream_decoder dec{w};
    recording got;
    size_t pos = 0;
    while (pos < stream.size()) {
      auto n = std::min(next_piece(), stream.size() - pos);
      if (!dec.feed(std::string_view{stream}.substr(pos, n), got)) {
        got.messages.push_back("protocol error");
        break;
      }
      pos += n;
    }
    return got;
  };
  check(run([&] {
          return stream.size();
        }) == want,
        name + ", whole");
  check(run([] {
          return size_t{1};
        }) == want,
        name + ", byte by byte");
  uint32_t x = 12345;
  for (int i = 0; i < 20; ++i)
    check(run([&] {
            x = x * 1103515245 + 12345;
            return size_t{1} + (x >> 16) % 700;
          }) == want,
          name + ", random pieces " + std::to_string(i));
}

std::string json_event(uint64_t t, uint64_t s) {
  return "{\"type\":\"event\",\"subscription\":\"events.o.>\",\"topic\":"
         "\"events.o.t1\",\"id\":\"e-"
    + std::to_string(s) + "\",\"ts\":1700000000000,\"data\":{\"t\":"
    + std::to_string(t) + ",\"s\":" + std::to_string(s)
    + ",\"p\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}}";
}

/// A msgpack event map; `form` picks how its integers, strings and map
/// headers are encoded, and which unneeded values it carries.
std::string msgpack_event(uint64_t t, uint64_t s, int form) {
  std::string m;
  auto be = [&](uint64_t v, int bytes) {
    for (int i = bytes - 1; i >= 0; --i)
      m.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
  };
  auto str = [&](std::string_view v, int kind) {
    if (kind == 0 && v.size() < 32) {
      m.push_back(static_cast<char>(0xa0 | v.size()));
    } else if (kind <= 1 && v.size() < 256) {
      m.push_back(static_cast<char>(0xd9));
      be(v.size(), 1);
    } else if (kind <= 2) {
      m.push_back(static_cast<char>(0xda));
      be(v.size(), 2);
    } else {
      m.push_back(static_cast<char>(0xdb));
      be(v.size(), 4);
    }
    m.append(v.data(), v.size());
  };
  auto uint = [&](uint64_t v) {
    if (v < 128 && form % 2 == 0) {
      m.push_back(static_cast<char>(v));
    } else if (v < 65536 && form % 3 == 0) {
      m.push_back(static_cast<char>(0xcd));
      be(v, 2);
    } else if (v < (1ull << 32) && form % 3 == 1) {
      m.push_back(static_cast<char>(0xce));
      be(v, 4);
    } else if (v < (1ull << 63) && form % 4 == 1) {
      m.push_back(static_cast<char>(0xd3));
      be(v, 8);
    } else {
      m.push_back(static_cast<char>(0xcf));
      be(v, 8);
    }
  };
  auto map = [&](uint32_t n, int kind) {
    if (kind == 0 && n < 16) {
      m.push_back(static_cast<char>(0x80 | n));
    } else if (kind <= 1) {
      m.push_back(static_cast<char>(0xde));
      be(n, 2);
    } else {
      m.push_back(static_cast<char>(0xdf));
      be(n, 4);
    }
  };
  int sk = form % 4;
  map(form % 2 == 0 ? 7 : 8, form % 3);
  str("type", sk);
  str("event", sk);
  str("subscription", sk);
  str("events.o.>", sk);
  str("topic", sk);
  str("events.o.t1", sk);
  str("id", sk);
  str("e-" + std::to_string(s), sk);
  str("ts", sk);
  uint(1700000000000);
  str("extra", sk);
  // [nil, true, false, -3, int8 -100, int16, int32, float32, float64, bin8,
  //  bin16, fixext1, ext8, array16 [1], nested map16 {"k": [] }]
  m.push_back(static_cast<char>(0xdc));
  be(15, 2);
  m += '\xc0';
  m += '\xc3';
  m += '\xc2';
  m += '\xfd';
  m += '\xd0';
  m += '\x9c';
  m += '\xd1';
  be(0x8000, 2);
  m += '\xd2';
  be(0x80000000u, 4);
  m += '\xca';
  be(0x3fc00000u, 4);
  m += '\xcb';
  be(0x3ff8000000000000ull, 8);
  m += '\xc4';
  be(3, 1);
  m += "abc";
  m += '\xc5';
  be(2, 2);
  m += "de";
  m += '\xd4';
  m += '\x01';
  m += 'z';
  m += '\xc7';
  be(2, 1);
  m += '\x05';
  m += "yy";
  m += '\xdc';
  be(1, 2);
  m += '\x01';
  m += '\xde';
  be(1, 2);
  str("k", 0);
  m += '\x90';
  if (form % 2 == 1) {
    str("data-like", sk); // a key near "data" with a map value
    map(1, 0);
    str("t", 0);
    uint(1);
  }
  str("data", sk);
  map(3, (form + 1) % 3);
  str("p", sk);
  str(std::string(static_cast<size_t>(40 + form * 30), 'x'), sk);
  str("t", sk);
  uint(t);
  str("s", sk);
  uint(s);
  return m;
}

std::string msgpack_reply(std::string_view type, std::string_view code) {
  std::string m{static_cast<char>(code.empty() ? 0x82 : 0x83)};
  mp::put_str(m, "type");
  mp::put_str(m, type);
  mp::put_str(m, "id");
  mp::put_str(m, "1");
  if (!code.empty()) {
    mp::put_str(m, "code");
    mp::put_str(m, code);
  }
  return m;
}

int self_test() {
  // msgpack: every form decodes; every cut short of the end asks for more.
  for (int form = 0; form < 12; ++form) {
    uint64_t t = 123456789012345ull + static_cast<uint64_t>(form);
    auto buf = msgpack_event(t, 70000 + static_cast<uint64_t>(form), form);
    for (size_t cut = 0; cut <= buf.size(); ++cut) {
      mp::reader r{std::string_view{buf}.substr(0, cut)};
      message m;
      auto s = msgpack_message(r, m);
      if (cut < buf.size()) {
        check(s == mp::status::more,
              "msgpack form " + std::to_string(form) + " cut at "
                + std::to_string(cut));
      } else {
        check(s == mp::status::ok && m.type == "event" && m.stamped && m.t == t
                && m.s == 70000 + static_cast<uint64_t>(form) && r.p == r.end,
              "msgpack form " + std::to_string(form));
      }
    }
    mp::reader r{buf};
    check(mp::skip(r) == mp::status::ok && r.p == r.end,
          "msgpack skip, form " + std::to_string(form));
  }
  {
    std::string bad{"\x81\xa1k\xc1", 4};
    mp::reader r{bad};
    message m;
    check(msgpack_message(r, m) == mp::status::bad, "msgpack 0xc1");
  }

  // NATS: MSG lines and payloads split across frames and inside them.
  {
    std::string proto = "INFO {\"server_id\":\"x\",\"max_payload\":1048576}"
                        "\r\nPING\r\n";
    recording want;
    want.lines = {"INFO {\"server_id\":\"x\",\"max_payload\":1048576}", "PING"};
    for (uint64_t s = 1; s <= 40; ++s) {
      auto payload = "{\"t\":" + std::to_string(1000 + s)
        + ",\"s\":" + std::to_string(s) + ",\"p\":\""
        + std::string(static_cast<size_t>(s * 37 % 300), 'x') + "\"}";
      proto += "MSG events.o.t1 1 " + std::to_string(payload.size()) + "\r\n"
        + payload + "\r\n";
      want.events.emplace_back(1000 + s, s);
      if (s == 20) {
        proto += "PING\r\n";
        want.lines.push_back("PING");
      }
    }
    // Cut the protocol into frames of varying sizes, one of them > 64 KiB.
    std::string stream;
    size_t pos = 0;
    uint32_t sizes[] = {1, 7, 50, 333, 3, 70000};
    std::vector<std::pair<size_t, size_t>> frames; // [begin, end) in proto
    for (int i = 0; pos < proto.size(); ++i) {
      auto n = std::min<size_t>(sizes[i % 6], proto.size() - pos);
      frames.emplace_back(pos, pos + n);
      ws_server_frame(stream, 0x2, std::string_view{proto}.substr(pos, n));
      pos += n;
    }
    // Events per frame: counted in the frame where each MSG completes.
    for (auto& [b, e] : frames) {
      uint32_t n = 0;
      for (size_t p = proto.find("MSG ", 0); p != std::string::npos;
           p = proto.find("MSG ", p + 1)) {
        auto nl = proto.find("\r\n", p);
        auto size = std::stoul(proto.substr(proto.rfind(' ', nl) + 1));
        auto end = nl + 2 + size + 2;
        if (end > b && end <= e)
          ++n;
      }
      want.frames.push_back(n);
    }
    check_stream("nats", wire::nats, stream, want);
  }

  // json: one object per text frame, a fragmented message, control frames
  // in between.
  {
    std::string stream;
    recording want;
    ws_server_frame(
      stream, 0x1, "{\"type\":\"welcome\",\"protocol\":1,\"session\":\"s-1\"}");
    want.messages.push_back("welcome ");
    want.frames.push_back(0);
    for (uint64_t s = 1; s <= 30; ++s) {
      auto ev = json_event(5000 + s, s);
      if (s == 10) {
        ws_server_frame(stream, 0x1, std::string_view{ev}.substr(0, 20), false);
        ws_server_frame(stream, 0x9, "hb");
        ws_server_frame(stream, 0x0, std::string_view{ev}.substr(20));
        want.controls.push_back("9:hb");
      } else {
        ws_server_frame(stream, 0x1, ev);
      }
      want.events.emplace_back(5000 + s, s);
      want.frames.push_back(1);
    }
    ws_server_frame(stream, 0x1,
                    "{\"type\":\"error\",\"id\":\"1\",\"code\":\"forbidden\","
                    "\"message\":\"no\"}");
    want.messages.push_back("error forbidden");
    want.frames.push_back(0);
    ws_server_frame(stream, 0x8, std::string{"\x0f\xa0", 2});
    want.controls.push_back(std::string{"8:\x0f\xa0", 4});
    check_stream("json", wire::json, stream, want);
  }

  // ndjson: one to five objects per frame, separated by '\n'.
  {
    std::string stream;
    recording want;
    uint64_t s = 0;
    for (int f = 0; f < 40; ++f) {
      std::string text;
      auto n = static_cast<uint32_t>(1 + f % 5);
      for (uint32_t i = 0; i < n; ++i) {
        ++s;
        text += (i ? "\n" : "") + json_event(9000 + s, s);
        want.events.emplace_back(9000 + s, s);
      }
      if (f == 7) {
        text += "\n{\"type\":\"ok\",\"id\":\"3\"}";
        want.messages.push_back("ok ");
      }
      ws_server_frame(stream, 0x1, text);
      want.frames.push_back(n);
    }
    check_stream("ndjson", wire::ndjson, stream, want);
  }

  // msgpack: maps back to back in binary frames, one frame > 64 KiB.
  {
    std::string stream;
    recording want;
    ws_server_frame(stream, 0x2, msgpack_reply("welcome", ""));
    want.messages.push_back("welcome ");
    want.frames.push_back(0);
    ws_server_frame(stream, 0x2, msgpack_reply("ok", ""));
    want.messages.push_back("ok ");
    want.frames.push_back(0);
    uint64_t s = 0;
    for (int f = 0; f < 12; ++f) {
      std::string bin;
      auto n = static_cast<uint32_t>(f == 5 ? 400 : 1 + f % 6);
      for (uint32_t i = 0; i < n; ++i) {
        ++s;
        bin += msgpack_event(20000 + s, s, static_cast<int>(s % 12));
        want.events.emplace_back(20000 + s, s);
      }
      ws_server_frame(stream, 0x2, bin);
      want.frames.push_back(n);
    }
    ws_server_frame(stream, 0x2, msgpack_reply("error", "rate_limited"));
    want.messages.push_back("error rate_limited");
    want.frames.push_back(0);
    check_stream("msgpack", wire::msgpack, stream, want);
    // A frame that ends inside a map is an error.
    std::string cut;
    auto ev = msgpack_event(1, 1, 0);
    ws_server_frame(cut, 0x2, std::string_view{ev}.substr(0, ev.size() - 1));
    stream_decoder dec{wire::msgpack};
    recording got;
    check(!dec.feed(cut, got), "msgpack frame ending inside a map");
  }

  // Progress: deliveries in flight are seq * live - sum of the accounted.
  {
    progress_tracker p;
    for (int i = 0; i < 3; ++i)
      p.add(0);
    p.move(1);
    p.move(1);
    check(2 * p.live() - p.sum() == 4, "in flight after two deliveries");
    p.move(3); // one event and a gap of two
    check(p.sum() == 5, "a gap counts as accounted for");
    p.remove(3);
    check(p.live() == 2 && p.sum() == 2, "a closed one leaves the count");
  }

  std::printf("self-test: %s\n", self_test_failures == 0 ? "ok" : "FAILED");
  return self_test_failures == 0 ? 0 : 1;
}

} // namespace

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  auto o = parse(argc, argv);
  if (o.self_test)
    return self_test();
  // The closed loop sleeps 50 us at a time; default timer slack is as long.
  prctl(PR_SET_TIMERSLACK, 1000UL);
  rlimit lim;
  getrlimit(RLIMIT_NOFILE, &lim);
  lim.rlim_cur = lim.rlim_max;
  setrlimit(RLIMIT_NOFILE, &lim);
  std::vector<std::unique_ptr<server>> servers;
  std::vector<target> targets;
  for (auto& name : o.servers) {
    servers.push_back(std::make_unique<server>());
    servers.back()->name = name;
    if (name == "nats") {
      targets.push_back(target{name, servers.back().get(), "", wire::nats});
      continue;
    }
    for (auto& p : o.subprotocols)
      targets.push_back(
        target{name + "/" + p, servers.back().get(), p, wire_of(p)});
  }
  bool connections = o.scenario == "idle" || o.scenario == "storm";
  if (!connections && o.scenario != "fanout" && o.scenario != "many-topics")
    die("unknown scenario " + o.scenario);
  int failures = 0;
  if (connections) {
    // Memory per connection: each target on a freshly started server.
    std::printf("\n== %s ==\n", o.scenario.c_str());
    for (auto& t : targets) {
      t.srv->start(o);
      run_connections(o, t);
      t.srv->stop_all();
    }
    return 0;
  }
  for (auto& s : servers)
    s->start(o);
  if (o.smoke) {
    for (auto& t : targets)
      failures += run_smoke(o, t);
  } else {
    // Warm every server (page faults, buffers, caches) before measuring.
    for (auto& s : servers)
      for (auto& t : targets)
        if (t.srv == s.get()) {
          run_once(o, t, 0, nullptr, o.server_warmup);
          break;
        }
    print_header(o.scenario,
                 o.scenario == "fanout" && o.closed_loop
                   ? "closed loop, window " + std::to_string(o.window)
                     + " deliveries per subscriber"
                     + (o.nodes > 1 ? ", switchyard-nats on "
                            + std::to_string(o.nodes) + " nodes"
                                    : "")
                   : "open loop");
    std::vector<row> rows;
    for (int round = 1; round <= o.rounds; ++round)
      for (auto& t : targets)
        run_once(o, t, round, &rows, 0);
    print_summary(o, rows);
  }
  for (auto& s : servers)
    s->stop_all();
  return failures == 0 ? 0 : 1;
}
