#include "net/jetstream_util.hpp"

#include "actors/log.hpp"

namespace switchyard::net {

namespace {

auto& log() {
  static auto instance = logger("jetstream");
  return instance;
}

/// Makes natsConnection_Connect return at once while NATS is down (with no
/// callback it would block until connected). No closure: nats.c may call it
/// after the client is gone.
void on_connected(natsConnection*, void*) {
  // nop
}

} // namespace

void drop_subscription(natsSubscription* sub) {
  if (auto s = natsSubscription_Unsubscribe(sub); s != NATS_OK)
    log()->debug("consumer left to expire on the server: {}",
                 natsStatus_GetText(s));
  natsSubscription_Destroy(sub);
}

bool open_jetstream(const nats_settings& cfg, const char* name,
                    const char* component, int64_t timeout_ms,
                    natsConnection*& conn, jsCtx*& js, std::string& error) {
  auto fail = [&error](const char* what, natsStatus s) {
    error = std::string{what} + ": " + natsStatus_GetText(s);
    return false;
  };
  natsOptions* raw_opts = nullptr;
  if (auto s = natsOptions_Create(&raw_opts); s != NATS_OK)
    return fail("nats options", s);
  // natsConnection_Connect copies the options.
  owned<natsOptions, natsOptions_Destroy> opts{raw_opts};
  if (!apply_nats_settings(raw_opts, cfg, error))
    return false;
  if (auto s = natsOptions_SetName(raw_opts, name); s != NATS_OK)
    return fail("name", s);
  if (auto s = natsOptions_SetRetryOnFailedConnect(raw_opts, true, on_connected,
                                                   nullptr);
      s != NATS_OK)
    return fail("retry", s);
  natsConnection* new_conn = nullptr;
  switch (auto s = natsConnection_Connect(&new_conn, raw_opts)) {
    case NATS_OK: log()->info("{} connected to NATS", component); break;
    case NATS_NOT_YET_CONNECTED:
      log()->warn("NATS unreachable at start; the {} answers 'unavailable' "
                  "until it connects in the background",
                  component);
      break;
    default: return fail("connect", s);
  }
  jsOptions js_opts;
  jsCtx* new_js = nullptr;
  auto s = jsOptions_Init(&js_opts);
  if (s == NATS_OK) {
    js_opts.Wait = timeout_ms;
    s = natsConnection_JetStream(&new_js, new_conn, &js_opts);
  }
  if (s != NATS_OK) {
    natsConnection_Destroy(new_conn);
    return fail("JetStream context", s);
  }
  conn = new_conn;
  js = new_js;
  return true;
}

} // namespace switchyard::net
