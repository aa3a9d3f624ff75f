#include "net/notification_channels.hpp"

#include <chrono>

#include <nlohmann/json.hpp>

#include "net/http_stream_client.hpp"

namespace switchyard::net {

namespace {

std::string escape_html(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
           std::chrono::system_clock::now().time_since_epoch())
    .count();
}

std::string dump(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

} // namespace

network_channels::network_channels(channel_config cfg) : cfg_(std::move(cfg)) {
  // nop
}

bool network_channels::push_configured() const {
  return !cfg_.push_url.empty();
}

bool network_channels::email_configured() const {
  return !cfg_.smtp.host.empty();
}

std::string network_channels::push_body(const notification& x,
                                        const std::vector<device>& devices) {
  auto data = nlohmann::json::parse(x.data, nullptr, false);
  if (data.is_discarded())
    data = nullptr;
  auto list = nlohmann::json::array();
  for (auto& d : devices)
    list.push_back({{"platform", d.platform}, {"token", d.token}});
  nlohmann::json body{{"id", x.id},
                      {"org", x.org},
                      {"user", x.user},
                      {"title", x.title},
                      {"body", x.body},
                      {"priority", x.priority},
                      {"data", std::move(data)},
                      {"ts", x.ts},
                      {"devices", std::move(list)}};
  return dump(body);
}

bool network_channels::push_error_is_final(const std::string& error) {
  // http_stream_client reports a non-2xx answer as "HTTP <status>: ...".
  constexpr std::string_view prefix = "HTTP ";
  if (error.compare(0, prefix.size(), prefix) != 0)
    return false;
  auto status = std::atoi(error.c_str() + prefix.size());
  return status != 408 && status != 429 && (status < 500 || status > 599);
}

void network_channels::push(const notification& x,
                            const std::vector<device>& devices,
                            done_handler done) {
  http_stream_client::header_list headers{cfg_.push_headers.begin(),
                                          cfg_.push_headers.end()};
  headers.emplace_back("Idempotency-Key", x.id);
  http_stream_options opts;
  opts.event_stream = false;
  opts.first_byte_timeout = std::chrono::seconds(30);
  opts.max_response_size = 64 * 1024;
  // The request keeps itself alive until its last callback.
  http_stream_client::post(cfg_.push_url, std::move(headers),
                           push_body(x, devices), opts, nullptr,
                           [done{std::move(done)}](std::string error) {
                             bool final = push_error_is_final(error);
                             done(std::move(error), final);
                           });
}

void network_channels::email(const notification& x, const std::string& to,
                             done_handler done) {
  net::email mail;
  mail.to = to;
  mail.subject = x.title;
  mail.text = x.body + "\n\n-- \nSent by " + cfg_.product + " (notification "
    + x.id + ")\n";
  mail.html = "<!DOCTYPE html><html><body><h2>" + escape_html(x.title)
    + "</h2><p>" + x.html_body + "</p><hr><p><small>Sent by "
    + escape_html(cfg_.product) + "</small></p></body></html>";
  mail.message_id = x.id + "@switchyard";
  send_email(cfg_.smtp, std::move(mail),
             [done{std::move(done)}](smtp_result res) {
               done(std::move(res.error), res.permanent);
             });
}

void network_channels::digest(const std::vector<notification>& xs,
                              const std::string& to, done_handler done) {
  net::email mail;
  mail.to = to;
  mail.subject = std::to_string(xs.size()) + " notifications from "
    + cfg_.product;
  mail.html = "<!DOCTYPE html><html><body><ul>";
  for (auto& x : xs) {
    mail.text += "* " + x.title + "\n  " + x.body + "\n\n";
    mail.html += "<li><b>" + escape_html(x.title) + "</b><br>" + x.html_body
      + "</li>";
  }
  mail.html += "</ul></body></html>";
  mail.message_id = "digest-" + xs.front().id + "-" + std::to_string(unix_now())
    + "@switchyard";
  send_email(cfg_.smtp, std::move(mail),
             [done{std::move(done)}](smtp_result res) {
               done(std::move(res.error), res.permanent);
             });
}

} // namespace switchyard::net
