// EAL bootstrap behind the friendly command line: builds the EAL argument vector from the
// user's EAL options plus what the port needs, and owns the EAL's lifetime (RAII).
#pragma once

#include <string>
#include <vector>

namespace sluice::engine {

struct EalPlan {
    std::vector<std::string> args;  // argv for rte_eal_init, args[0] = program name
    std::vector<std::string> notices;
    std::string file_prefix;  // where the runtime dir and telemetry socket are
};

// What rte_eal_init will be given:
//  - the port: "--vdev DEVARGS" for a vdev, "-a ADDR" for a PCI address (unless the user
//    already names devices with -a/-b/--vdev), and "--no-pci" for a vdev;
//  - memory: hugepages when the machine has free ones, otherwise "--no-huge -m 1024" with a
//    one-line notice (unless the user chose memory options);
//  - "--file-prefix <app>" unless given, so that two apps do not collide and
//    `dpdk-telemetry.py -f <app>` finds the socket.
EalPlan plan_eal(const std::string& prog, const std::string& port,
                 const std::vector<std::string>& user_args, bool hugepages_free);

// An EAL of the process's own, for tests and benchmarks that run the stack in process: no
// hugepages, PCI or shared config, `mem_mb` of memory, a per-process file prefix (so parallel
// runs do not collide), and quiet logs.
EalPlan private_eal_plan(const std::string& prog, unsigned mem_mb);

// True when /proc/meminfo reports free hugepages.
bool hugepages_available();

class Eal {
  public:
    Eal() = default;
    ~Eal();
    Eal(const Eal&) = delete;
    Eal& operator=(const Eal&) = delete;
    // Returns 0, or a negative errno after printing why.
    int init(const EalPlan& plan);
    bool ok() const { return ok_; }

  private:
    bool ok_ = false;
};

}  // namespace sluice::engine
