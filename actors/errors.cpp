#include "actors/errors.hpp"

namespace switchyard {

std::string to_string(error_code x) {
  switch (x) {
    case error_code::bad_pattern: return "bad_pattern";
    case error_code::history_unavailable: return "history_unavailable";
    case error_code::cluster_not_started: return "cluster_not_started";
  }
  return "error_code(" + std::to_string(static_cast<int>(x)) + ")";
}

} // namespace switchyard
