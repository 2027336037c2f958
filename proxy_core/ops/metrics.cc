#include "proxy_core/ops/metrics.h"

#include <cstdio>
#include <iterator>
#include <string>
#include <utility>

#include "proxy_core/http/http_message.h"

namespace sg {

void Histogram::observe(double seconds) {
  size_t i = 0;
  while (i < kLatencyBuckets.size() && seconds > kLatencyBuckets[i])
    ++i;
  buckets[i].add();
  count.add();
  uint64_t ns = seconds <= 0 ? 0 : static_cast<uint64_t>(seconds * 1e9);
  sum_ns.store(sum_ns.load(std::memory_order_relaxed) + ns, std::memory_order_relaxed);
}

MethodLabel method_label(std::string_view m) {
  if (m == "GET") return MethodLabel::kGet;
  if (m == "HEAD") return MethodLabel::kHead;
  if (m == "POST") return MethodLabel::kPost;
  if (m == "PUT") return MethodLabel::kPut;
  if (m == "DELETE") return MethodLabel::kDelete;
  if (m == "PATCH") return MethodLabel::kPatch;
  if (m == "OPTIONS") return MethodLabel::kOptions;
  return MethodLabel::kOther;
}

namespace {

constexpr const char* kMethodNames[] = {"GET",    "HEAD",  "POST",    "PUT",
                                        "DELETE", "PATCH", "OPTIONS", "other"};
constexpr const char* kErrorNames[] = {"connect_refused",  "connect_timeout", "connect_other",
                                       "response_timeout", "closed_early",    "bad_response"};

class Writer {
 public:
  explicit Writer(std::string& out) : out_(out) {}
  void header(const char* name, const char* type, const char* help) {
    printf_("# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
  }
  void sample(const char* name, const char* labels, double v) {
    if (labels != nullptr && labels[0] != '\0') {
      printf_("%s{%s} %.17g\n", name, labels, v);
    } else {
      printf_("%s %.17g\n", name, v);
    }
  }
  void scalar(const char* name, const char* type, const char* help, double v) {
    header(name, type, help);
    sample(name, nullptr, v);
  }
  template <typename... A>
  void printf_(const char* fmt, A... args) {
    char buf[512];
    int n = std::snprintf(buf, sizeof buf, fmt, args...);
    if (n > 0) out_.append(buf, static_cast<size_t>(n) < sizeof buf ? n : sizeof buf - 1);
  }

 private:
  std::string& out_;
};

template <typename F>
uint64_t sum(const std::vector<const WorkerMetrics*>& ws, F f) {
  uint64_t total = 0;
  for (const WorkerMetrics* w : ws)
    total += f(*w);
  return total;
}

void histogram(Writer& w, const std::vector<const WorkerMetrics*>& ws, const char* name,
               const char* help, const Histogram WorkerMetrics::*member) {
  w.header(name, "histogram", help);
  uint64_t cumulative = 0;
  char labels[64];
  std::string bucket_name = std::string(name) + "_bucket";
  for (size_t i = 0; i <= kLatencyBuckets.size(); ++i) {
    cumulative += sum(ws, [&](const WorkerMetrics& m) { return (m.*member).buckets[i].get(); });
    if (i < kLatencyBuckets.size()) {
      std::snprintf(labels, sizeof labels, "le=\"%g\"", kLatencyBuckets[i]);
    } else {
      std::snprintf(labels, sizeof labels, "le=\"+Inf\"");
    }
    w.sample(bucket_name.c_str(), labels, static_cast<double>(cumulative));
  }
  uint64_t ns = sum(ws, [&](const WorkerMetrics& m) {
    return (m.*member).sum_ns.load(std::memory_order_relaxed);
  });
  w.sample((std::string(name) + "_sum").c_str(), nullptr, static_cast<double>(ns) / 1e9);
  w.sample((std::string(name) + "_count").c_str(), nullptr, static_cast<double>(cumulative));
}

// Issue 15's request policy: access rules and the CSRF check, by outcome and reason.
void policy_metrics(Writer& w, const std::vector<const WorkerMetrics*>& ws) {
  char labels[64];
  w.header("sessiongate_access_denied_total", "counter",
           "Requests refused by an access rule, by outcome (never forwarded).");
  static constexpr const char* kAccessOutcomes[] = {"login_redirect", "unauthorized", "forbidden"};
  for (int o = 0; o < 3; ++o) {
    uint64_t v = sum(ws, [&](const WorkerMetrics& x) { return x.access_denied[o].get(); });
    std::snprintf(labels, sizeof labels, "outcome=\"%s\"", kAccessOutcomes[o]);
    w.sample("sessiongate_access_denied_total", labels, static_cast<double>(v));
  }
  // The refusal reasons of policy/csrf_policy.h, by their CsrfReason value and with the names
  // csrf_reason_name gives them (ops/ cannot include policy/: policy/ includes session/, which
  // includes ops/).
  static constexpr std::pair<int, const char*> kCsrfRefusals[] = {
      {2, "cross_site"},    {3, "same_site"},      {4, "origin_mismatch"}, {5, "no_metadata"},
      {7, "token_missing"}, {8, "token_mismatch"}, {9, "form_too_large"}};
  w.header(
      "sessiongate_csrf_refused_total", "counter",
      "Unsafe requests refused by the CSRF check (403, or 413 for form_too_large), by reason.");
  for (const auto& refusal : kCsrfRefusals) {
    // A plain copy, not a structured binding: clang 14 (the fuzz build) cannot capture those.
    const int slot = refusal.first;
    uint64_t v = sum(ws, [&](const WorkerMetrics& x) { return x.csrf_refused[slot].get(); });
    std::snprintf(labels, sizeof labels, "reason=\"%s\"", refusal.second);
    w.sample("sessiongate_csrf_refused_total", labels, static_cast<double>(v));
  }
}

// The HTTP/2 sessions (H2Metrics) and the requests of each client protocol.
void http2_metrics(Writer& w, const std::vector<const WorkerMetrics*>& ws) {
  char labels[64];
  w.header("sessiongate_requests_by_protocol_total", "counter",
           "Requests answered, by the client's protocol (http1: HTTP/1.x, http2).");
  static constexpr const char* kProtocols[] = {"http1", "http2"};
  for (int p = 0; p < static_cast<int>(ProtocolLabel::kCount); ++p) {
    uint64_t v = sum(ws, [&](const WorkerMetrics& x) { return x.requests_by_protocol[p].get(); });
    std::snprintf(labels, sizeof labels, "protocol=\"%s\"", kProtocols[p]);
    w.sample("sessiongate_requests_by_protocol_total", labels, static_cast<double>(v));
  }
  static constexpr std::pair<Counter H2Metrics::*, const char*> kCounters[] = {
      {&H2Metrics::connections, "connections"},
      {&H2Metrics::streams, "streams"},
      {&H2Metrics::streams_refused, "streams_refused"},
      {&H2Metrics::malformed_requests, "malformed_requests"},
      {&H2Metrics::header_lists_too_large, "header_lists_too_large"},
      {&H2Metrics::peer_resets, "peer_resets"},
      {&H2Metrics::response_pauses, "response_pauses"},
  };
  static constexpr const char* kHelp[] = {
      "Client connections that spoke HTTP/2 (ALPN h2 or h2c prior knowledge).",
      "HTTP/2 streams (requests) that passed validation.",
      "HTTP/2 streams refused over http2.max_concurrent_streams.",
      "HTTP/2 requests refused as malformed (RFC 9113 section 8).",
      "HTTP/2 requests over the header list limit (431).",
      "RST_STREAM frames received from clients.",
      "Times an HTTP/2 response paused its upstream for a slow client stream.",
  };
  std::string name;
  for (size_t i = 0; i < std::size(kCounters); ++i) {
    Counter H2Metrics::*member = kCounters[i].first;
    name = std::string("sessiongate_http2_") + kCounters[i].second + "_total";
    w.scalar(
        name.c_str(), "counter", kHelp[i],
        static_cast<double>(sum(ws, [&](const WorkerMetrics& x) { return (x.h2.*member).get(); })));
  }
  static constexpr const char* kGoaways[] = {
      "rapid_reset",         "control_flood", "empty_frame_flood", "continuation_flood",
      "window_update_flood", "flooded",       "protocol_error"};
  static_assert(std::size(kGoaways) == static_cast<size_t>(H2Goaway::kCount));
  w.header("sessiongate_http2_goaway_total", "counter",
           "HTTP/2 connections ended with a GOAWAY error, by cause.");
  for (int g = 0; g < static_cast<int>(H2Goaway::kCount); ++g) {
    uint64_t v = sum(ws, [&](const WorkerMetrics& x) { return x.h2.goaway[g].get(); });
    std::snprintf(labels, sizeof labels, "reason=\"%s\"", kGoaways[g]);
    w.sample("sessiongate_http2_goaway_total", labels, static_cast<double>(v));
  }
}

}  // namespace

std::string render_prometheus(const std::vector<const WorkerMetrics*>& ws,
                              const ProcessMetrics& process, const SessionFigures& s, bool ready,
                              bool draining) {
  std::string out;
  out.reserve(8192);
  Writer w(out);
  char labels[96];

  w.header("sessiongate_requests_total", "counter",
           "Requests answered, by method and status class.");
  for (int m = 0; m < static_cast<int>(MethodLabel::kCount); ++m) {
    for (int c = 0; c < 5; ++c) {
      uint64_t v = sum(ws, [&](const WorkerMetrics& x) { return x.requests[m][c].get(); });
      std::snprintf(labels, sizeof labels, "method=\"%s\",code=\"%dxx\"", kMethodNames[m], c + 1);
      w.sample("sessiongate_requests_total", labels, static_cast<double>(v));
    }
  }
  http2_metrics(w, ws);
  histogram(w, ws, "sessiongate_request_duration_seconds",
            "Time from the request head to the end of the response.",
            &WorkerMetrics::request_duration);
  histogram(w, ws, "sessiongate_upstream_connect_duration_seconds",
            "Time to open a new connection to the upstream.",
            &WorkerMetrics::upstream_connect_duration);
  histogram(w, ws, "sessiongate_upstream_response_duration_seconds",
            "Time from the request sent upstream to the response head.",
            &WorkerMetrics::upstream_response_duration);

  w.header("sessiongate_upstream_errors_total", "counter", "Upstream failures, by kind.");
  for (int e = 0; e < static_cast<int>(UpstreamError::kCount); ++e) {
    uint64_t v = sum(ws, [&](const WorkerMetrics& x) { return x.upstream_errors[e].get(); });
    std::snprintf(labels, sizeof labels, "kind=\"%s\"", kErrorNames[e]);
    w.sample("sessiongate_upstream_errors_total", labels, static_cast<double>(v));
  }
  auto gauge_sum = [&](std::atomic<int64_t> WorkerMetrics::*member) {
    int64_t t = 0;
    for (const WorkerMetrics* x : ws)
      t += (x->*member).load(std::memory_order_relaxed);
    return static_cast<double>(t);
  };
  w.scalar("sessiongate_client_connections", "gauge", "Client connections open.",
           gauge_sum(&WorkerMetrics::connections_open));
  w.scalar("sessiongate_client_connections_accepted_total", "counter",
           "Client connections accepted.", static_cast<double>(sum(ws, [](const WorkerMetrics& x) {
             return x.connections_accepted.get();
           })));
  w.scalar("sessiongate_upstream_connections", "gauge", "Upstream connections open.",
           gauge_sum(&WorkerMetrics::upstream_open));
  w.scalar("sessiongate_upstream_connections_idle", "gauge",
           "Upstream keep-alive connections idle in the pools.",
           gauge_sum(&WorkerMetrics::upstream_idle));
  w.scalar(
      "sessiongate_received_bytes_total", "counter", "Request body bytes read from clients.",
      static_cast<double>(sum(ws, [](const WorkerMetrics& x) { return x.bytes_received.get(); })));
  w.scalar("sessiongate_sent_bytes_total", "counter", "Response body bytes sent to clients.",
           static_cast<double>(sum(ws, [](const WorkerMetrics& x) { return x.bytes_sent.get(); })));
  w.header("sessiongate_spliced_bytes_total", "counter",
           "Body bytes moved with splice(2), never copied (upstream.splice): response bodies to "
           "clients, request bodies to upstreams.");
  w.sample(
      "sessiongate_spliced_bytes_total", "direction=\"response\"",
      static_cast<double>(sum(ws, [](const WorkerMetrics& x) { return x.bytes_spliced.get(); })));
  w.sample("sessiongate_spliced_bytes_total", "direction=\"request\"",
           static_cast<double>(
               sum(ws, [](const WorkerMetrics& x) { return x.bytes_spliced_request.get(); })));
  w.scalar(
      "sessiongate_bad_requests_total", "counter",
      "Requests refused before forwarding (malformed, too large, timed out).",
      static_cast<double>(sum(ws, [](const WorkerMetrics& x) { return x.bad_requests.get(); })));
  w.scalar(
      "sessiongate_logout_refused_total", "counter",
      "GET requests to session.logout_path refused as not from the site's own pages (403).",
      static_cast<double>(sum(ws, [](const WorkerMetrics& x) { return x.logout_refused.get(); })));
  policy_metrics(w, ws);
  w.scalar("sessiongate_tls_handshake_errors_total", "counter",
           "Client TLS handshakes that failed.",
           static_cast<double>(
               sum(ws, [](const WorkerMetrics& x) { return x.tls_handshake_errors.get(); })));
  w.scalar("sessiongate_rejected_client_headers_total", "counter",
           "Client-sent headers under the session prefix that were removed.",
           static_cast<double>(
               sum(ws, [](const WorkerMetrics& x) { return x.rejected_client_headers.get(); })));
  w.scalar("sessiongate_rejected_session_directives_total", "counter",
           "Session directives from the application that were refused.",
           static_cast<double>(
               sum(ws, [](const WorkerMetrics& x) { return x.rejected_directives.get(); })));
  w.scalar(
      "sessiongate_store_errors_total", "counter", "Session store operations that failed.",
      static_cast<double>(sum(ws, [](const WorkerMetrics& x) { return x.store_errors.get(); })));
  w.scalar("sessiongate_rotated_token_replays_total", "counter",
           "Rotated-away session tokens presented after the grace window (possible stolen cookie).",
           static_cast<double>(
               sum(ws, [](const WorkerMetrics& x) { return x.rotated_token_replays.get(); })));
  w.scalar("sessiongate_tunnels_closed_session_ended_total", "counter",
           "WebSocket tunnels closed (1008) because their session was destroyed, revoked or "
           "expired.",
           static_cast<double>(sum(
               ws, [](const WorkerMetrics& x) { return x.tunnels_closed_session_ended.get(); })));
  w.scalar("sessiongate_responses_ended_session_ended_total", "counter",
           "Responses (HTTP/1.1 or HTTP/2 streams) cut off because their session was destroyed, "
           "revoked or expired while they ran.",
           static_cast<double>(sum(
               ws, [](const WorkerMetrics& x) { return x.responses_ended_session_ended.get(); })));
  w.scalar("sessiongate_watched_session_checks_total", "counter",
           "Store lookups of sessions with an open tunnel or a long response (the periodic "
           "check).",
           static_cast<double>(
               sum(ws, [](const WorkerMetrics& x) { return x.watched_session_checks.get(); })));

  w.scalar("sessiongate_sessions_active", "gauge", "Sessions held by the store.",
           static_cast<double>(s.active));
  w.scalar("sessiongate_sessions_created_total", "counter", "Sessions created.",
           static_cast<double>(s.created));
  // With Redis, expiries and evictions are what this instance's expiry sweep found.
  const uint64_t swept_idle =
      sum(ws, [](const WorkerMetrics& x) { return x.redis_swept_expired_idle.get(); });
  const uint64_t swept_absolute =
      sum(ws, [](const WorkerMetrics& x) { return x.redis_swept_expired_absolute.get(); });
  const uint64_t swept_evicted =
      sum(ws, [](const WorkerMetrics& x) { return x.redis_swept_evicted.get(); });
  w.header("sessiongate_sessions_expired_total", "counter", "Sessions expired, by timeout.");
  w.sample("sessiongate_sessions_expired_total", "timeout=\"idle\"",
           static_cast<double>(s.expired_idle + swept_idle));
  w.sample("sessiongate_sessions_expired_total", "timeout=\"absolute\"",
           static_cast<double>(s.expired_absolute + swept_absolute));
  w.scalar("sessiongate_sessions_rotated_total", "counter", "Sessions rotated (new token).",
           static_cast<double>(s.rotated));
  w.scalar("sessiongate_sessions_destroyed_total", "counter", "Sessions destroyed (logout).",
           static_cast<double>(s.destroyed));
  w.scalar("sessiongate_sessions_evicted_total", "counter",
           "Sessions evicted to stay under max_sessions (memory), or found evicted by Redis.",
           static_cast<double>(s.evicted + swept_evicted));
  w.scalar("sessiongate_sessions_evicted_protected_total", "counter",
           "Evicted sessions that had come back or held attributes (a full store).",
           static_cast<double>(s.evicted_protected));
  w.scalar("sessiongate_rotation_markers_dropped_total", "counter",
           "Rotation markers forgotten before idle_timeout to stay in their bound (memory store).",
           static_cast<double>(s.markers_dropped));
  w.scalar("sessiongate_store_records_rejected_total", "counter",
           "Session records read back from storage that failed the record check and were skipped.",
           // The memory store counts its snapshot's, each worker's Redis store its own.
           static_cast<double>(s.records_rejected + sum(ws, [](const WorkerMetrics& x) {
                                 return x.store_records_rejected.get();
                               })));

  w.header("sessiongate_config_reloads_total", "counter", "Configuration reloads, by result.");
  w.sample("sessiongate_config_reloads_total", "result=\"ok\"",
           static_cast<double>(process.reloads_ok.load()));
  w.sample("sessiongate_config_reloads_total", "result=\"failed\"",
           static_cast<double>(process.reloads_failed.load()));
  w.scalar("sessiongate_ready", "gauge", "1 when /readyz answers 200.", ready ? 1 : 0);
  w.scalar("sessiongate_draining", "gauge", "1 while draining.", draining ? 1 : 0);
  w.scalar("sessiongate_start_time_seconds", "gauge", "Unix time the process started.",
           static_cast<double>(process.start_time_s.load()));

  // Redis store.
  w.scalar(
      "sessiongate_redis_commands_total", "counter", "Commands sent to Redis.",
      static_cast<double>(sum(ws, [](const WorkerMetrics& x) { return x.redis_commands.get(); })));
  w.header("sessiongate_redis_errors_total", "counter",
           "Redis commands that failed, by kind: error reply or lost connection, no reply within "
           "the timeout, refused at once while disconnected.");
  w.sample(
      "sessiongate_redis_errors_total", "kind=\"error\"",
      static_cast<double>(sum(ws, [](const WorkerMetrics& x) { return x.redis_errors.get(); })));
  w.sample(
      "sessiongate_redis_errors_total", "kind=\"timeout\"",
      static_cast<double>(sum(ws, [](const WorkerMetrics& x) { return x.redis_timeouts.get(); })));
  w.sample(
      "sessiongate_redis_errors_total", "kind=\"unavailable\"",
      static_cast<double>(sum(ws, [](const WorkerMetrics& x) { return x.redis_rejected.get(); })));
  w.scalar("sessiongate_redis_reconnects_total", "counter",
           "Redis connections re-established after a loss.",
           static_cast<double>(
               sum(ws, [](const WorkerMetrics& x) { return x.redis_reconnects.get(); })));
  w.scalar("sessiongate_redis_connections", "gauge", "Workers connected to Redis.",
           gauge_sum(&WorkerMetrics::redis_connected));
  w.scalar("sessiongate_redis_cache_hits_total", "counter",
           "Returning visits answered from a worker's local copy of the session record, without "
           "a Redis command (store.redis.local_cache).",
           static_cast<double>(
               sum(ws, [](const WorkerMetrics& x) { return x.redis_cache_hits.get(); })));
  w.scalar("sessiongate_redis_cache_invalidations_total", "counter",
           "Session keys Redis reported changed to the local caches (CLIENT TRACKING).",
           static_cast<double>(
               sum(ws, [](const WorkerMetrics& x) { return x.redis_cache_invalidations.get(); })));
  histogram(w, ws, "sessiongate_redis_command_duration_seconds",
            "Time from a Redis command sent to its reply.", &WorkerMetrics::redis_command_duration);

  // Destroys the store did not confirm: refused locally and retried (pending_destroys.h).
  w.scalar("sessiongate_session_destroy_unconfirmed_total", "counter",
           "Session destroys the store did not confirm (refused locally and retried, or 503 when "
           "the queue was full).",
           static_cast<double>(sum(
               ws, [](const WorkerMetrics& x) { return x.session_destroy_unconfirmed.get(); })));
  w.scalar("sessiongate_session_destroy_queue_full_total", "counter",
           "Unconfirmed session destroys not queued because max_pending_destroys was reached.",
           static_cast<double>(
               sum(ws, [](const WorkerMetrics& x) { return x.session_destroy_queue_full.get(); })));
  w.scalar("sessiongate_session_destroy_retries_confirmed_total", "counter",
           "Unconfirmed session destroys later confirmed by a background retry.",
           static_cast<double>(
               sum(ws, [](const WorkerMetrics& x) { return x.session_destroy_retried_ok.get(); })));
  w.scalar("sessiongate_session_destroys_pending", "gauge",
           "Session destroys waiting for the store's confirmation; their tokens are refused here.",
           gauge_sum(&WorkerMetrics::session_destroys_pending));
  return out;
}

}  // namespace sg
