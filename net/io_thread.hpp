// The process's client I/O thread: one thread running one io_context of its
// own, started by the first use and stopped at exit. The outgoing clients
// (net/http_stream_client.cpp, net/smtp_client.cpp) run every operation on
// it, so their callers (actors) never block; their callbacks run on it, so
// they must only hand their data on (an actor sends itself a message).
//
// A function-local static: exit stops it, joins the thread and destroys
// every operation still pending with the io_context (its completion handler
// is then never called), which keeps LeakSanitizer's exit check clean.

#pragma once

#include <boost/asio/io_context.hpp>

namespace switchyard::net {

/// The client io_context; the first call starts its thread. A handler that
/// throws is logged (logger "net") and the loop goes on.
boost::asio::io_context& client_io();

} // namespace switchyard::net
