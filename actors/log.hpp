// One named spdlog logger per component ("session", "topic", "net", ...).

#pragma once

#include <memory>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

namespace switchyard {

/// Returns the logger called `name`, creating it (to stderr) on first use.
inline std::shared_ptr<spdlog::logger> logger(const char* name) {
  if (auto existing = spdlog::get(name))
    return existing;
  try {
    return spdlog::stderr_color_mt(name);
  } catch (const spdlog::spdlog_ex&) {
    return spdlog::get(name); // another thread created it first
  }
}

} // namespace switchyard
