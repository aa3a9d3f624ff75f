// A lock for critical sections of a few instructions (a vector push or
// swap) taken from two threads: a topic actor queuing frames and the I/O
// thread draining them. Unlike a mutex it never sleeps in the kernel; after
// a short spin it yields, so a preempted holder costs little.

#pragma once

#include <atomic>
#include <thread>

namespace switchyard::net {

/// Satisfies BasicLockable (works with std::lock_guard).
class spin_lock {
public:
  void lock() noexcept {
    for (int spins = 0; flag_.exchange(true, std::memory_order_acquire);) {
      while (flag_.load(std::memory_order_relaxed)) {
        if (++spins < 64)
          relax();
        else
          std::this_thread::yield();
      }
    }
  }

  void unlock() noexcept {
    flag_.store(false, std::memory_order_release);
  }

private:
  static void relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield");
#endif
  }

  std::atomic<bool> flag_{false};
};

} // namespace switchyard::net
