// The broker's inter-core bus: one single-producer single-consumer rte_ring per ordered pair of
// worker cores, carrying messages as mbufs. A message is a small control mbuf (BusMsg at its
// data start, then the name it concerns), chained, for a published message, to a reference to
// the payload (indirect mbufs over the publisher's received bytes: the payload itself is never
// copied). Each pair's ring is FIFO, so what one core sends another arrives in order.
//
// The rings are created by the receiving core in Broker::start (bus_attach), and the workers
// wait there for each other (a bounded barrier) before serving.
#pragma once

#include <atomic>
#include <cstdint>

#include <rte_mbuf.h>
#include <rte_ring.h>

namespace sluice::apps::broker {

enum class BusType : uint8_t {
    publish,    // deliver the chained payload to this core's subscribers of `name`
    directory,  // the sender's core gained (delta > 0) or lost subscribers of `name`
    ack,        // a directory update was applied (token: the client slot that waits for it)
};

struct BusMsg {
    BusType type;
    uint8_t kind;  // Kind: channel, pattern, shard
    int16_t delta;
    uint16_t src;       // sending core
    uint16_t name_len;  // the name follows this struct in the mbuf
    uint32_t token;     // directory/ack: the waiting client (slot) on the sender's core
    uint32_t gen;       // directory/ack: the client's generation (a reused slot ignores stale acks)
    uint32_t payload_len;  // publish: bytes of the chained payload, CRLF excluded
    // directory: the sender's number for this subscription change (0: not tracked, the client
    // is gone); ack: the number of the change acknowledged. Each core numbers its changes in
    // order and the rings are FIFO, so a core's acks arrive in that order.
    uint32_t seq;
};

struct Bus {
    static constexpr unsigned kMaxCores = 64;
    static constexpr unsigned kRingSize = 16384;
    unsigned n_cores = 1;
    std::atomic<rte_ring*> ring[kMaxCores][kMaxCores] = {};  // [from][to]
    std::atomic<unsigned> ready{0};
    std::atomic<bool> failed{false};
    const void* counters[kMaxCores] = {};  // each worker's BrokerCounters (telemetry)
    // The pub/sub output limits, shared so that CONFIG SET on one core applies on all (main
    // sets them from the command line).
    std::atomic<uint64_t> out_hard{0}, out_soft{0};
    std::atomic<uint32_t> out_soft_s{0};
};

}  // namespace sluice::apps::broker
