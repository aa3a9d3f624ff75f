#include "net/io_thread.hpp"

#include <exception>
#include <thread>

#include <boost/asio/executor_work_guard.hpp>
#include <openssl/ssl.h>

#include "actors/log.hpp"

namespace switchyard::net {

namespace {

class io_thread {
public:
  io_thread() : guard_(boost::asio::make_work_guard(io)) {
    // OpenSSL registers its exit handler at its first initialisation. Were
    // that after this object's construction, the handler would run first at
    // exit, and the thread-local state of the TLS connections this thread
    // ran would leak when it ends: initialised here, it runs after the
    // thread was joined.
    OPENSSL_init_ssl(0, nullptr);
    thread_ = std::thread{[this] {
      run();
    }};
  }

  ~io_thread() {
    guard_.reset();
    io.stop();
    if (thread_.joinable())
      thread_.join();
  }

  boost::asio::io_context io{1};

private:
  /// A handler that throws (a callback, say) is logged and the loop goes
  /// on: the other operations must not die with it.
  void run() {
    for (;;) {
      try {
        io.run();
        return;
      } catch (const std::exception& e) {
        logger("net")->error("client I/O handler failed: {}", e.what());
      }
    }
  }

  boost::asio::executor_work_guard<boost::asio::io_context::executor_type>
    guard_;
  std::thread thread_;
};

} // namespace

boost::asio::io_context& client_io() {
  static io_thread instance;
  return instance.io;
}

} // namespace switchyard::net
