// switchyard: one node of the gateway, or `switchyard token` to mint tokens.

#include <chrono>
#include <csignal>
#include <iostream>
#include <string_view>

#include <boost/asio.hpp>
#include <caf/all.hpp>

#include "actors/bus_bridge.hpp"
#include "actors/local_bus.hpp"
#include "actors/log.hpp"
#include "actors/session_registry.hpp"
#include "actors/topic_root.hpp"
#include "net/config.hpp"
#include "net/listener.hpp"
#include "schemas/messages.hpp"

namespace asio = boost::asio;
using namespace switchyard;

namespace {

/// Polls until every connection finished its closing handshake, or until
/// `deadline`, then stops the I/O threads.
void drain_then_stop(std::shared_ptr<asio::steady_timer> timer,
                     node_context_ptr ctx,
                     std::chrono::steady_clock::time_point deadline,
                     net::io_pool& pool) {
  if (ctx->stats.connections.load() == 0
      || std::chrono::steady_clock::now() >= deadline) {
    pool.stop();
    return;
  }
  timer->expires_after(std::chrono::milliseconds(20));
  timer->async_wait([=, &pool](boost::system::error_code) {
    drain_then_stop(timer, ctx, deadline, pool);
  });
}

int run_node(node_options opts) {
  spdlog::set_level(spdlog::level::from_str(opts.log_level));
  auto log = logger("node");
  std::shared_ptr<net::tls_config> tls;
  if (!opts.tls_cert.empty()) {
    std::string error;
    tls = net::tls_config::load(opts.tls_cert, opts.tls_key, error);
    if (!tls) {
      log->error("{}", error);
      return 1;
    }
  }
  caf::actor_system_config cfg;
  cfg.add_message_types<caf::id_block::switchyard>();
  cfg.set("scheduler.max-threads", static_cast<size_t>(opts.actor_threads));
  caf::actor_system sys{cfg};
  auto ctx = std::make_shared<node_context>(opts.cfg);
  ctx->topics = sys.spawn(topic_root, ctx);
  ctx->sessions = sys.spawn(session_registry, ctx);
  std::shared_ptr<net::nats_client> nats;
  if (opts.nats.servers.empty()) {
    ctx->bus = std::make_shared<local_bus>(*ctx);
    log->info("event bus: in-process (no --nats given); events published "
              "here reach only this node's clients");
  } else {
    std::string error;
    nats = net::nats_client::make(opts.nats, ctx, error);
    if (!nats) {
      log->error("cannot use NATS: {}", error);
      return 1;
    }
    ctx->bus = nats;
    ctx->bridge = sys.spawn(bus_bridge, ctx, nats);
    std::string urls;
    for (auto& url : opts.nats.servers)
      urls += (urls.empty() ? "" : ",") + url;
    log->info("event bus: NATS at {}", urls);
  }

  net::io_pool pool{opts.io_threads, ctx->stats.handler_failures};
  auto lst = std::make_shared<net::listener>(pool, sys, ctx, tls);
  try {
    lst->open({asio::ip::make_address(opts.host), opts.port});
  } catch (const std::exception& e) {
    log->error("cannot listen on {}:{}: {}", opts.host, opts.port, e.what());
    return 1;
  }
  lst->run();
  if (opts.dev_secret)
    std::cout << "development secret (SWITCHYARD_JWT_SECRET): "
              << ctx->cfg.jwt_keys.secret
              << "
                 ";
      std::cout
              << "listening on " << (tls ? "https" : "http") << "://"
              << opts.host << ":" << lst->port() << std::endl;
  log->info("node {} listening on {}:{} ({} I/O threads, {} actor threads)",
            ctx->node_id, opts.host, lst->port(), opts.io_threads,
            opts.actor_threads);

  asio::signal_set signals{pool.http(), SIGINT, SIGTERM};
  signals.async_wait([&](boost::system::error_code ec, int sig) {
    if (ec)
      return;
    log->info("signal {}: closing {} connections with 1001", sig,
              ctx->stats.connections.load());
    lst->stop();
    ctx->sinks.close_all(frames::close_code::going_away, "node shutting down");
    auto timer = std::make_shared<asio::steady_timer>(pool.http());
    drain_then_stop(timer, ctx,
                    std::chrono::steady_clock::now() + ctx->cfg.close_timeout,
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
  log->info("stopped");
  caf::anon_send_exit(ctx->topics, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(ctx->sessions, caf::exit_reason::user_shutdown);
  if (ctx->bridge)
    caf::anon_send_exit(ctx->bridge, caf::exit_reason::user_shutdown);
  if (nats)
    nats->close();
  sys.await_actors_before_shutdown(false);
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
