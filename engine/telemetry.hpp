// Sluice's DPDK telemetry commands, beside DPDK's own (/ethdev/stats, /ethdev/xstats, ...):
//   /sluice/stats    counters summed over workers (flat dict)
//   /sluice/drops    every drop reason, zeros included (flat dict)
//   /sluice/core,N   the counters of worker N
//   /sluice/info     port, address, MAC, workers, queues, offloads
// Read them with `dpdk-telemetry.py -f <file-prefix>`.
#pragma once

#include <map>
#include <string>

#include "engine/stats.hpp"

namespace sluice::engine {

// Registers the commands (once per process) and publishes `view` and `info` to them; pass
// nullptr at shutdown, before the counters go away.
void telemetry_publish(const StatsView* view, const std::map<std::string, std::string>* info);

}  // namespace sluice::engine
