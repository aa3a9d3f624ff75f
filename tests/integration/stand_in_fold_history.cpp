// Stand-in for fold_history of actors/room_store.cpp, linked into
// jetstream_store_test only while switchyard_core lacks that file (see
// tests/CMakeLists.txt). Delete this file once actors/room_store.cpp is in
// the library.

#include <map>

#include "actors/room_store.hpp"

namespace switchyard {

std::vector<room_message> fold_history(std::vector<room_message> records) {
  std::vector<room_message> result;
  std::map<std::string, size_t> place; // message id -> index in result
  for (auto& rec : records) {
    auto [i, added] = place.try_emplace(rec.message_id, result.size());
    if (added)
      result.push_back(std::move(rec));
    else
      result[i->second] = std::move(rec);
  }
  return result;
}

} // namespace switchyard
