// Figures for the request policy of issue 15 (proxy_core/policy/): what each check adds to one
// returning-session request. Run it under callgrind for instructions per call:
//   valgrind --tool=callgrind --callgrind-out-file=/dev/null build/policy_bench N
// prints the instruction-independent timing itself; N calls of each (default 200,000). With
// "off" as the second argument it runs only the checks a request makes when every feature is off.
// Prints numbers; never fails on a timing.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "proxy_core/policy/access_policy.h"
#include "proxy_core/policy/csrf_policy.h"
#include "proxy_core/policy/csrf_token.h"
#include "proxy_core/policy/identity_signature.h"

namespace {

using Clock = std::chrono::steady_clock;

sg::MessageHead returning_request() {
  sg::MessageHead head;
  head.method = "GET";
  head.target = "/cart?page=2";
  for (const auto& [name, value] : {std::pair{"Host", "shop.example"},
                                    {"Accept", "text/html,*/*;q=0.8"},
                                    {"Sec-Fetch-Mode", "navigate"},
                                    {"Sec-Fetch-Site", "same-origin"}})
    head.headers.push_back({name, value});
  head.header_count = head.headers.size();
  return head;
}

template <typename F>
double ns_per_call(size_t n, F&& f) {
  const auto start = Clock::now();
  for (size_t i = 0; i < n; ++i)
    f(i);
  return std::chrono::duration<double, std::nano>(Clock::now() - start).count() /
         static_cast<double>(n);
}

}  // namespace

int main(int argc, char** argv) {
  const size_t n = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 200000;
  const bool only_off = argc > 2 && std::strcmp(argv[2], "off") == 0;
  const sg::MessageHead request = returning_request();
  sg::SessionAttributes attrs = {{"user", "alice"}};
  const sg::SessionView session{&attrs};
  volatile size_t sink = 0;

  sg::Config off;
  const double off_ns = ns_per_call(n, [&](size_t) {
    // What the exchange does per request with every feature off: three tests of the config.
    sink = sink + (off.access.rules.empty() ? 0 : 1) +
           (off.csrf.mode == sg::CsrfMode::kOff ? 0 : 1) + (off.upstream.sign ? 1 : 0);
  });
  std::printf("features off: %.1f ns per request\n", off_ns);
  if (only_off) return 0;

  sg::AccessConfig access;
  access.login_url = "/login";
  access.rules.push_back({{"/cart"}, {}, {{"user", "", true}}});
  const double access_ns = ns_per_call(n, [&](size_t) {
    sink = sink + static_cast<size_t>(sg::decide_access(access, request, session).status);
  });
  std::printf("one [[access.rules]] rule, met: %.1f ns per request\n", access_ns);

  const sg::SigningKey key(std::string(32, 'k'));
  const sg::SignedHeaders injected = {{"X-Session-Id", std::string(32, 'a')},
                                      {"X-Session-User", "alice"}};
  const double sign_ns = ns_per_call(n, [&](size_t i) {
    sink = sink + sg::sign_identity(key, request.method, request.target, injected, injected.size(),
                                    "X-Session-", 1764650000 + static_cast<int64_t>(i % 7))
                      .size();
  });
  std::printf("sign = true (two identity headers): %.1f ns per request\n", sign_ns);

  const sg::CsrfKey csrf_key(std::string(32, 'c'));
  sg::TokenHash live{};
  const double token_ns = ns_per_call(n, [&](size_t i) {
    live[0] = static_cast<uint8_t>(i);
    sink = sink + csrf_key.token_for(live).size();
  });
  std::printf("csrf token derivation: %.1f ns per request\n", token_ns);
  return sink == 42 ? 1 : 0;
}
