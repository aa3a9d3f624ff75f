#include <string>

#include "net/http_router.hpp"

namespace switchyard::net {

std::string render_metrics(const node_context& ctx) {
  auto& s = ctx.stats;
  std::string out;
  auto metric = [&out](const char* name, const char* type, const char* help,
                       auto value) {
    append_metric(out, name, type, help, value);
  };
  auto r = std::memory_order_relaxed;
  metric("switchyard_connections", "gauge", "Open WebSocket connections.",
         s.connections.load(r));
  metric("switchyard_sessions_authenticated", "gauge",
         "Authenticated sessions.", s.sessions_authenticated.load(r));
  metric("switchyard_subscriptions", "gauge",
         "Subscriptions held by topic actors.", s.subscriptions.load(r));
  metric("switchyard_topic_actors", "gauge", "Live topic actors (patterns).",
         s.topic_actors.load(r));
  metric("switchyard_org_routers", "gauge", "Live org router actors.",
         s.org_routers.load(r));
  metric("switchyard_events_in_total", "counter",
         "Events accepted for delivery.", s.events_in.load(r));
  metric("switchyard_events_out_total", "counter",
         "Event frames queued to clients.", s.events_out.load(r));
  metric("switchyard_frames_written_total", "counter",
         "Frames written to sockets.", s.frames_written.load(r));
  metric(
    "switchyard_messages_written_total", "counter",
    "Messages and control frames written (several per frame when batched).",
    s.messages_written.load(r));
  metric("switchyard_socket_writes_total", "counter",
         "Socket gather-writes (frames_written / this = batch size).",
         s.socket_writes.load(r));
  metric("switchyard_rooms_active", "gauge",
         "Room actors in memory (rooms used recently).",
         s.rooms_active.load(r));
  metric("switchyard_streams_active", "gauge", "Agent replies being generated.",
         s.streams_active.load(r));
  metric("switchyard_agents_running", "gauge", "Agent actors running.",
         s.agents_running.load(r));
  metric("switchyard_stream_tokens_coalesced_total", "counter",
         "Reply tokens held back for lagging clients and sent coalesced.",
         s.stream_tokens_coalesced.load(r));
  metric("switchyard_dropped_total", "counter",
         "Frames dropped (slow consumers, closing connections).",
         s.dropped.load(r));
  metric("switchyard_frames_in_total", "counter",
         "Frames received from clients.", s.frames_in.load(r));
  metric("switchyard_auth_failures_total", "counter",
         "Rejected tokens on WebSocket connections.", s.auth_failures.load(r));
  metric("switchyard_http_requests_total", "counter", "Plain HTTP requests.",
         s.http_requests.load(r));
  metric("switchyard_protocol_errors_total", "counter",
         "Connections failed for a WebSocket protocol violation.",
         s.protocol_errors.load(r));
  metric("switchyard_handler_failures_total", "counter",
         "I/O handlers that threw; each ended its connection or request.",
         s.handler_failures.load(r));
  metric("switchyard_origin_rejected_total", "counter",
         "WebSocket upgrades and CORS preflights refused for their Origin.",
         s.origin_rejected.load(r));
  metric("switchyard_rule_actors", "gauge",
         "Notification rule actors (one per enabled rule).",
         s.rule_actors.load(r));
  metric("switchyard_notifiers", "gauge", "Per-user notifier actors in memory.",
         s.notifiers.load(r));
  metric("switchyard_notifications_created_total", "counter",
         "Notifications made by rules and stored.",
         s.notifications_created.load(r));
  metric("switchyard_notifications_duplicate_total", "counter",
         "Notifications a rule made again and the store already held "
         "(a repeated event, or another node).",
         s.notifications_duplicate.load(r));
  struct {
    const char* name;
    const char* help;
    const std::array<std::atomic<uint64_t>, 3>* values;
  } per_channel[] = {
    {"switchyard_notifications_sent_total",
     "Notifications delivered, by channel.", &s.notify_sent},
    {"switchyard_notifications_failed_total",
     "Notification channels given up, by channel.", &s.notify_failed},
    {"switchyard_notifications_retried_total",
     "Failed delivery attempts that will be retried, by channel.",
     &s.notify_retried},
  };
  for (auto& m : per_channel) {
    out += "# HELP ";
    out.append(m.name).append(" ").append(m.help).append("\n# TYPE ");
    out.append(m.name).append(" counter\n");
    for (size_t i = 0; i < notify_channel_names.size(); ++i) {
      out.append(m.name).append("{channel=\"");
      out.append(notify_channel_names[i]).append("\"} ");
      out += std::to_string((*m.values)[i].load(r));
      out += '\n';
    }
  }
  ctx.extra_metrics(out);
  out += "# HELP switchyard_closes_total Closed connections by close code.\n"
         "# TYPE switchyard_closes_total counter\n";
  for (size_t i = 0; i <= counted_close_codes.size(); ++i) {
    out += "switchyard_closes_total{code=\"";
    out += i < counted_close_codes.size()
      ? std::to_string(counted_close_codes[i])
      : std::string{"other"};
    out += "\"} ";
    out += std::to_string(s.closes[i].load(r));
    out += '\n';
  }
  out += "# HELP switchyard_input_rejected_total Refused JSON or msgpack input "
         "by source and reason (too_deep: over --max-json-depth).\n"
         "# TYPE switchyard_input_rejected_total counter\n";
  for (size_t i = 0; i < s.input_rejected.size(); ++i) {
    out += "switchyard_input_rejected_total{source=\"";
    out += input_source_names[i / 2];
    out += i % 2 == 0 ? "\",reason=\"malformed\"} "
                      : "\",reason=\"too_deep\"} ";
    out += std::to_string(s.input_rejected[i].load(r));
    out += '\n';
  }
  metric("switchyard_ingest_unknown_source_total", "counter",
         "Webhooks (POST /v1/ingest/{source}) for no configured source (404).",
         s.ingest_unknown_source.load(r));
  // Sources come from the config file: the label set is bounded.
  out += "# HELP switchyard_ingest_requests_total Webhooks (POST "
         "/v1/ingest/{source}) by source and result.\n"
         "# TYPE switchyard_ingest_requests_total counter\n";
  for (size_t i = 0; i < s.ingest_requests.size(); ++i) {
    for (size_t j = 0; j < ingest::outcome_names.size(); ++j) {
      out += "switchyard_ingest_requests_total{source=\"";
      out += ctx.cfg.ingest_sources[i].name;
      out += "\",result=\"";
      out += ingest::outcome_names[j];
      out += "\"} ";
      out += std::to_string(s.ingest_requests[i][j].load(r));
      out += '\n';
    }
  }
  return out;
}

} // namespace switchyard::net
