// The Beast front end: accepts TCP (or TLS), reads HTTP requests, upgrades
// `GET /v1/ws` to a WebSocket served by a session actor, and hands every
// other request to the HTTP router on the same port.

#pragma once

#include <memory>

#include <boost/asio.hpp>
#include <caf/all.hpp>

#include "actors/node_context.hpp"
#include "actors/session.hpp"
#include "net/http_router.hpp"
#include "net/io_pool.hpp"
#include "net/tls.hpp"
#include "net/ws_connection.hpp"

namespace switchyard::net {

/// Accepts connections on one endpoint.
class listener : public std::enable_shared_from_this<listener> {
public:
  using tcp = boost::asio::ip::tcp;

  /// With `tls`, every connection speaks TLS (`https://`, `wss://`).
  listener(io_pool& pool, caf::actor_system& sys, node_context_ptr ctx,
           std::shared_ptr<tls_config> tls = nullptr);

  /// Binds and listens; throws boost::system::system_error on failure.
  void open(const tcp::endpoint& ep);

  /// Starts accepting; WebSocket upgrades spawn sessions with `sessions`
  /// while the caller holds them (weak: their handles of detached actors,
  /// the bus publisher's, must not outlive the node's stop), and get 503
  /// after.
  void run(std::weak_ptr<const session_deps> sessions);

  /// Stops accepting new connections.
  void stop();

  /// The bound port (useful with port 0).
  unsigned short port() const;

private:
  void do_accept();

  io_pool& pool_;
  caf::actor_system& sys_;
  node_context_ptr ctx_;
  std::weak_ptr<const session_deps> sessions_;
  std::shared_ptr<tls_config> tls_;
  std::shared_ptr<http_router> router_;
  tcp::acceptor acceptor_;
  boost::asio::steady_timer retry_timer_;
};

} // namespace switchyard::net
