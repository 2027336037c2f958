#include "proxy_core/ops/cpu_count.h"

#include <sched.h>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <fstream>
#include <sstream>
#include <thread>

namespace sg {

namespace {

bool parse_u64(std::string_view s, uint64_t& out) {
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && end == s.data() + s.size();
}

bool read_file(const std::string& path, std::string& out) {
  std::ifstream in(path);
  if (!in) return false;
  std::ostringstream ss;
  ss << in.rdbuf();
  out = ss.str();
  return true;
}

// The v2 entry of /proc/self/cgroup ("0::/path"); empty when there is none (v1 only).
std::string v2_cgroup_path(const std::string& self_cgroup) {
  std::istringstream lines(self_cgroup);
  std::string line;
  while (std::getline(lines, line))
    if (line.rfind("0::", 0) == 0) return line.substr(3);
  return {};
}

}  // namespace

unsigned cpus_from_cpu_max(std::string_view cpu_max) {
  while (!cpu_max.empty() && (cpu_max.back() == '\n' || cpu_max.back() == ' '))
    cpu_max.remove_suffix(1);
  size_t space = cpu_max.find(' ');
  if (space == std::string_view::npos) return 0;
  std::string_view quota_text = cpu_max.substr(0, space);
  uint64_t quota = 0, period = 0;
  if (quota_text == "max" || !parse_u64(quota_text, quota) ||
      !parse_u64(cpu_max.substr(space + 1), period) || period == 0 || quota == 0)
    return 0;
  uint64_t cpus = (quota + period - 1) / period;  // 1.5 CPUs of quota: 2 workers, not 1
  return static_cast<unsigned>(std::min<uint64_t>(cpus, 1u << 16));
}

unsigned cgroup_cpu_limit(const CgroupPaths& paths) {
  std::string text;
  if (!read_file(paths.self_cgroup, text)) return 0;
  std::string path = v2_cgroup_path(text);
  if (path.empty() || path.front() != '/') return 0;
  unsigned tightest = 0;
  // "/a/b" -> "/a/b", "/a", "" (the root has no cpu.max; reading it fails harmlessly).
  while (true) {
    std::string cpu_max;
    if (path.find("..") == std::string::npos &&
        read_file(paths.mount + path + "/cpu.max", cpu_max)) {
      unsigned n = cpus_from_cpu_max(cpu_max);
      if (n != 0 && (tightest == 0 || n < tightest)) tightest = n;
    }
    if (path.empty() || path == "/") break;
    size_t slash = path.rfind('/');
    path.resize(slash);
  }
  return tightest;
}

unsigned usable_cpus(unsigned cgroup_limit, unsigned affinity_cpus, unsigned host_cpus) {
  unsigned n = 0;
  for (unsigned v : {cgroup_limit, affinity_cpus, host_cpus})
    if (v != 0 && (n == 0 || v < n)) n = v;
  return n == 0 ? 1 : n;
}

unsigned usable_cpus_here(const CgroupPaths& paths) {
  unsigned affinity = 0;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0)
    affinity = static_cast<unsigned>(CPU_COUNT(&set));
  return usable_cpus(cgroup_cpu_limit(paths), affinity, std::thread::hardware_concurrency());
}

}  // namespace sg
