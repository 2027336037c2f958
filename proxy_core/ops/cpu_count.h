// How many CPUs this process may actually use: what `server.workers = "auto"` starts.
//
// A container or a systemd unit (CPUQuota=) limits a process with the cgroup v2 CPU controller
// (cpu.max: "QUOTA PERIOD", or "max PERIOD" for no limit), and taskset/CPUAffinity= with the
// affinity mask. Counting host cores instead starts more workers than there is CPU time for:
// they then take turns on the quota and every request waits for its worker's slice.
#pragma once

#include <string>
#include <string_view>

namespace sg {

// CPUs granted by one cpu.max file's content: quota / period rounded up, at least 1; 0 when the
// file sets no limit ("max") or cannot be read as one.
unsigned cpus_from_cpu_max(std::string_view cpu_max);

// Where the cgroup files are; tests point these at a fake tree.
struct CgroupPaths {
  std::string self_cgroup = "/proc/self/cgroup";  // "0::/system.slice/x.service" under v2
  std::string mount = "/sys/fs/cgroup";           // the cgroup v2 hierarchy's mount point
};

// The tightest cpu.max on the way from this process's cgroup up to the root (a parent's limit
// binds its children too); 0 when none is set or the files are absent (cgroup v1, no /sys).
unsigned cgroup_cpu_limit(const CgroupPaths& paths);

// The smallest of: the cgroup limit, the CPUs in `affinity_cpus` (0: unknown), `host_cpus`
// (0: unknown). At least 1.
unsigned usable_cpus(unsigned cgroup_limit, unsigned affinity_cpus, unsigned host_cpus);

// usable_cpus() for this process: its cgroup, sched_getaffinity, the host's core count.
unsigned usable_cpus_here(const CgroupPaths& paths = {});

}  // namespace sg
