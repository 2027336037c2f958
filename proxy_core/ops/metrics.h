// Metrics: counters, gauges and histograms for the admin listener's /metrics (Prometheus text
// format 0.0.4).
//
// Each worker owns one WorkerMetrics and is its only writer, so the request path does plain
// relaxed loads and stores on its own cache lines: no lock, no contended atomic. A scrape sums the
// workers' blocks (values may be a moment apart between workers, which Prometheus tolerates).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace sg {

// A counter with a single writer thread and any number of readers.
class Counter {
 public:
  void add(uint64_t n = 1) {
    v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  uint64_t get() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> v_{0};
};

// Seconds buckets from 100 µs to 10 s: loopback proxying is sub-millisecond, slow applications
// take seconds.
inline constexpr std::array<double, 15> kLatencyBuckets = {0.0001, 0.00025, 0.0005, 0.001, 0.0025,
                                                           0.005,  0.01,    0.025,  0.05,  0.1,
                                                           0.25,   0.5,     1.0,    2.5,   10.0};

class Histogram {
 public:
  void observe(double seconds);
  std::array<Counter, kLatencyBuckets.size() + 1> buckets;  // last = +Inf
  Counter count;
  std::atomic<uint64_t> sum_ns{0};
};

enum class MethodLabel { kGet, kHead, kPost, kPut, kDelete, kPatch, kOptions, kOther, kCount };
enum class UpstreamError {
  kConnectRefused,
  kConnectTimeout,
  kConnectOther,
  kResponseTimeout,
  kClosedEarly,  // closed or reset before the response completed
  kBadResponse,  // unparsable response
  kCount
};

MethodLabel method_label(std::string_view method);

// Why an HTTP/2 connection was ended with GOAWAY (the goaway_* fields of http2/h2_settings.h
// H2Stats, in that order: ops cannot include http2/).
enum class H2Goaway {
  kRapidReset,
  kControlFlood,
  kEmptyFrameFlood,
  kContinuationFlood,
  kWindowUpdateFlood,
  kFlooded,
  kProtocolError,
  kCount
};

// The HTTP/2 sessions of one worker, summed (each session's H2Stats is added as it grows).
struct H2Metrics {
  Counter connections;  // connections that spoke HTTP/2 (ALPN h2 or h2c prior knowledge)
  Counter streams;      // requests delivered to the exchange path
  Counter streams_refused;
  Counter malformed_requests;
  Counter header_lists_too_large;
  Counter peer_resets;
  Counter response_pauses;
  Counter goaway[static_cast<int>(H2Goaway::kCount)];
};

// The client protocol of a request (requests_by_protocol).
enum class ProtocolLabel { kHttp1, kHttp2, kCount };

// Slots of WorkerMetrics::csrf_refused: at least the number of CsrfReason values.
inline constexpr int kCsrfReasonSlots = 10;

struct WorkerMetrics {
  alignas(64) Counter requests[static_cast<int>(MethodLabel::kCount)][5];  // by status class
  Counter requests_by_protocol[static_cast<int>(ProtocolLabel::kCount)];
  Histogram request_duration;
  Histogram upstream_connect_duration;
  Histogram upstream_response_duration;  // request sent -> response head
  Counter upstream_errors[static_cast<int>(UpstreamError::kCount)];
  Counter bytes_received;         // request bodies from clients
  Counter bytes_sent;             // response bodies to clients
  Counter bytes_spliced;          // of which moved with splice(2) (upstream.splice)
  Counter bytes_spliced_request;  // request body bytes moved to upstreams with splice(2)
  Counter connections_accepted;
  std::atomic<int64_t> connections_open{0};
  std::atomic<int64_t> upstream_open{0};
  std::atomic<int64_t> upstream_idle{0};
  Counter rejected_client_headers;  // client-sent headers under the session prefix removed
  Counter rejected_directives;      // application session directives refused
  Counter store_errors;
  // Records read back from the store that failed the checks (session_record_check.h).
  Counter store_records_rejected;
  Counter sessions_fail_open;    // requests forwarded without a session (fail_open)
  Counter bad_requests;          // rejected with 4xx before forwarding
  Counter logout_refused;        // GETs of logout_path refused as cross-site (403)
  Counter tls_handshake_errors;  // client TLS handshakes that failed or timed out
  // Issue 15's request policy. By outcome: login_redirect, unauthorized, forbidden
  // (policy/access_policy.h AccessOutcome minus one).
  Counter access_denied[3];
  // By reason: indexed by policy/csrf_policy.h CsrfReason (ops cannot include policy/).
  Counter csrf_refused[kCsrfReasonSlots];
  // Redis store (redis_store.h): one connection per worker.
  Counter redis_commands;                   // commands sent
  Counter redis_errors;                     // error replies, lost connections, bad values
  Counter redis_timeouts;                   // no reply within store.redis.timeout
  Counter redis_rejected;                   // failed at once: not connected, or too many waiting
  Counter redis_reconnects;                 // connections re-established after a loss
  std::atomic<int64_t> redis_connected{0};  // 1 while this worker's connection is up
  Histogram redis_command_duration;         // command sent -> reply
  Counter redis_cache_hits;                 // lookups the local cache answered (no command)
  Counter redis_cache_invalidations;        // session keys Redis said changed (tracking)
  // Session gate: rotated-away tokens presented after the grace window (session_gate.h).
  Counter rotated_token_replays;
  // Issue 14: WebSocket tunnels closed because their session ended (close 1008), and the store
  // lookups of the periodic check of watched sessions (session_follower.h).
  Counter tunnels_closed_session_ended;
  Counter watched_session_checks;
  // Issue 14: the sessions the Redis expiry sweep ended (store/redis_expiry_sweep.h; worker 0):
  // added to sessions_expired_total and sessions_evicted_total, which the memory store feeds.
  Counter redis_swept_expired_idle;
  Counter redis_swept_expired_absolute;
  Counter redis_swept_evicted;
  // Responses (HTTP/1.1, HTTP/2 streams) cut off because their session ended while they ran.
  Counter responses_ended_session_ended;
  // Destroys the store did not confirm (pending_destroys.h).
  Counter session_destroy_unconfirmed;               // every one, queued or not
  Counter session_destroy_queue_full;                // not queued: the refused set was full (503)
  Counter session_destroy_retried_ok;                // confirmed by a background retry
  std::atomic<int64_t> session_destroys_pending{0};  // queued or being retried by this worker
  H2Metrics h2;
};

// Process-wide figures not owned by a worker.
struct ProcessMetrics {
  std::atomic<uint64_t> reloads_ok{0};
  std::atomic<uint64_t> reloads_failed{0};
  std::atomic<int64_t> start_time_s{0};
};

struct SessionFigures {
  uint64_t active = 0, created = 0, expired_idle = 0, expired_absolute = 0, rotated = 0,
           destroyed = 0, evicted = 0, evicted_protected = 0, records_rejected = 0,
           markers_dropped = 0;
};

// Renders the Prometheus text exposition of everything above.
std::string render_prometheus(const std::vector<const WorkerMetrics*>& workers,
                              const ProcessMetrics& process, const SessionFigures& sessions,
                              bool ready, bool draining);

}  // namespace sg
