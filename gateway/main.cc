// sessiongate: the executable. Command line, signals, and wiring of the proxy_core library.
//
//   sessiongate [--config FILE]        run in the foreground (default ./gateway.toml)
//   sessiongate --check --config FILE  validate; print FILE:LINE:COL: message lines; exit 0 or 1
//   sessiongate --print-config         print the effective configuration and exit
//   sessiongate --version
//   sessiongate --health-check --config FILE   GET /healthz on this configuration's own listener
//                                              (admin if set); exit 0 on 200, else 1
//
// SIGTERM/SIGINT drain (stop accepting, readiness 503, in-flight requests finish up to
// server.drain_timeout) then exit 0. SIGHUP reloads the file; an invalid file is logged and the
// running configuration stays. SIGUSR1 reopens the access log (logrotate).
//
// Under systemd (Type=notify) the service manager hears READY=1 once every listener accepts,
// RELOADING=1 ... READY=1 around a SIGHUP reload, STOPPING=1 when the drain starts, STATUS=
// lines, and WATCHDOG=1 every half WatchdogSec= while the main loop turns.
#include <signal.h>
#include <uv.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <string>

#include "proxy_core/admin_server.h"
#include "proxy_core/config/config_loader.h"
#include "proxy_core/ops/health_client.h"
#include "proxy_core/ops/log.h"
#include "proxy_core/ops/systemd_notify.h"
#include "proxy_core/server.h"

namespace {

struct Options {
  std::string config_path = "gateway.toml";
  bool check = false;
  bool print_config = false;
  bool version = false;
  bool health_check = false;
  std::string log_level;
};

void usage(FILE* out) {
  std::fprintf(out,
               "usage: sessiongate [--config FILE] [--check] [--print-config] [--health-check] "
               "[--log-level debug|info|warn|error] [--version]\n");
}

bool parse_args(int argc, char** argv, Options& o) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](std::string& out) {
      if (i + 1 >= argc) return false;
      out = argv[++i];
      return true;
    };
    if (a == "--config" || a == "-c") {
      if (!value(o.config_path)) return false;
    } else if (a.rfind("--config=", 0) == 0) {
      o.config_path = a.substr(9);
    } else if (a == "--check" || a == "-t") {
      o.check = true;
    } else if (a == "--print-config") {
      o.print_config = true;
    } else if (a == "--health-check") {
      o.health_check = true;
    } else if (a == "--version" || a == "-v") {
      o.version = true;
    } else if (a == "--log-level") {
      if (!value(o.log_level)) return false;
    } else if (a == "--help" || a == "-h") {
      usage(stdout);
      std::exit(0);
    } else {
      std::fprintf(stderr, "sessiongate: unknown argument %s\n", a.c_str());
      return false;
    }
  }
  return true;
}

bool parse_level(const std::string& s, sg::LogLevel& out) {
  if (s == "debug")
    out = sg::LogLevel::kDebug;
  else if (s == "info")
    out = sg::LogLevel::kInfo;
  else if (s == "warn")
    out = sg::LogLevel::kWarn;
  else if (s == "error")
    out = sg::LogLevel::kError;
  else
    return false;
  return true;
}

// Loads and reports; returns the config or nullptr.
std::shared_ptr<const sg::Config> load(const std::string& path) {
  sg::ConfigLoadResult r = sg::load_config_file(path);
  for (const auto& w : r.warnings)
    std::fprintf(stderr, "%s (warning)\n", w.format().c_str());
  for (const auto& e : r.errors)
    std::fprintf(stderr, "%s\n", e.format().c_str());
  if (!r.config) return nullptr;
  return std::make_shared<const sg::Config>(std::move(*r.config));
}

struct Runtime {
  Options options;
  sg::Server server;
  std::unique_ptr<sg::AdminServer> admin;
  uv_loop_t loop;
  uv_signal_t sigterm, sigint, sighup, sigusr1;
  uv_timer_t drain_poll;
  uv_timer_t drain_delay;  // server.drain_delay: serving on with /readyz 503 before the drain
  uv_timer_t snapshot;
  uv_timer_t reload_poll;  // a reload is announced as done once every worker has taken it up
  uv_timer_t watchdog;
  sg::SystemdNotifier notifier;
  uint64_t drain_deadline = 0;
  bool draining = false;
  bool delaying = false;  // within server.drain_delay: still accepting
  bool forced = false;
};

void on_drain_poll(uv_timer_t* t) {
  auto* rt = static_cast<Runtime*>(t->data);
  if (rt->server.all_finished()) {
    if (rt->admin) rt->admin->stop();
    uv_stop(&rt->loop);
    return;
  }
  if (!rt->forced && uv_now(&rt->loop) >= rt->drain_deadline) {
    SG_LOG_WARN("drain timeout reached: closing the remaining connections");
    rt->forced = true;
    rt->server.force_stop();
  }
}

// The one-line summary systemctl status shows.
std::string serving_status(const sg::Config& c, const char* what) {
  std::string s = std::string(what) + " on";
  for (const std::string& a : c.server.listen)
    s += " " + a;
  s += ", " + std::to_string(c.server.workers) + " worker(s), store " +
       (c.session.store == sg::StoreKind::kRedis ? "redis" : "memory");
  if (!c.admin.listen.empty()) s += ", admin " + c.admin.listen;
  return s;
}

void notify(Runtime* rt, const std::string& message) {
  std::string error;
  if (rt->notifier.enabled() && !rt->notifier.send(message, &error))
    SG_LOG_WARN("sd_notify: %s", error.c_str());
}

// Stops accepting and lets in-flight requests finish within server.drain_timeout.
void start_drain(Runtime* rt, int signum, const char* notify_prefix = "") {
  rt->delaying = false;
  uv_timer_stop(&rt->drain_delay);
  notify(rt,
         std::string(notify_prefix) +
             sg::status_message("draining (up to " +
                                std::to_string(rt->server.config()->server.drain_timeout.count()) +
                                " ms for in-flight requests)"));
  // The admin listener stays open while draining, so that probes see /readyz answer 503.
  SG_LOG_INFO("%s: draining (up to %lld ms)", signum == SIGTERM ? "SIGTERM" : "SIGINT",
              static_cast<long long>(rt->server.config()->server.drain_timeout.count()));
  rt->server.begin_drain();
  rt->drain_deadline = uv_now(&rt->loop) + rt->server.config()->server.drain_timeout.count();
  uv_timer_start(&rt->drain_poll, on_drain_poll, 0, 20);
}

void on_drain_delay(uv_timer_t* t) {
  start_drain(static_cast<Runtime*>(t->data), SIGTERM);
}

void reload_finished(Runtime* rt, const std::string& status) {
  uv_timer_stop(&rt->reload_poll);
  if (!rt->draining) notify(rt, "READY=1\n" + sg::status_message(status));
}

void on_reload_poll(uv_timer_t* t) {
  auto* rt = static_cast<Runtime*>(t->data);
  if (!rt->server.config_applied()) return;
  // From here on no new connection gets the old configuration or certificates (the TLS reload
  // test waits for this line).
  SG_LOG_INFO("reload taken up by every worker");
  reload_finished(rt, serving_status(*rt->server.config(), "reloaded; serving"));
}

void on_watchdog(uv_timer_t* t) {
  notify(static_cast<Runtime*>(t->data), "WATCHDOG=1");
}

void on_snapshot(uv_timer_t* t) {
  static_cast<Runtime*>(t->data)->server.save_snapshot();
}

// SIGHUP: an invalid file or a configuration the server refuses leaves the running one in place.
void reload(Runtime* rt) {
  SG_LOG_INFO("SIGHUP: reloading %s", rt->options.config_path.c_str());
  if (!rt->draining)
    notify(rt, sg::reloading_message(sg::monotonic_usec()) + "\n" +
                   sg::status_message("reloading " + rt->options.config_path));
  auto config = load(rt->options.config_path);
  if (!config) {
    rt->server.state().process_metrics.reloads_failed++;
    SG_LOG_ERROR("reload failed: the running configuration stays");
    reload_finished(rt, serving_status(*rt->server.config(),
                                       "reload failed (invalid file, see the log); serving"));
    return;
  }
  std::string error;
  if (!rt->server.apply(config, error)) {
    rt->server.state().process_metrics.reloads_failed++;
    SG_LOG_ERROR("reload failed: %s; the running configuration stays", error.c_str());
    reload_finished(rt, serving_status(*rt->server.config(),
                                       ("reload failed (" + error + "); serving").c_str()));
    return;
  }
  // READY=1 once every worker has taken the new configuration up (new listeners listen).
  uv_timer_start(&rt->reload_poll, on_reload_poll, 0, 5);
  rt->server.state().process_metrics.reloads_ok++;
  sg::LogLevel level;
  if (!rt->options.log_level.empty() && parse_level(rt->options.log_level, level))
    sg::set_log_level(level);  // --log-level outranks the file
  SG_LOG_INFO("reload applied to new requests and connections");
}

void on_signal(uv_signal_t* s, int signum) {
  auto* rt = static_cast<Runtime*>(s->data);
  if (signum == SIGHUP) {
    reload(rt);
    return;
  }
  if (signum == SIGUSR1) {
    std::string error;
    if (!rt->server.state().access_log.reopen(error)) SG_LOG_ERROR("%s", error.c_str());
    if (!rt->server.state().audit_log.reopen(error)) SG_LOG_ERROR("%s", error.c_str());
    return;
  }
  if (rt->draining) {
    if (rt->delaying) {  // a second signal cuts server.drain_delay short
      start_drain(rt, signum);
    } else if (signum == SIGINT) {  // a second Ctrl-C: stop now
      rt->forced = true;
      rt->server.force_stop();
    }
    return;
  }
  rt->draining = true;
  uv_timer_stop(&rt->snapshot);
  uv_timer_stop(&rt->reload_poll);
  long long delay = rt->server.config()->server.drain_delay.count();
  if (delay > 0) {
    // A load balancer that does not retry loses the requests it sends to a closed port: keep
    // serving until its health checks have seen /readyz 503 and taken this instance out.
    rt->delaying = true;
    rt->server.announce_drain();
    notify(rt, "STOPPING=1\n" + sg::status_message("draining: /readyz 503, serving for " +
                                                   std::to_string(delay) + " ms more"));
    SG_LOG_INFO("%s: /readyz 503; accepting and serving for %lld ms more, then draining",
                signum == SIGTERM ? "SIGTERM" : "SIGINT", delay);
    uv_timer_start(&rt->drain_delay, on_drain_delay, static_cast<uint64_t>(delay), 0);
    return;
  }
  start_drain(rt, signum, "STOPPING=1\n");
}

// Closes what is left on the main loop (signals, timers, the admin listener) and the loop itself,
// so that every exit, failed starts included, ends cleanly (LeakSanitizer checks it).
void close_main_loop(uv_loop_t* loop) {
  // On the way out: a SIGTERM or SIGINT now (an operator or a supervisor repeating the stop) must
  // not turn a clean exit into a death by signal when libuv, closing its signal handles, puts the
  // default action back. Blocked here (the workers are joined: this is the last thread), then
  // ignored, so one that arrives in between is dropped.
  sigset_t stops;
  sigemptyset(&stops);
  sigaddset(&stops, SIGTERM);
  sigaddset(&stops, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stops, nullptr);
  uv_walk(
      loop,
      [](uv_handle_t* h, void*) {
        if (!uv_is_closing(h)) uv_close(h, nullptr);
      },
      nullptr);
  uv_run(loop, UV_RUN_DEFAULT);
  uv_loop_close(loop);
  signal(SIGTERM, SIG_IGN);
  signal(SIGINT, SIG_IGN);
}

// --check: the file loads and its TLS material is usable.
int check_only(const Options& o, const sg::Config* config) {
  if (config == nullptr) return 1;
  std::string tls_error;
  if (!sg::check_tls(*config, tls_error)) {
    std::fprintf(stderr, "%s: %s\n", o.config_path.c_str(), tls_error.c_str());
    return 1;
  }
  std::printf("%s: configuration ok\n", o.config_path.c_str());
  return 0;
}

// --health-check: a container HEALTHCHECK against this configuration's own listener.
int health_check_only(const sg::Config& config) {
  // Short, so that a hung gateway counts as unhealthy.
  constexpr std::chrono::milliseconds kHealthCheckTimeout{3000};
  std::string error;
  auto target = sg::health_client_target(config, error);
  int status = target ? sg::run_health_client(*target, kHealthCheckTimeout, error) : 0;
  if (status == 200) return 0;
  if (status != 0) error = target->address + target->path + " answered " + std::to_string(status);
  std::fprintf(stderr, "sessiongate: unhealthy: %s\n", error.c_str());
  return 1;
}

// The modes that answer and exit (--check, --health-check, --print-config) and a file that did
// not load: the exit code. Nothing when the gateway is to serve.
std::optional<int> run_one_shot(const Options& o, const sg::Config* config) {
  if (o.check) return check_only(o, config);
  if (config == nullptr) return 1;
  if (o.health_check) return health_check_only(*config);
  if (o.print_config) {
    std::fputs(sg::render_effective_config(*config).c_str(), stdout);
    return 0;
  }
  return std::nullopt;
}

// Signals and timers on the main loop, and the systemd notifier (before any thread starts: it
// unsets NOTIFY_SOCKET and WATCHDOG_* for our children).
void init_main_loop(Runtime* rt) {
  // Writes to a closed client socket must be an error return, never a process kill.
  signal(SIGPIPE, SIG_IGN);
  uv_loop_init(&rt->loop);
  uv_signal_t* signals[] = {&rt->sigterm, &rt->sigint, &rt->sighup, &rt->sigusr1};
  int numbers[] = {SIGTERM, SIGINT, SIGHUP, SIGUSR1};
  for (int i = 0; i < 4; ++i) {
    uv_signal_init(&rt->loop, signals[i]);
    signals[i]->data = rt;
    uv_signal_start(signals[i], on_signal, numbers[i]);
  }
  for (uv_timer_t* t :
       {&rt->drain_poll, &rt->drain_delay, &rt->reload_poll, &rt->watchdog, &rt->snapshot}) {
    uv_timer_init(&rt->loop, t);
    t->data = rt;
  }
  std::string notify_warning;
  rt->notifier.init_from_environment(notify_warning);
  if (!notify_warning.empty()) SG_LOG_WARN("%s", notify_warning.c_str());
}

// Workers and their listeners, then the admin listener; READY=1 once all accept. On failure
// everything started is stopped and the main loop closed (LeakSanitizer checks every exit).
bool start_serving(Runtime* rt, const std::shared_ptr<const sg::Config>& config) {
  std::string error;
  if (!rt->server.start(config, error)) {
    std::fprintf(stderr, "sessiongate: %s\n", error.c_str());
    notify(rt, sg::status_message("start failed: " + error));
    close_main_loop(&rt->loop);
    return false;
  }
  rt->server.state().process_metrics.start_time_s = sg::unix_now_ms() / 1000;
  if (!config->admin.listen.empty()) {
    rt->admin = std::make_unique<sg::AdminServer>(&rt->loop, &rt->server);
    if (!rt->admin->start(config->admin.listen, error)) {
      std::fprintf(stderr, "sessiongate: %s\n", error.c_str());
      notify(rt, sg::status_message("start failed: " + error));
      rt->server.begin_drain();
      rt->server.force_stop();
      rt->server.join();
      close_main_loop(&rt->loop);
      return false;
    }
  }
  SG_LOG_INFO("sessiongate %s started (config %s)", SG_VERSION, rt->options.config_path.c_str());
  // Every listener accepts (Server::start returns after the workers listen; the admin listener
  // is bound): the service manager may start what is ordered after us.
  notify(rt, "READY=1\n" + sg::status_message(serving_status(*rt->server.config(), "serving")));
  return true;
}

// The systemd watchdog ping and the periodic session snapshot.
void start_timers(Runtime* rt, const sg::Config& config) {
  if (uint64_t usec = rt->notifier.watchdog_usec()) {
    // Half the interval, as sd_watchdog_enabled(3) advises.
    uint64_t every_ms = usec / 2000 > 0 ? usec / 2000 : 1;
    SG_LOG_INFO("systemd watchdog: WATCHDOG=1 every %llu ms",
                static_cast<unsigned long long>(every_ms));
    uv_timer_start(&rt->watchdog, on_watchdog, 0, every_ms);
  }
  if (!config.memory_store.snapshot_path.empty()) {
    uint64_t every = static_cast<uint64_t>(config.memory_store.snapshot_interval.count());
    uv_timer_start(&rt->snapshot, on_snapshot, every, every);
  }
}

}  // namespace

int main(int argc, char** argv) {
  auto rt = std::make_unique<Runtime>();
  if (!parse_args(argc, argv, rt->options)) {
    usage(stderr);
    return 2;
  }
  if (rt->options.version) {
    std::printf("sessiongate %s\n", SG_VERSION);
    return 0;
  }
  sg::LogLevel override_level{};
  if (!rt->options.log_level.empty() && !parse_level(rt->options.log_level, override_level)) {
    std::fprintf(stderr, "sessiongate: --log-level must be debug, info, warn or error\n");
    return 2;
  }
  auto config = load(rt->options.config_path);
  if (std::optional<int> code = run_one_shot(rt->options, config.get())) return *code;
  sg::set_log_level(rt->options.log_level.empty() ? config->log.level : override_level);

  init_main_loop(rt.get());
  if (!start_serving(rt.get(), config)) return 1;
  start_timers(rt.get(), *config);
  uv_run(&rt->loop, UV_RUN_DEFAULT);
  rt->server.join();
  rt->server.save_snapshot();  // after the drain: every session of the run is in it
  close_main_loop(&rt->loop);
  SG_LOG_INFO("drained; exiting");
  return 0;
}
