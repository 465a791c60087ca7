// The in-memory wire: two ethdev ports connected back to back through rte_rings
// (rte_eth_from_rings, the net_ring driver). What one port transmits on queue q the other
// receives on queue q. For tests and benchmarks: no kernel, no copies.
#pragma once

#include <cstdint>
#include <string>

#include <rte_ring.h>

#include "pmd/port.hpp"

namespace sluice::pmd {

class Wire {
  public:
    static constexpr uint16_t kMaxQueues = 8;

    Wire() = default;
    ~Wire() { close(); }
    Wire(const Wire&) = delete;
    Wire& operator=(const Wire&) = delete;

    // Creates the rings and both ports (named "<name>_a" and "<name>_b"), and opens them
    // with `cfg` (queues capped at kMaxQueues). Returns 0 or a negative errno.
    int open(const std::string& name, const PortConfig& cfg, rte_mempool* pool,
             unsigned ring_size = 1024);
    void close();

    Port& a() { return a_; }
    Port& b() { return b_; }

  private:
    Port a_, b_;
    uint16_t nq_ = 0;
    rte_ring* a_to_b_[kMaxQueues] = {};
    rte_ring* b_to_a_[kMaxQueues] = {};
};

}  // namespace sluice::pmd
