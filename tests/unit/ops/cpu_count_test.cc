#include "proxy_core/ops/cpu_count.h"

#include <doctest/doctest.h>
#include <sched.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

namespace fs = std::filesystem;

namespace {

// A fake cgroup v2 tree: /proc/self/cgroup's content and cpu.max files under a mount point.
struct FakeCgroup {
  fs::path root;
  sg::CgroupPaths paths;
  FakeCgroup() {
    std::string tmpl = (fs::temp_directory_path() / "sg-cgroup-XXXXXX").string();
    REQUIRE(mkdtemp(tmpl.data()) != nullptr);
    root = tmpl;
    paths.self_cgroup = (root / "self_cgroup").string();
    paths.mount = (root / "mnt").string();
    fs::create_directories(paths.mount);
  }
  ~FakeCgroup() {
    std::error_code ec;
    fs::remove_all(root, ec);
  }
  void self(const std::string& content) { std::ofstream(paths.self_cgroup) << content; }
  void cpu_max(const std::string& cgroup, const std::string& content) {
    fs::path dir = fs::path(paths.mount + cgroup);
    fs::create_directories(dir);
    std::ofstream(dir / "cpu.max") << content;
  }
};

}  // namespace

TEST_CASE("cpu.max: quota over period, rounded up, and no limit is 0") {
  CHECK(sg::cpus_from_cpu_max("max 100000\n") == 0);
  CHECK(sg::cpus_from_cpu_max("200000 100000\n") == 2);
  CHECK(sg::cpus_from_cpu_max("150000 100000\n") == 2);  // 1.5 CPUs: 2 workers
  CHECK(sg::cpus_from_cpu_max("50000 100000") == 1);     // half a CPU: still one worker
  CHECK(sg::cpus_from_cpu_max("100000 100000") == 1);
  CHECK(sg::cpus_from_cpu_max("") == 0);
  CHECK(sg::cpus_from_cpu_max("garbage") == 0);
  CHECK(sg::cpus_from_cpu_max("100000 0") == 0);
  CHECK(sg::cpus_from_cpu_max("-5 100000") == 0);
}

TEST_CASE("the cgroup's cpu.max limits the CPU count and the tightest ancestor wins") {
  FakeCgroup cg;
  cg.self("0::/system.slice/sessiongate.service\n");
  CHECK(sg::cgroup_cpu_limit(cg.paths) == 0);  // no cpu.max anywhere: no limit
  cg.cpu_max("/system.slice/sessiongate.service", "300000 100000\n");
  CHECK(sg::cgroup_cpu_limit(cg.paths) == 3);
  cg.cpu_max("/system.slice", "150000 100000\n");  // the slice allows less: it binds the unit
  CHECK(sg::cgroup_cpu_limit(cg.paths) == 2);
  cg.cpu_max("/system.slice", "max 100000\n");
  CHECK(sg::cgroup_cpu_limit(cg.paths) == 3);
}

TEST_CASE("a container's own namespace root (0::/) reads the mount point's cpu.max") {
  FakeCgroup cg;
  cg.self("0::/\n");
  cg.cpu_max("", "200000 100000\n");
  CHECK(sg::cgroup_cpu_limit(cg.paths) == 2);
}

TEST_CASE("cgroup v1 only, or no files: no limit") {
  FakeCgroup cg;
  cg.self("12:cpu,cpuacct:/docker/abc\n4:memory:/docker/abc\n");
  cg.cpu_max("/docker/abc", "100000 100000\n");  // v1 paths are not the v2 hierarchy
  CHECK(sg::cgroup_cpu_limit(cg.paths) == 0);
  sg::CgroupPaths missing{(cg.root / "nope").string(), (cg.root / "nope2").string()};
  CHECK(sg::cgroup_cpu_limit(missing) == 0);
}

TEST_CASE("usable CPUs: the smallest of quota, affinity and host cores, at least 1") {
  CHECK(sg::usable_cpus(2, 8, 16) == 2);
  CHECK(sg::usable_cpus(0, 3, 16) == 3);
  CHECK(sg::usable_cpus(0, 0, 16) == 16);
  CHECK(sg::usable_cpus(4, 0, 0) == 4);
  CHECK(sg::usable_cpus(0, 0, 0) == 1);
}

TEST_CASE("this process: a quota in the fake cgroup caps the count, affinity too") {
  FakeCgroup cg;
  cg.self("0::/app\n");
  cg.cpu_max("/app", "100000 100000\n");
  CHECK(sg::usable_cpus_here(cg.paths) == 1);
  cpu_set_t set;
  CPU_ZERO(&set);
  REQUIRE(sched_getaffinity(0, sizeof set, &set) == 0);
  unsigned affinity = static_cast<unsigned>(CPU_COUNT(&set));
  cg.cpu_max("/app", "max 100000\n");
  unsigned host = std::thread::hardware_concurrency();
  CHECK(sg::usable_cpus_here(cg.paths) == std::min(affinity, host == 0 ? affinity : host));
}
