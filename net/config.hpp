// Node configuration from flags, a config file and the environment.
// Precedence: command line, then SWITCHYARD_* environment variables, then the
// file named by --config, then the defaults in actors/node_context.hpp.

#pragma once

#include <optional>
#include <string>
#include <vector>

#include "actors/cluster.hpp"
#include "actors/node_context.hpp"
#include "net/nats_client.hpp"
#include "net/notification_channels.hpp"

namespace switchyard {

/// Everything `switchyard` (the node) reads at start.
struct node_options {
  settings cfg;
  std::string host = "127.0.0.1";
  unsigned short port = 8080;
  unsigned io_threads = 1;
  unsigned actor_threads = 1;
  std::string log_level = "info";
  /// Generated development secret, printed at start (`--dev`).
  bool dev_secret = false;
  /// PEM certificate chain and key: with both, the listener speaks only TLS
  /// (`https://`, `wss://`); reloaded on SIGHUP.
  std::string tls_cert;
  std::string tls_key;
  /// NATS connection; no servers means the in-process bus.
  net::nats_settings nats;
  /// The push gateway and the mail server of notifications.
  net::channel_config channels;
  /// The cluster listener (`--cluster-port`; 0: this node runs alone).
  uint16_t cluster_port = 0;
  std::string cluster_host = "127.0.0.1";
  /// What peers connect to (`--cluster-advertise`; default host:port).
  std::string cluster_advertise;
  /// This node's name among the members (`--node-name`; default the
  /// advertised address).
  std::string node_name;
  std::vector<std::string> cluster_seeds;
  std::chrono::milliseconds cluster_timeout = default_cluster_timeout;
  /// Mutual TLS between members (PEM files; all three or none): each
  /// member presents its certificate and accepts only peers whose
  /// certificate the CA signed.
  std::string cluster_tls_cert;
  std::string cluster_tls_key;
  std::string cluster_tls_ca;
};

/// Result of parsing: options, or an exit code after printing help/errors.
struct parsed_options {
  std::optional<node_options> options;
  int exit_code = 0;
};

/// Parses the node's command line.
parsed_options parse_node_options(int argc, char** argv);

/// Runs `switchyard token ...`; returns the process exit code.
int run_token_command(int argc, char** argv);

} // namespace switchyard
