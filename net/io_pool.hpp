// One io_context per I/O thread. Each connection lives on exactly one
// context, so its handlers never run concurrently and need no strand, and a
// fan-out can start the writes of many connections of one thread with a
// single hand-off.

#pragma once

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

namespace switchyard::net {

/// A fixed set of single-threaded io_contexts.
class io_pool {
public:
  explicit io_pool(unsigned threads) {
    for (unsigned i = 0; i < std::max(1u, threads); ++i) {
      contexts_.emplace_back(std::make_unique<boost::asio::io_context>(1));
      guards_.emplace_back(boost::asio::make_work_guard(*contexts_.back()));
    }
  }

  /// The context for the next connection (round robin).
  boost::asio::io_context& next() {
    return *contexts_[next_++ % contexts_.size()];
  }

  /// The first context (acceptor, signals, timers of the node).
  boost::asio::io_context& main() {
    return *contexts_.front();
  }

  /// Runs every context; the calling thread runs the first one. Returns
  /// when all have stopped.
  void run() {
    std::vector<std::thread> threads;
    for (size_t i = 1; i < contexts_.size(); ++i)
      threads.emplace_back([ctx = contexts_[i].get()] {
        ctx->run();
      });
    contexts_.front()->run();
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
  using guard
    = boost::asio::executor_work_guard<boost::asio::io_context::executor_type>;
  std::vector<std::unique_ptr<boost::asio::io_context>> contexts_;
  std::vector<guard> guards_;
  std::atomic<size_t> next_{0};
};

} // namespace switchyard::net
