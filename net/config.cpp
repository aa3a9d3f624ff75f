#include "net/config.hpp"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>
#include <thread>

#include <boost/asio/ip/address.hpp>
#include <boost/program_options.hpp>

#include "net/http_stream_client.hpp"
#include "schemas/duration.hpp"
#include "schemas/ingest.hpp"
#include "schemas/token.hpp"
#include "schemas/topic.hpp"

namespace po = boost::program_options;

namespace switchyard {

namespace {

/// Maps SWITCHYARD_HEARTBEAT_INTERVAL to heartbeat-interval, and so on.
std::function<std::string(std::string)>
env_mapper(const po::options_description& desc) {
  return [&desc](const std::string& name) {
    static const std::string prefix = "SWITCHYARD_";
    std::string opt;
    if (name.size() <= prefix.size() || name.rfind(prefix, 0) != 0)
      return opt;
    opt = name.substr(prefix.size());
    for (auto& c : opt)
      c = c == '_' ? '-' : static_cast<char>(std::tolower(c));
    if (desc.find_nothrow(opt, false) == nullptr)
      opt.clear();
    return opt;
  };
}

bool read_secret_file(const std::string& path, std::string& out) {
  std::ifstream in{path};
  if (!in)
    return false;
  std::getline(in, out);
  return true;
}

std::string random_secret() {
  std::random_device rd;
  static constexpr char hex[] = "0123456789abcdef";
  std::string out = "dev-";
  for (int i = 0; i < 32; ++i)
    out.push_back(hex[rd() % 16]);
  return out;
}

/// Adds the secret options shared by the node and the token tool.
void add_secret_options(po::options_description& desc) {
  desc.add_options()("jwt-secret", po::value<std::string>(),
                     "HS256 secret for tokens (prefer the environment: "
                     "SWITCHYARD_JWT_SECRET)")(
    "jwt-secret-file", po::value<std::string>(),
    "file whose first line is the HS256 secret")(
    "config", po::value<std::string>(),
    "config file (INI: key = value, keys as the long flags)");
}

/// Reads flags, environment and config file into `vm`; the keys of the
/// file's `[ingest.<source>]` sections go to `ingest` (ignored when null).
bool load(po::options_description& desc, int argc, char** argv,
          po::variables_map& vm,
          std::vector<ingest::config_entry>* ingest = nullptr) {
  try {
    po::store(po::parse_command_line(argc, argv, desc), vm);
    po::store(po::parse_environment(desc, env_mapper(desc)), vm);
    if (vm.count("config")) {
      auto path = vm["config"].as<std::string>();
      std::ifstream in{path};
      if (!in) {
        std::cerr << "switchyard: cannot read config file " << path << "\n";
        return false;
      }
      // Unregistered keys are allowed only for the webhook sections, whose
      // names (the sources) no flag table can list.
      auto parsed = po::parse_config_file(in, desc, true);
      for (auto& opt : parsed.options) {
        if (!opt.unregistered)
          continue;
        if (opt.string_key.rfind("ingest.", 0) != 0)
          throw po::unknown_option(opt.string_key);
        if (ingest != nullptr)
          ingest->emplace_back(opt.string_key,
                               opt.value.empty() ? std::string{}
                                                 : opt.value.front());
      }
      po::store(parsed, vm);
    }
    po::notify(vm);
    return true;
  } catch (const po::error& e) {
    std::cerr << "switchyard: " << e.what() << "\n";
    return false;
  }
}

bool read_file(const std::string& path, std::string& out) {
  std::ifstream in{path, std::ios::binary};
  if (!in)
    return false;
  std::ostringstream buf;
  buf << in.rdbuf();
  out = buf.str();
  return true;
}

/// Loads the keys of `--jwt-public-key` and `--jwt-jwks` into `keys`;
/// returns an error or an empty string.
std::string keys_from(const po::variables_map& vm, key_set& keys) {
  auto files = [&](const char* name) {
    return vm.count(name) ? vm[name].as<std::vector<std::string>>()
                          : std::vector<std::string>{};
  };
  for (auto& arg : files("jwt-public-key")) {
    // `kid=FILE` when a '=' comes before any '/', else the kid is the file
    // name without its extension.
    auto path = arg;
    std::string kid;
    auto eq = arg.find('=');
    if (eq != std::string::npos && arg.find('/') > eq) {
      kid = arg.substr(0, eq);
      path = arg.substr(eq + 1);
    } else {
      kid = std::filesystem::path{arg}.stem().string();
    }
    std::string pem;
    if (!read_file(path, pem))
      return "--jwt-public-key: cannot read " + path;
    if (auto err = add_pem_key(keys, kid, pem); !err.empty())
      return "--jwt-public-key " + path + ": " + err;
  }
  for (auto& path : files("jwt-jwks")) {
    std::string jwks;
    if (!read_file(path, jwks))
      return "--jwt-jwks: cannot read " + path;
    if (auto err = add_jwks(keys, jwks); !err.empty())
      return "--jwt-jwks " + path + ": " + err;
  }
  return {};
}

bool secret_from(const po::variables_map& vm, std::string& secret) {
  if (vm.count("jwt-secret"))
    secret = vm["jwt-secret"].as<std::string>();
  else if (vm.count("jwt-secret-file")
           && !read_secret_file(vm["jwt-secret-file"].as<std::string>(),
                                secret)) {
    std::cerr << "switchyard: cannot read jwt-secret-file\n";
    return false;
  }
  return true;
}

/// Whether `s` is an origin as a browser sends it: `scheme://host[:port]`,
/// lower case, without path or trailing slash.
bool valid_origin(std::string_view s) {
  auto sep = s.find("://");
  if (sep == 0 || sep == std::string_view::npos || sep + 3 == s.size())
    return false;
  auto is_scheme_char = [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '-'
      || c == '.';
  };
  auto is_host_char = [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.'
      || c == ':' || c == '[' || c == ']';
  };
  auto scheme = s.substr(0, sep);
  auto host = s.substr(sep + 3);
  return std::all_of(scheme.begin(), scheme.end(), is_scheme_char)
    && std::all_of(host.begin(), host.end(), is_host_char);
}

/// The non-empty items of a comma-separated flag value.
std::vector<std::string> comma_separated(const std::string& list) {
  std::vector<std::string> items;
  size_t pos = 0;
  while (pos <= list.size()) {
    auto comma = std::min(list.find(',', pos), list.size());
    if (comma > pos)
      items.push_back(list.substr(pos, comma - pos));
    pos = comma + 1;
  }
  return items;
}

/// Parses `--allowed-origins`: comma-separated origins or `*`, lower-cased.
bool parse_origins(const std::string& list, std::vector<std::string>& out,
                   std::string& error) {
  for (auto item : comma_separated(list)) {
    auto first = item.find_first_not_of(" \t");
    if (first == std::string::npos)
      continue;
    item = item.substr(first, item.find_last_not_of(" \t") - first + 1);
    for (auto& c : item)
      c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (item != "*" && !valid_origin(item)) {
      error = "--allowed-origins: '" + item
        + "' is not an origin like https://app.example.com "
          "(scheme://host[:port], no path), nor *";
      return false;
    }
    out.push_back(std::move(item));
  }
  if (out.empty()) {
    error = "--allowed-origins needs at least one origin, or *";
    return false;
  }
  return true;
}

} // namespace

parsed_options parse_node_options(int argc, char** argv) {
  parsed_options result;
  node_options opts;
  auto& c = opts.cfg;
  auto hw = std::max(2u, std::thread::hardware_concurrency());
  auto dur = [](std::chrono::milliseconds d) {
    return format_duration(d);
  };
  po::options_description desc{
    "Usage: switchyard [options]\n       switchyard token --sub ID --org ORG "
    "[--admin] [--pub PATTERN]... [--sub-allow PATTERN]... [--ttl 1h]\n\n"
    "Node options (flags > SWITCHYARD_* environment > --config file)"};
  desc.add_options()("help,h", "print this help")(
    "host", po::value<std::string>()->default_value(opts.host),
    "address to listen on")(
    "port", po::value<unsigned short>()->default_value(opts.port),
    "port for WebSocket and HTTP (0 picks a free one)")(
    "tls-cert", po::value<std::string>(),
    "PEM certificate chain: serve TLS only (https, wss); reread on SIGHUP")(
    "tls-key", po::value<std::string>(), "PEM private key for --tls-cert")(
    "dev", po::bool_switch(),
    "generate a development secret when none is configured and print it; "
    "without --allowed-origins, allow any browser origin")(
    "allowed-origins", po::value<std::string>(),
    "browser origins that may open WebSockets and call /v1/* (CORS), "
    "comma-separated (https://app.example.com,...), or *; default: none "
    "(requests without an Origin header are always served)")(
    "heartbeat-interval",
    po::value<std::string>()->default_value(dur(c.heartbeat_interval)),
    "time between server pings")(
    "heartbeat-timeout",
    po::value<std::string>()->default_value(dur(c.heartbeat_timeout)),
    "close with 4408 when a pong is this late")(
    "auth-timeout",
    po::value<std::string>()->default_value(dur(c.auth_timeout)),
    "close with 4401 when no auth arrives in time")(
    "close-timeout",
    po::value<std::string>()->default_value(dur(c.close_timeout)),
    "longest closing handshake before the socket is cut")(
    "agent-stall-timeout",
    po::value<std::string>()->default_value(dur(c.agent_stall_timeout)),
    "an agent reply with no token for this long ends as failed")(
    "room-idle-timeout",
    po::value<std::string>()->default_value(dur(c.room_idle_timeout)),
    "a room unused this long leaves memory (reloaded from the store)")(
    "max-message-text", po::value<size_t>()->default_value(c.max_message_text),
    "longest text of a posted room message, bytes")(
    "max-reply-text", po::value<size_t>()->default_value(c.max_reply_text),
    "longest agent reply, bytes (a longer one ends as failed)")(
    "stream-coalesce-bytes",
    po::value<size_t>()->default_value(c.stream_coalesce_bytes),
    "a client this many bytes behind gets reply tokens coalesced")(
    "max-frame-size", po::value<size_t>()->default_value(c.max_frame_size),
    "largest inbound message and HTTP body, bytes (1009 beyond)")(
    "max-subscriptions",
    po::value<size_t>()->default_value(c.max_subscriptions),
    "distinct patterns per connection")(
    "outbound-queue-limit",
    po::value<size_t>()->default_value(c.outbound_queue_limit),
    "bytes queued for one client before it is closed with 4409")(
    "batch-frame-size", po::value<size_t>()->default_value(c.batch_frame_size),
    "largest frame of the batched subprotocols (ndjson, msgpack), bytes")(
    "write-gather-us",
    po::value<int64_t>()->default_value(c.write_gather.count()),
    "microseconds a recently written socket waits to gather more (0: never)")(
    "write-gather-bytes",
    po::value<size_t>()->default_value(c.write_gather_bytes),
    "queued bytes at which a socket is written without waiting")(
    "max-inbound-rate",
    po::value<uint32_t>()->default_value(c.max_inbound_rate),
    "inbound frames per second per connection (4429 when flooding)")(
    "max-connections-per-user",
    po::value<uint32_t>()->default_value(c.max_connections_per_user),
    "concurrent connections of one user on this node")(
    "presence-max-members",
    po::value<uint32_t>()->default_value(c.presence_max_members),
    "users of one presence topic whose joins and leaves are published and "
    "listed; above, only counts")(
    "max-json-depth", po::value<size_t>()->default_value(c.max_json_depth),
    "deepest nesting of arrays and objects in client frames, HTTP bodies "
    "and NATS envelopes (2 to 1024)")(
    "max-ingest-body", po::value<size_t>()->default_value(c.max_ingest_body),
    "largest body of POST /v1/ingest/{source}, bytes (413 beyond); the "
    "sources are [ingest.<source>] sections of the --config file")(
    "io-threads", po::value<unsigned>()->default_value(hw / 2),
    "Asio threads for sockets")("actor-threads",
                                po::value<unsigned>()->default_value(hw / 2),
                                "CAF scheduler threads")(
    "log-level", po::value<std::string>()->default_value(opts.log_level),
    "trace, debug, info, warn, error");
  po::options_description token_desc{
    "Tokens (HS256 with the secret; RS256/384/512 and ES256 with the keys "
    "below, picked by the token's kid)"};
  token_desc.add_options()(
    "jwt-public-key", po::value<std::vector<std::string>>()->composing(),
    "PEM public key file (RSA or EC P-256), kid = file name without "
    "extension, or kid=FILE (repeatable)")(
    "jwt-jwks", po::value<std::vector<std::string>>()->composing(),
    "JWKS file of an identity provider (repeatable)")(
    "jwt-leeway", po::value<std::string>()->default_value(dur(c.jwt_leeway)),
    "how far nbf and iat may be ahead of this node's clock");
  desc.add(token_desc);
  auto& n = opts.nats;
  po::options_description nats_desc{
    "Event bus (without --nats: the in-process bus, this node only)"};
  nats_desc.add_options()(
    "nats", po::value<std::string>(),
    "NATS server URLs, comma-separated (nats://host:4222,...)")(
    "nats-user", po::value<std::string>(),
    "NATS user")("nats-password", po::value<std::string>(),
                 "NATS password (prefer SWITCHYARD_NATS_PASSWORD)")(
    "nats-token", po::value<std::string>(),
    "NATS token (prefer SWITCHYARD_NATS_TOKEN)")("nats-tls", po::bool_switch(),
                                                 "require TLS to NATS")(
    "nats-tls-ca", po::value<std::string>(), "CA certificates file")(
    "nats-tls-cert", po::value<std::string>(), "client certificate file")(
    "nats-tls-key", po::value<std::string>(), "client key file")(
    "nats-reconnect-wait",
    po::value<std::string>()->default_value(dur(n.reconnect_wait)),
    "first reconnect delay; doubles per attempt")(
    "nats-reconnect-wait-max",
    po::value<std::string>()->default_value(dur(n.reconnect_wait_max)),
    "longest reconnect delay")(
    "nats-pending-msgs", po::value<int>()->default_value(n.pending_msgs),
    "messages buffered per interest subscription before nats.c drops "
    "(slow consumer)")(
    "nats-pending-bytes", po::value<int64_t>()->default_value(n.pending_bytes),
    "bytes buffered per interest subscription before nats.c drops")(
    "nats-replicas", po::value<int>()->default_value(n.replicas),
    "JetStream copies of the buckets and stream the node creates (1-5; 3 "
    "in a 3-node NATS cluster)")(
    "nats-delivery-threads",
    po::value<int>()->default_value(n.delivery_threads),
    "nats.c threads that decode and hand messages to topic actors");
  desc.add(nats_desc);
  auto& h = c.history;
  po::options_description history_desc{
    "History and recovery (needs --nats with JetStream; off without "
    "--history)"};
  history_desc.add_options()(
    "history", po::bool_switch(),
    "keep events.> in the JetStream stream SWITCHYARD_EVENTS: event frames "
    "carry seq and epoch, subscribe may recover, POST /v1/history")(
    "history-max-age", po::value<std::string>()->default_value(dur(h.max_age)),
    "events older than this leave the stream")(
    "history-max-msgs", po::value<int64_t>()->default_value(h.max_msgs),
    "most events kept (the oldest leave first)")(
    "history-max-bytes", po::value<int64_t>()->default_value(h.max_bytes),
    "most bytes kept (the oldest leave first)")(
    "history-replay-max", po::value<size_t>()->default_value(h.replay_max),
    "most events one subscribe recovers; beyond: recovered false, too_many")(
    "history-replay-max-bytes",
    po::value<size_t>()->default_value(h.replay_max_bytes),
    "most payload bytes one subscribe recovers")(
    "history-readers", po::value<int>()->default_value(h.readers),
    "replays and history pages read from JetStream at once");
  desc.add(history_desc);
  auto& ns = c.notify;
  auto& ch = opts.channels;
  po::options_description notify_desc{
    "Notifications (push and email off unless configured)"};
  notify_desc.add_options()(
    "push-url", po::value<std::string>(),
    "push gateway URL (http:// or https://); one POST per notification")(
    "push-header", po::value<std::vector<std::string>>()->composing(),
    "extra header of push requests, 'Name: value' (repeatable; prefer "
    "SWITCHYARD_PUSH_HEADER for credentials)")(
    "smtp-host", po::value<std::string>(), "mail server for email")(
    "smtp-port", po::value<std::string>()->default_value(ch.smtp.port),
    "mail server port (465 with --smtp-tls implicit)")(
    "smtp-tls", po::value<std::string>()->default_value("starttls"),
    "starttls (when offered), required, implicit or off")(
    "smtp-user", po::value<std::string>(),
    "SMTP AUTH user")("smtp-password", po::value<std::string>(),
                      "SMTP AUTH password (prefer SWITCHYARD_SMTP_PASSWORD)")(
    "smtp-ca-file", po::value<std::string>(),
    "extra CA certificates for the mail server (PEM)")(
    "smtp-no-verify", po::bool_switch(),
    "do not verify the mail server's certificate (tests only)")(
    "smtp-from", po::value<std::string>(),
    "sender address of notification emails")(
    "smtp-from-name", po::value<std::string>()->default_value("Switchyard"),
    "sender name of notification emails")(
    "notify-ack-timeout",
    po::value<std::string>()->default_value(dur(ns.ack_timeout)),
    "wait this long for an ack before the next channel")(
    "notify-digest-window",
    po::value<std::string>()->default_value(dur(ns.digest_window)),
    "low priority emails of a user go out together after this long")(
    "notify-rate-limit", po::value<uint32_t>()->default_value(ns.rate_limit),
    "pushes and emails of low and normal priority per user and hour")(
    "notify-retry-max-delay",
    po::value<std::string>()->default_value(dur(ns.retry_max_delay)),
    "longest wait between retries of a push or email")(
    "notify-give-up-after",
    po::value<std::string>()->default_value(dur(ns.give_up_after)),
    "a push or email still failing this long is marked failed");
  desc.add(notify_desc);
  po::options_description cluster_desc{
    "Cluster (CAF middleman; off without --cluster-port)"};
  cluster_desc.add_options()(
    "cluster-port", po::value<uint16_t>()->default_value(0),
    "port of the cluster listener other nodes connect to")(
    "cluster-host", po::value<std::string>()->default_value(opts.cluster_host),
    "address the cluster listener binds to")(
    "cluster-advertise", po::value<std::string>(),
    "host:port other nodes reach this one at (default cluster-host:port)")(
    "cluster-seeds", po::value<std::string>(),
    "host:port of other members, comma-separated; one live one is enough")(
    "node-name", po::value<std::string>(),
    "this node's name in the cluster, stable across restarts (default the "
    "advertised address)")(
    "cluster-timeout",
    po::value<std::string>()->default_value(dur(opts.cluster_timeout)),
    "a member silent this long is down; its rooms and users move")(
    "cluster-tls-cert", po::value<std::string>(),
    "PEM certificate (chain) this node presents to the other members")(
    "cluster-tls-key", po::value<std::string>(),
    "PEM private key of --cluster-tls-cert")(
    "cluster-tls-ca", po::value<std::string>(),
    "PEM CA certificates: members accept only peers whose certificate "
    "these signed");
  desc.add(cluster_desc);
  add_secret_options(desc);
  po::variables_map vm;
  std::vector<ingest::config_entry> ingest_entries;
  if (!load(desc, argc, argv, vm, &ingest_entries)) {
    result.exit_code = 2;
    return result;
  }
  if (vm.count("help")) {
    std::cout << desc << "\n";
    return result;
  }
  auto fail = [&](const std::string& msg) {
    std::cerr << "switchyard: " << msg << "\n";
    result.exit_code = 2;
    return result;
  };
  opts.host = vm["host"].as<std::string>();
  boost::system::error_code host_ec;
  boost::asio::ip::make_address(opts.host, host_ec);
  if (host_ec)
    return fail("--host needs an IP address like 127.0.0.1, 0.0.0.0 or ::1, "
                "not '"
                + opts.host + "'");
  opts.port = vm["port"].as<unsigned short>();
  opts.io_threads = std::max(1u, vm["io-threads"].as<unsigned>());
  opts.actor_threads = std::max(1u, vm["actor-threads"].as<unsigned>());
  opts.log_level = vm["log-level"].as<std::string>();
  struct {
    const char* name;
    std::chrono::milliseconds* target;
    bool zero_ok = false;
  } durations[] = {{"heartbeat-interval", &c.heartbeat_interval},
                   {"heartbeat-timeout", &c.heartbeat_timeout},
                   {"auth-timeout", &c.auth_timeout},
                   {"close-timeout", &c.close_timeout},
                   {"agent-stall-timeout", &c.agent_stall_timeout},
                   {"room-idle-timeout", &c.room_idle_timeout},
                   {"nats-reconnect-wait", &n.reconnect_wait},
                   {"nats-reconnect-wait-max", &n.reconnect_wait_max},
                   {"notify-ack-timeout", &ns.ack_timeout},
                   {"notify-digest-window", &ns.digest_window},
                   {"notify-retry-max-delay", &ns.retry_max_delay},
                   {"notify-give-up-after", &ns.give_up_after},
                   {"cluster-timeout", &opts.cluster_timeout},
                   {"history-max-age", &c.history.max_age},
                   {"jwt-leeway", &c.jwt_leeway, true}};
  for (auto& d : durations) {
    auto parsed = parse_duration(vm[d.name].as<std::string>());
    if (!parsed || parsed->count() < 0 || (parsed->count() == 0 && !d.zero_ok))
      return fail(std::string{"--"} + d.name
                  + " needs a duration like 250ms, 25s, 5m or 1h");
    *d.target = *parsed;
  }
  opts.cluster_port = vm["cluster-port"].as<uint16_t>();
  opts.cluster_host = vm["cluster-host"].as<std::string>();
  if (opts.cluster_port != 0) {
    opts.cluster_advertise = opts.cluster_host + ":"
      + std::to_string(opts.cluster_port);
    if (vm.count("cluster-advertise"))
      opts.cluster_advertise = vm["cluster-advertise"].as<std::string>();
    std::string host;
    uint16_t port = 0;
    if (!split_address(opts.cluster_advertise, host, port))
      return fail("--cluster-advertise needs host:port");
    // Every node bound to all interfaces would advertise the same address,
    // and take it for its name too.
    if (host == "0.0.0.0" || host == "::" || host.empty())
      return fail("--cluster-advertise needs the host:port other nodes "
                  "reach this one at (--cluster-host "
                  + opts.cluster_host + " is no such address)");
    opts.node_name = opts.cluster_advertise;
    if (vm.count("node-name"))
      opts.node_name = vm["node-name"].as<std::string>();
    if (opts.node_name.empty())
      return fail("--node-name must not be empty");
    if (vm.count("cluster-seeds"))
      opts.cluster_seeds
        = comma_separated(vm["cluster-seeds"].as<std::string>());
    for (auto& seed : opts.cluster_seeds)
      if (!split_address(seed, host, port))
        return fail("--cluster-seeds needs host:port entries, not '" + seed
                    + "'");
    for (auto [name, out] :
         {std::pair{"cluster-tls-cert", &opts.cluster_tls_cert},
          {"cluster-tls-key", &opts.cluster_tls_key},
          {"cluster-tls-ca", &opts.cluster_tls_ca}})
      if (vm.count(name))
        *out = vm[name].as<std::string>();
    auto tls_given = !opts.cluster_tls_cert.empty()
      + !opts.cluster_tls_key.empty() + !opts.cluster_tls_ca.empty();
    if (tls_given != 0 && tls_given != 3)
      return fail("--cluster-tls-cert, --cluster-tls-key and --cluster-tls-ca "
                  "go together");
    for (auto* file :
         {&opts.cluster_tls_cert, &opts.cluster_tls_key, &opts.cluster_tls_ca})
      if (!file->empty() && !std::ifstream{*file})
        return fail("cannot read " + *file + " (--cluster-tls-*)");
  } else if (vm.count("cluster-seeds") || vm.count("cluster-advertise")
             || vm.count("cluster-tls-cert")) {
    return fail("--cluster-seeds, --cluster-advertise and --cluster-tls-* "
                "need --cluster-port");
  }
  if (vm.count("nats")) {
    n.servers = comma_separated(vm["nats"].as<std::string>());
    if (n.servers.empty())
      return fail("--nats needs at least one URL");
  }
  // Members rebuild each other's rooms and resume each other's deliveries
  // from JetStream: without it, each would keep its own, and lose them.
  if (opts.cluster_port != 0 && n.servers.empty())
    return fail("--cluster-port needs --nats: the members of a cluster share "
                "rooms and notifications through JetStream");
  auto str = [&](const char* name, std::string& out) {
    if (vm.count(name))
      out = vm[name].as<std::string>();
  };
  str("tls-cert", opts.tls_cert);
  str("tls-key", opts.tls_key);
  if (opts.tls_cert.empty() != opts.tls_key.empty())
    return fail("--tls-cert and --tls-key go together");
  str("nats-user", n.user);
  str("nats-password", n.password);
  str("nats-token", n.token);
  str("nats-tls-ca", n.tls_ca);
  str("nats-tls-cert", n.tls_cert);
  str("nats-tls-key", n.tls_key);
  n.tls = vm["nats-tls"].as<bool>();
  str("push-url", ch.push_url);
  if (!ch.push_url.empty()) {
    std::string error;
    if (!parse_http_url(ch.push_url, error))
      return fail("--push-url: " + error);
  }
  if (vm.count("push-header"))
    for (auto& h : vm["push-header"].as<std::vector<std::string>>()) {
      auto colon = h.find(':');
      auto bad = h.find_first_of("\r\n") != std::string::npos;
      if (colon == std::string::npos || colon == 0 || bad)
        return fail("--push-header needs 'Name: value', not '" + h + "'");
      auto value = h.substr(colon + 1);
      value.erase(0, value.find_first_not_of(' '));
      ch.push_headers.emplace_back(h.substr(0, colon), value);
    }
  str("smtp-host", ch.smtp.host);
  ch.smtp.port = vm["smtp-port"].as<std::string>();
  auto tls_mode = vm["smtp-tls"].as<std::string>();
  if (tls_mode == "starttls")
    ch.smtp.tls = net::smtp_config::tls_mode::starttls;
  else if (tls_mode == "required")
    ch.smtp.tls = net::smtp_config::tls_mode::required;
  else if (tls_mode == "implicit")
    ch.smtp.tls = net::smtp_config::tls_mode::implicit;
  else if (tls_mode == "off")
    ch.smtp.tls = net::smtp_config::tls_mode::off;
  else
    return fail("--smtp-tls is starttls, required, implicit or off");
  str("smtp-user", ch.smtp.username);
  str("smtp-password", ch.smtp.password);
  str("smtp-ca-file", ch.smtp.ca_file);
  ch.smtp.verify_peer = !vm["smtp-no-verify"].as<bool>();
  str("smtp-from", ch.smtp.from);
  ch.smtp.from_name = vm["smtp-from-name"].as<std::string>();
  if (!ch.smtp.host.empty() && ch.smtp.from.empty())
    return fail("--smtp-host needs --smtp-from (the sender address)");
  ns.rate_limit = vm["notify-rate-limit"].as<uint32_t>();
  n.pending_msgs = vm["nats-pending-msgs"].as<int>();
  n.pending_bytes = vm["nats-pending-bytes"].as<int64_t>();
  n.delivery_threads = std::max(1, vm["nats-delivery-threads"].as<int>());
  n.replicas = vm["nats-replicas"].as<int>();
  if (n.replicas < 1 || n.replicas > 5)
    return fail("--nats-replicas needs 1 to 5");
  auto& hs = c.history;
  hs.enabled = vm["history"].as<bool>();
  if (hs.enabled && n.servers.empty())
    return fail("--history needs --nats: the history is a JetStream stream");
  hs.max_msgs = vm["history-max-msgs"].as<int64_t>();
  hs.max_bytes = vm["history-max-bytes"].as<int64_t>();
  hs.replay_max = vm["history-replay-max"].as<size_t>();
  hs.replay_max_bytes = vm["history-replay-max-bytes"].as<size_t>();
  hs.readers = vm["history-readers"].as<int>();
  if (hs.max_msgs < 1 || hs.max_bytes < 1024 || hs.replay_max < 1
      || hs.replay_max_bytes < 1024 || hs.readers < 1 || hs.readers > 64)
    return fail("--history-max-msgs and --history-replay-max need at least "
                "1, --history-max-bytes and --history-replay-max-bytes at "
                "least 1024, --history-readers 1 to 64");
  c.max_frame_size = vm["max-frame-size"].as<size_t>();
  c.max_subscriptions = vm["max-subscriptions"].as<size_t>();
  c.outbound_queue_limit = vm["outbound-queue-limit"].as<size_t>();
  c.batch_frame_size = vm["batch-frame-size"].as<size_t>();
  c.write_gather
    = std::chrono::microseconds{vm["write-gather-us"].as<int64_t>()};
  c.write_gather_bytes = vm["write-gather-bytes"].as<size_t>();
  if (c.write_gather.count() < 0 || c.write_gather.count() > 100'000)
    return fail("--write-gather-us must be between 0 and 100000");
  c.max_inbound_rate = std::max(1u, vm["max-inbound-rate"].as<uint32_t>());
  c.max_connections_per_user = vm["max-connections-per-user"].as<uint32_t>();
  c.presence_max_members = vm["presence-max-members"].as<uint32_t>();
  if (c.max_frame_size < 128)
    return fail("--max-frame-size must be at least 128 bytes");
  if (c.batch_frame_size < 1024)
    return fail("--batch-frame-size must be at least 1024 bytes");
  if (vm.count("allowed-origins")) {
    std::string error;
    if (!parse_origins(vm["allowed-origins"].as<std::string>(),
                       c.allowed_origins, error))
      return fail(error);
  } else if (vm["dev"].as<bool>()) {
    c.allowed_origins = {"*"};
  }
  c.max_message_text = vm["max-message-text"].as<size_t>();
  c.max_reply_text = vm["max-reply-text"].as<size_t>();
  c.stream_coalesce_bytes = vm["stream-coalesce-bytes"].as<size_t>();
  if (c.max_message_text == 0 || c.max_reply_text == 0)
    return fail("--max-message-text and --max-reply-text must be positive");
  c.max_json_depth = vm["max-json-depth"].as<size_t>();
  if (c.max_json_depth < 2 || c.max_json_depth > 1024)
    return fail("--max-json-depth must be between 2 and 1024");
  c.max_ingest_body = vm["max-ingest-body"].as<size_t>();
  if (c.max_ingest_body < 1024)
    return fail("--max-ingest-body must be at least 1024 bytes");
  if (auto err = ingest::parse_sources(ingest_entries, c.ingest_sources);
      !err.empty())
    return fail("--config: " + err);
  if (!secret_from(vm, c.jwt_keys.secret)) {
    result.exit_code = 2;
    return result;
  }
  if (auto err = keys_from(vm, c.jwt_keys); !err.empty())
    return fail(err);
  // With public keys the node needs no secret: HS256 tokens are then
  // refused.
  if (c.jwt_keys.secret.empty() && c.jwt_keys.keys.empty()) {
    if (!vm["dev"].as<bool>())
      return fail("no JWT secret: set SWITCHYARD_JWT_SECRET, --jwt-secret, "
                  "--jwt-secret-file, --jwt-public-key or --jwt-jwks, or run "
                  "with --dev");
    c.jwt_keys.secret = random_secret();
    opts.dev_secret = true;
  }
  result.options = std::move(opts);
  return result;
}

int run_token_command(int argc, char** argv) {
  po::options_description desc{
    "Usage: switchyard token --sub ID --org ORG [options]\nPrints a signed "
    "token for the configured secret"};
  desc.add_options()("help,h", "print this help")(
    "sub", po::value<std::string>()->required(), "user or service id")(
    "org", po::value<std::string>()->required(), "organisation id")(
    "admin", po::bool_switch(), "may use admin endpoints, for its own org")(
    "node-admin", po::bool_switch(),
    "may use admin endpoints, for every org of the node (implies --admin)")(
    "pub", po::value<std::vector<std::string>>()->composing(),
    "pattern the token may publish to (repeatable)")(
    "sub-allow", po::value<std::vector<std::string>>()->composing(),
    "pattern the token may subscribe to (repeatable; default "
    "events.<org>.>)")("ttl", po::value<std::string>()->default_value("1h"),
                       "lifetime, like 30s, 15m or 1h");
  add_secret_options(desc);
  po::variables_map vm;
  for (int i = 1; i < argc; ++i)
    if (std::string_view{argv[i]} == "--help"
        || std::string_view{argv[i]} == "-h") {
      std::cout << desc << "\n";
      return 0;
    }
  if (!load(desc, argc, argv, vm))
    return 2;
  claims c;
  c.sub = vm["sub"].as<std::string>();
  c.org = vm["org"].as<std::string>();
  c.node_admin = vm["node-admin"].as<bool>();
  c.admin = c.node_admin || vm["admin"].as<bool>();
  if (!topic::valid_topic(c.org) || c.org.find('.') != std::string::npos) {
    std::cerr << "switchyard token: --org must be one topic token "
                 "([A-Za-z0-9_-]+)\n";
    return 2;
  }
  // Nodes fence every token to its org; a pattern outside it would be
  // dead weight in the token, or a sign of a mistake.
  auto fence = "events." + c.org + ".>";
  auto patterns = [&](const char* name, std::vector<std::string>& out) {
    if (!vm.count(name))
      return true;
    out = vm[name].as<std::vector<std::string>>();
    for (auto& p : out) {
      if (!topic::valid_pattern(p)) {
        std::cerr << "switchyard token: invalid pattern " << p << "\n";
        return false;
      }
      if (!topic::covers(fence, p)) {
        std::cerr << "switchyard token: --" << name << " " << p
                  << " reaches outside the org (" << fence << ")\n";
        return false;
      }
    }
    return true;
  };
  if (!patterns("pub", c.pub_allow) || !patterns("sub-allow", c.sub_allow))
    return 2;
  auto ttl = parse_duration(vm["ttl"].as<std::string>());
  if (!ttl) {
    std::cerr << "switchyard token: --ttl needs a duration like 1h\n";
    return 2;
  }
  // exp is whole seconds: round a sub-second ttl up so the token is usable.
  c.exp = (node_context::unix_ms() + ttl->count() + 999) / 1000;
  std::string secret;
  if (!secret_from(vm, secret))
    return 2;
  if (secret.empty()) {
    std::cerr << "switchyard token: no secret (SWITCHYARD_JWT_SECRET, "
                 "--jwt-secret or --jwt-secret-file)\n";
    return 2;
  }
  std::cout << mint_token(c, secret) << "\n";
  return 0;
}

} // namespace switchyard
