#include "actors/room_store.hpp"

#include <unordered_map>

namespace switchyard {

namespace {

std::string key_of(const std::string& org, const std::string& room) {
  return org + "." + room;
}

} // namespace

outcome memory_room_store::put_room(const room_record& room) {
  std::lock_guard<std::mutex> guard{mtx_};
  rooms_[key_of(room.org, room.id)] = room;
  return {};
}

outcome memory_room_store::append_message(const std::string& org,
                                          const std::string& room,
                                          const room_message& msg) {
  std::lock_guard<std::mutex> guard{mtx_};
  messages_[key_of(org, room)].push_back(msg);
  return {};
}

outcome memory_room_store::load_messages(const std::string& org,
                                         const std::string& room,
                                         std::vector<room_message>& out) {
  std::vector<room_message> records;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    if (auto i = messages_.find(key_of(org, room)); i != messages_.end())
      records = i->second;
  }
  out = fold_history(std::move(records));
  return {};
}

outcome memory_room_store::load_rooms(std::vector<room_record>& out) {
  std::lock_guard<std::mutex> guard{mtx_};
  out.clear();
  for (auto& kvp : rooms_)
    out.push_back(kvp.second);
  return {};
}

std::vector<room_message> fold_history(std::vector<room_message> records) {
  std::vector<room_message> out;
  std::unordered_map<std::string, size_t> pos;
  for (auto& rec : records) {
    auto [i, added] = pos.emplace(rec.message_id, out.size());
    if (added)
      out.push_back(std::move(rec));
    else
      out[i->second] = std::move(rec);
  }
  return out;
}

room_store_actor::behavior_type
room_store_server(room_store_actor::stateful_pointer<room_store_state> self,
                  std::shared_ptr<room_store> store) {
  self->state.store = std::move(store);
  return {
    [self](put_atom, const room_record& room) {
      return self->state.store->put_room(room);
    },
    [self](append_atom, const std::string& org, const std::string& room,
           const room_message& msg) {
      return self->state.store->append_message(org, room, msg);
    },
    [self](load_atom, const std::string& org, const std::string& room)
      -> caf::result<outcome, std::vector<room_message>> {
      std::vector<room_message> out;
      auto res = self->state.store->load_messages(org, room, out);
      return {std::move(res), std::move(out)};
    },
    [self](load_all_atom) -> caf::result<outcome, std::vector<room_record>> {
      std::vector<room_record> out;
      auto res = self->state.store->load_rooms(out);
      return {std::move(res), std::move(out)};
    },
  };
}

} // namespace switchyard
