// switchyard: one node of the gateway, or `switchyard token` to mint tokens.

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <mutex>
#include <string_view>
#include <thread>

#include <signal.h>
#include <unistd.h>

#include <boost/asio.hpp>
#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <caf/openssl/all.hpp>

#include "actors/agent_gateway.hpp"
#include "actors/agents/registry.hpp"
#include "actors/bus_bridge.hpp"
#include "actors/bus_publisher.hpp"
#include "actors/cluster.hpp"
#include "actors/history.hpp"
#include "actors/local_bus.hpp"
#include "actors/log.hpp"
#include "actors/notification_directory.hpp"
#include "actors/notification_store.hpp"
#include "actors/room_directory.hpp"
#include "actors/room_store.hpp"
#include "actors/session_registry.hpp"
#include "actors/topic_root.hpp"
#include "net/config.hpp"
#include "net/http_stream_client.hpp"
#include "net/jetstream_history.hpp"
#include "net/jetstream_store.hpp"
#include "net/listener.hpp"
#include "net/notification_channels.hpp"
#include "schemas/messages.hpp"

namespace asio = boost::asio;
using namespace switchyard;

namespace {

// -- exit statuses (docs/operations.md) ---------------------------------------
// 0: stopped on SIGTERM/SIGINT; 2: bad flags or configuration (config.cpp);
// 128 + signal number: a second SIGTERM/SIGINT cut a stop short.

/// The node could not start: the port is taken, the address is not on this
/// host, or the NATS client could not be set up.
constexpr int exit_start_failed = 1;

/// A stop overran `close_timeout + stop_grace` and the watchdog ended it.
constexpr int exit_stop_overran = 3;

// -- bounds of a stop ---------------------------------------------------------

/// Between drain polls. Each poll also closes sessions that registered after
/// the previous one (an upgrade that completed as the signal came).
constexpr auto drain_poll = std::chrono::milliseconds(20);

/// How long the drain waits past the close timeout: every closing connection
/// cuts its socket by its own timer `close_timeout` after it started
/// closing, which for a late session is up to a poll after the signal.
constexpr auto drain_slack = std::chrono::milliseconds(500);

/// How long the actors may take to exit once told: each finishes the message
/// at hand, which takes microseconds; a one-shot HTTP actor waits at most
/// for its request timeout, and is abandoned past this.
constexpr auto actor_stop_timeout = std::chrono::seconds(2);

/// Time a stop may take past the close timeout before the watchdog ends the
/// process: the drain slack, the actors' exit, closing NATS (which flushes)
/// and joining the threads fit in it with room for a loaded machine.
constexpr auto stop_grace = std::chrono::seconds(5);

/// Ends the process when an orderly stop overruns its bound. A plain thread,
/// not an actor: it must fire when the actor system is what hangs.
class stop_watchdog {
public:
  /// Starts counting down `bound`.
  void arm(std::chrono::milliseconds bound) {
    thread_ = std::thread{[this, bound] {
      std::unique_lock<std::mutex> guard{mtx_};
      if (cv_.wait_for(guard, bound, [this] {
            return done_;
          }))
        return;
      logger("node")->error("stop did not finish within {} ms; exiting with "
                            "status {}",
                            bound.count(), exit_stop_overran);
      std::_Exit(exit_stop_overran);
    }};
  }

  /// Disarms (the stop finished) and joins.
  ~stop_watchdog() {
    {
      std::lock_guard<std::mutex> guard{mtx_};
      done_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable())
      thread_.join();
  }

private:
  std::mutex mtx_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

/// Installed once a stop began: a second SIGTERM or SIGINT exits at once.
extern "C" void exit_on_second_signal(int sig) {
  static constexpr char msg[]
    = "switchyard: second signal during the stop, exiting now\n";
  [[maybe_unused]] auto n = ::write(STDERR_FILENO, msg, sizeof(msg) - 1);
  std::_Exit(128 + sig);
}

/// Polls until every connection finished its closing handshake, or until
/// `deadline`, then stops the I/O threads.
void drain_then_stop(std::shared_ptr<asio::steady_timer> timer,
                     node_context_ptr ctx,
                     std::chrono::steady_clock::time_point deadline,
                     net::io_pool& pool) {
  auto open = ctx->stats.connections.load();
  if (open == 0 || std::chrono::steady_clock::now() >= deadline) {
    if (open > 0)
      logger("node")->warn("{} connections still open at the drain deadline",
                           open);
    pool.stop();
    return;
  }
  ctx->sinks.close_all(frames::close_code::going_away, "node shutting down");
  timer->expires_after(drain_poll);
  timer->async_wait([=, &pool](boost::system::error_code) {
    drain_then_stop(timer, ctx, deadline, pool);
  });
}

/// Tells the node's actors to exit and waits for every actor of `sys`, at
/// most `actor_stop_timeout`.
void stop_actors(caf::actor_system& sys, const node_context& ctx) {
  for (auto& hdl : {caf::actor_cast<caf::actor>(ctx.topics),
                    caf::actor_cast<caf::actor>(ctx.sessions),
                    caf::actor_cast<caf::actor>(ctx.bridge),
                    caf::actor_cast<caf::actor>(ctx.publisher),
                    caf::actor_cast<caf::actor>(ctx.rooms),
                    caf::actor_cast<caf::actor>(ctx.notifications),
                    caf::actor_cast<caf::actor>(ctx.cluster)})
    if (hdl)
      caf::anon_send_exit(hdl, caf::exit_reason::user_shutdown);
  auto deadline = std::chrono::steady_clock::now() + actor_stop_timeout;
  while (sys.registry().running() > 0
         && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  if (auto left = sys.registry().running(); left > 0)
    logger("node")->warn("{} actors still running after {} ms; leaving them",
                         left, actor_stop_timeout.count());
}

/// Logs which browser origins may connect.
void log_origin_policy(const settings& cfg) {
  auto log = logger("node");
  auto& list = cfg.allowed_origins;
  if (list.empty()) {
    log->warn("no browser origin allowed: WebSocket upgrades and CORS "
              "preflights that carry an Origin header get 403; set "
              "--allowed-origins to serve browser apps");
  } else if (std::find(list.begin(), list.end(), "*") != list.end()) {
    log->info("any browser origin allowed (--allowed-origins * or --dev)");
  } else {
    std::string joined;
    for (auto& origin : list)
      joined += (joined.empty() ? "" : ", ") + origin;
    log->info("browser origins allowed: {}", joined);
  }
}

int run_node(node_options opts) {
  spdlog::set_level(spdlog::level::from_str(opts.log_level));
  auto log = logger("node");
  // Declared first, so destroyed last: the watchdog covers the destructors
  // below, and actors may post to the I/O contexts until the actor system
  // is gone.
  stop_watchdog watchdog;
  std::shared_ptr<net::tls_config> tls;
  if (!opts.tls_cert.empty()) {
    std::string error;
    tls = net::tls_config::load(opts.tls_cert, opts.tls_key, error);
    if (!tls) {
      log->error("{}", error);
      return exit_start_failed;
    }
  }
  auto ctx = std::make_shared<node_context>(opts.cfg);
  net::io_pool pool{opts.io_threads, ctx->stats.handler_failures};
  caf::actor_system_config cfg;
  add_switchyard_types(cfg);
  cfg.set("scheduler.max-threads", static_cast<size_t>(opts.actor_threads));
  // An idle worker spins briefly (aggressive polls), then sleeps on its
  // condition variable (relaxed: woken by the next job). CAF's default
  // moderate phase in between, 500 polls 50 us apart after every burst of
  // work, woke the workers of an idle node ~1,000 times a second (a fifth of
  // its heartbeat CPU with 19.5k connections).
  cfg.set("work-stealing.moderate-poll-attempts", size_t{10});
  // A relaxed worker also wakes at this period to look for work to steal:
  // 100 ms rather than 10 (a job for it wakes it at once either way).
  cfg.set("work-stealing.relaxed-sleep-duration",
          caf::timespan{std::chrono::milliseconds{100}});
  // The middleman (CAF's network layer) only for a cluster: its threads and
  // sockets cost a node that runs alone nothing.
  auto cluster_tls = !opts.cluster_tls_cert.empty();
  if (opts.cluster_port != 0)
    cfg.load<caf::io::middleman>();
  // With TLS, CAF's OpenSSL module carries BASP: both ends present a
  // certificate and verify the other's against the CA (a CA file makes the
  // module require a peer certificate).
  if (cluster_tls) {
    cfg.load<caf::openssl::manager>();
    cfg.set("openssl.certificate", opts.cluster_tls_cert);
    cfg.set("openssl.key", opts.cluster_tls_key);
    cfg.set("openssl.cafile", opts.cluster_tls_ca);
  }
  caf::actor_system sys{cfg};
  // Everything that can fail at start comes before the first actor: a node
  // that cannot start leaves nothing running for the actor system to wait
  // for, and exits at once.
  auto lst = std::make_shared<net::listener>(pool, sys, ctx, tls);
  try {
    lst->open({asio::ip::make_address(opts.host), opts.port});
  } catch (const std::exception& e) {
    log->error("cannot listen on {}:{}: {}", opts.host, opts.port, e.what());
    return exit_start_failed;
  }
  std::shared_ptr<net::nats_client> nats;
  if (!opts.nats.servers.empty()) {
    std::string error;
    nats = net::nats_client::make(opts.nats, ctx, error);
    if (!nats) {
      log->error("cannot use NATS: {}", error);
      return exit_start_failed;
    }
  }
  if (opts.cluster_port != 0) {
    cluster_config cc;
    cc.seeds = opts.cluster_seeds;
    cc.timeout = opts.cluster_timeout;
    cc.middleman = cluster_tls ? sys.openssl_manager().actor_handle()
                               : sys.middleman().actor_handle();
    cc.stats = &ctx->stats;
    // The first actor: it waits for the node's
    // card (below), and a node that cannot open its cluster port ends it.
    ctx->cluster = sys.spawn(cluster, std::move(cc));
    auto published = cluster_tls
      ? caf::openssl::publish(ctx->cluster, opts.cluster_port,
                              opts.cluster_host.c_str(), true)
      : sys.middleman().publish(ctx->cluster, opts.cluster_port,
                                opts.cluster_host.c_str(), true);
    if (!published) {
      log->error("cannot listen for the cluster on {}:{}: {}",
                 opts.cluster_host, opts.cluster_port,
                 to_string(published.error()));
      caf::anon_send_exit(ctx->cluster, caf::exit_reason::user_shutdown);
      return exit_start_failed;
    }
    log->info("cluster: node {} on {}:{} (advertised as {}), {} seeds, "
              "timeout {} ms, {}",
              opts.node_name, opts.cluster_host, *published,
              opts.cluster_advertise, opts.cluster_seeds.size(),
              opts.cluster_timeout.count(),
              cluster_tls ? "mutual TLS"
                          : "plain TCP (no TLS, no peer "
                            "authentication)");
  }
  std::shared_ptr<net::jetstream_history> history;
  if (nats && ctx->cfg.history.enabled) {
    std::string error;
    auto& hc = ctx->cfg.history;
    history = net::jetstream_history::make(opts.nats, hc,
                                           ctx->cfg.max_json_depth, error);
    if (!history) {
      log->error("cannot keep the history in JetStream: {}", error);
      return exit_start_failed;
    }
    // Before the bridge's first subscription: live events come from the
    // stream's republished copies.
    nats->use_history(net::jetstream_history::live_prefix, history);
    for (int i = 0; i < hc.readers; ++i)
      ctx->history.push_back(
        sys.spawn(history_front,
                  sys.spawn<caf::detached>(
                    history_reader, history,
                    replay_limits{hc.replay_max, hc.replay_max_bytes})));
    log->info("history: events.> kept in JetStream stream {} (max age {} "
              "ms, {} events, {} bytes); live events from {}.events.>; {} "
              "readers",
              net::jetstream_history::stream, hc.max_age.count(), hc.max_msgs,
              hc.max_bytes, net::jetstream_history::live_prefix, hc.readers);
  }
  if (nats) {
    ctx->bus = nats;
    ctx->bridge = sys.spawn(bus_bridge, nats);
    std::string urls;
    for (auto& url : opts.nats.servers)
      urls += (urls.empty() ? "" : ",") + url;
    log->info("event bus: NATS at {}", urls);
  } else {
    ctx->bus = std::make_shared<local_bus>(*ctx);
    log->info("event bus: in-process (no --nats given); events published "
              "here reach only this node's clients");
  }
  // After the bridge: the topic tree keeps its handle.
  ctx->topics = sys.spawn(topic_root, topic_deps_of(ctx));
  // On a thread of its own: a NATS publish can block (bus_publisher.hpp).
  ctx->publisher = sys.spawn<caf::detached>(bus_publisher, ctx->bus);
  auto registry = registry_config(ctx->cfg);
  registry.node = !opts.node_name.empty() ? opts.node_name
                                          : asio::ip::host_name();
  registry.event_ids = ctx->ids.node_id();
  registry.publisher = ctx->publisher;
  registry.topics = ctx->topics;
  registry.clustered = ctx->cluster != nullptr;
  ctx->sessions = sys.spawn(session_registry, std::move(registry));
  auto agents = std::make_shared<agent_registry>();
  register_builtin_agents(*agents);
  ctx->agents = agents;
  ctx->http = net::make_http_port();
  std::shared_ptr<room_store> store;
  std::shared_ptr<notification_store> notify_store;
  if (nats) {
    std::string error;
    auto js = net::jetstream_store::make(opts.nats, error);
    if (!js) {
      log->error("cannot store rooms and notifications in JetStream: {}",
                 error);
      return exit_start_failed;
    }
    store = js;
    notify_store = js;
    log->info("rooms and notifications stored in NATS JetStream (KV buckets "
              "switchyard_rooms, switchyard_notification_rules, "
              "switchyard_contacts, switchyard_notifications; stream "
              "SWITCHYARD_ROOM_MESSAGES)");
  } else {
    store = std::make_shared<memory_room_store>();
    notify_store = std::make_shared<memory_notification_store>();
    log->warn("rooms and notifications kept in memory (no --nats): rooms, "
              "histories, rules and pending notifications are gone when the "
              "node stops");
  }
  // Detached: the JetStream store blocks in nats.c calls.
  auto store_actor = sys.spawn<caf::detached>(room_store_server, store);
  ctx->rooms = sys.spawn(room_directory, room_deps_of(ctx), store_actor);
  auto notify_store_actor = sys.spawn<caf::detached>(notification_store_server,
                                                     notify_store);
  auto channels = std::make_shared<net::network_channels>(opts.channels);
  log->info("notifications: push {}, email {}",
            opts.channels.push_url.empty() ? std::string{"off (no --push-url)"}
                                           : "to " + opts.channels.push_url,
            opts.channels.smtp.host.empty()
              ? std::string{"off (no --smtp-host)"}
              : "via " + opts.channels.smtp.host + ":"
                + opts.channels.smtp.port);
  ctx->notifications = sys.spawn(
    notification_directory,
    notification_deps{ctx->cfg.notify, notify_store_actor, ctx->topics,
                      ctx->sessions, ctx->rooms, channels, &ctx->stats,
                      ctx->cluster != nullptr});
  if (ctx->cluster) {
    node_card card;
    card.name = opts.node_name;
    card.address = opts.cluster_advertise;
    card.started_at = node_context::unix_ms();
    card.rooms = caf::actor_cast<caf::strong_actor_ptr>(ctx->rooms);
    card.notifications
      = caf::actor_cast<caf::strong_actor_ptr>(ctx->notifications);
    card.sessions = caf::actor_cast<caf::strong_actor_ptr>(ctx->sessions);
    caf::anon_send(ctx->cluster, start_atom::value, std::move(card));
  }
  agent_gateway_actor gateway;
  if (nats)
    gateway = sys.spawn<caf::detached>(
      agent_gateway,
      agent_gateway_state::config{ctx->ids.node_id(), ctx->cfg.max_json_depth,
                                  ctx->rooms},
      nats);
  log_origin_policy(ctx->cfg);
  for (auto& src : ctx->cfg.ingest_sources)
    log->info("webhook source {}: POST /v1/ingest/{} publishes to "
              "events.{}.{}.>, signed in {}{}",
              src.name, src.name, src.org, src.name, src.signature_header,
              src.timestamp_header.empty()
                ? std::string{}
                : ", timestamp in " + src.timestamp_header);

  auto sessions = session_deps_of(ctx);
  lst->run(sessions);
  if (opts.dev_secret)
    std::cout << "development secret (SWITCHYARD_JWT_SECRET): "
              << ctx->cfg.jwt_keys.secret << "\n";
  std::cout << "listening on " << (tls ? "https" : "http") << "://" << opts.host
            << ":" << lst->port() << std::endl;
  log->info("node {} listening on {}:{} ({} I/O threads, {} actor threads)",
            ctx->ids.node_id(), opts.host, lst->port(), opts.io_threads,
            opts.actor_threads);

  asio::signal_set signals{pool.http(), SIGINT, SIGTERM};
  signals.async_wait([&](boost::system::error_code ec, int sig) {
    if (ec)
      return;
    // From now on a second signal ends the process at once.
    signals.clear(ec);
    struct sigaction sa = {};
    sa.sa_handler = exit_on_second_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
    auto bound = ctx->cfg.close_timeout + stop_grace;
    watchdog.arm(bound);
    log->info("signal {}: closing {} connections with 1001 (stop bound {} "
              "ms)",
              sig, ctx->stats.connections.load(), bound.count());
    lst->stop();
    ctx->sinks.close_all(frames::close_code::going_away, "node shutting down");
    auto timer = std::make_shared<asio::steady_timer>(pool.http());
    drain_then_stop(timer, ctx,
                    std::chrono::steady_clock::now() + ctx->cfg.close_timeout
                      + drain_slack,
                    pool);
  });

  // SIGHUP rereads the TLS certificate and key; new connections get them.
  asio::signal_set hup{pool.http(), SIGHUP};
  std::function<void()> await_hup = [&] {
    hup.async_wait([&](boost::system::error_code ec, int) {
      if (ec)
        return;
      if (!tls) {
        log->info("SIGHUP: no TLS configured, nothing to reload");
      } else if (auto error = tls->reload(); !error.empty()) {
        log->error("SIGHUP: keeping the current certificate: {}", error);
      } else {
        log->info("SIGHUP: reloaded TLS certificate {} and key {}",
                  opts.tls_cert, opts.tls_key);
      }
      await_hup();
    });
  };
  await_hup();

  pool.run();
  log->info("connections closed; stopping actors");
  // Actors first: the bus bridge and the gateway call into the NATS client
  // until they exit.
  caf::anon_send_exit(store_actor, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(notify_store_actor, caf::exit_reason::user_shutdown);
  for (auto& reader : ctx->history)
    caf::anon_send_exit(reader, caf::exit_reason::user_shutdown);
  if (gateway)
    caf::anon_send_exit(gateway, caf::exit_reason::user_shutdown);
  stop_actors(sys, *ctx);
  // A detached actor's thread ends only once the actor is destroyed, and
  // the actor system's destructor waits for that thread: drop the handle.
  sessions = nullptr;
  ctx->publisher = nullptr;
  ctx->rooms = nullptr;
  ctx->notifications = nullptr;
  ctx->cluster = nullptr;
  store_actor = nullptr;
  notify_store_actor = nullptr;
  ctx->history.clear();
  gateway = nullptr;
  if (nats)
    nats->close();
  sys.await_actors_before_shutdown(false);
  log->info("stopped");
  return 0;
}

} // namespace

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);
  if (argc > 1 && std::string_view{argv[1]} == "token")
    return run_token_command(argc - 1, argv + 1);
  auto parsed = parse_node_options(argc, argv);
  if (!parsed.options)
    return parsed.exit_code;
  return run_node(std::move(*parsed.options));
}
