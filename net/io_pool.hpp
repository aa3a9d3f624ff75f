// One io_context per I/O thread, plus one for the acceptor and plain HTTP.
// Each WebSocket lives on exactly one I/O context, so its handlers never run
// concurrently and need no strand, and a fan-out can start the writes of
// many connections of one thread with a single hand-off. HTTP (publish,
// health, metrics, introspection) has its own thread, so a large fan-out
// never delays it.

#pragma once

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "actors/log.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

namespace switchyard::net {

/// A fixed set of single-threaded io_contexts.
class io_pool {
public:
  /// `failures` counts handlers that threw (see `run_guarded`).
  io_pool(unsigned threads, std::atomic<uint64_t>& failures)
    : failures_(failures) {
    // contexts_[0] serves HTTP; the rest serve WebSockets.
    for (unsigned i = 0; i <= std::max(1u, threads); ++i) {
      contexts_.emplace_back(std::make_unique<boost::asio::io_context>(1));
      guards_.emplace_back(boost::asio::make_work_guard(*contexts_.back()));
      // Create the context's reactor (epoll, eventfd, timerfd) now: created
      // lazily it would need three descriptors at the first connection,
      // perhaps when the process is at its file limit.
      warmup_.emplace_back(*contexts_.back());
    }
  }

  /// The I/O context for the next WebSocket (round robin).
  boost::asio::io_context& next() {
    return *contexts_[1 + next_++ % (contexts_.size() - 1)];
  }

  /// The HTTP context: acceptor, HTTP sessions, signals, node timers.
  boost::asio::io_context& http() {
    return *contexts_.front();
  }

  /// Runs every context; the calling thread runs the HTTP one. Returns
  /// when all have stopped.
  void run() {
    std::vector<std::thread> threads;
    for (size_t i = 1; i < contexts_.size(); ++i)
      threads.emplace_back([this, ctx = contexts_[i].get()] {
        run_guarded(*ctx);
      });
    run_guarded(*contexts_.front());
    for (auto& t : threads)
      t.join();
  }

  /// Stops every context.
  void stop() {
    for (auto& g : guards_)
      g.reset();
    for (auto& c : contexts_)
      c->stop();
  }

private:
  /// Runs `ctx` until stopped. WebSocket handlers catch their own
  /// exceptions and end their connection; this is the backstop for every
  /// other handler (HTTP sessions, timers): one that throws is logged and
  /// counted, and the loop goes on, so the node never goes down with it.
  void run_guarded(boost::asio::io_context& ctx) {
    for (;;) {
      try {
        ctx.run();
        return;
      } catch (const std::exception& e) {
        failures_.fetch_add(1, std::memory_order_relaxed);
        logger("net")->error("I/O handler failed: {}", e.what());
      }
    }
  }

  using guard
    = boost::asio::executor_work_guard<boost::asio::io_context::executor_type>;
  std::vector<std::unique_ptr<boost::asio::io_context>> contexts_;
  std::vector<guard> guards_;
  std::vector<boost::asio::steady_timer> warmup_;
  std::atomic<size_t> next_{0};
  std::atomic<uint64_t>& failures_;
};

} // namespace switchyard::net
