// ARP cache (RFC 826) with expiry, and the bounded queue of packets waiting for a next hop
// to resolve (RFC 1122 2.3.2.2: "at least one (the latest) packet ... SHOULD be saved").
// Fixed-size, open-addressed, owned by one core: no allocation, no locks.
#pragma once

#include <array>
#include <cstdint>

#include <rte_byteorder.h>
#include <rte_ether.h>
#include <rte_mbuf.h>

namespace sluice::proto {

class ArpCache {
  public:
    static constexpr unsigned kSlots = 256;  // power of two
    static constexpr unsigned kMaxProbe = 16;

    // Returns the MAC for `ip` if a live entry exists.
    const rte_ether_addr* lookup(rte_be32_t ip, uint64_t now) const {
        unsigned h = hash(ip);
        for (unsigned i = 0; i < kMaxProbe; ++i) {
            const Entry& e = slots_[(h + i) & (kSlots - 1)];
            if (e.ip == ip && e.expires > now) return &e.mac;
            if (e.ip == 0) return nullptr;
        }
        return nullptr;
    }

    // RFC 826 "merge": update an existing entry; insert only when `create` (the packet was
    // addressed to us). Returns true if the entry exists afterwards.
    bool update(rte_be32_t ip, const rte_ether_addr& mac, uint64_t expires, bool create) {
        unsigned h = hash(ip);
        Entry* victim = nullptr;
        for (unsigned i = 0; i < kMaxProbe; ++i) {
            Entry& e = slots_[(h + i) & (kSlots - 1)];
            if (e.ip == ip) {
                e.mac = mac;
                e.expires = expires;
                return true;
            }
            if (e.ip == 0) {
                if (!victim) victim = &e;
                break;
            }
            if (!victim || e.expires < victim->expires) victim = &e;  // evict the oldest
        }
        if (!create || !victim) return false;
        victim->ip = ip;
        victim->mac = mac;
        victim->expires = expires;
        return true;
    }

    unsigned size(uint64_t now) const {
        unsigned n = 0;
        for (const Entry& e : slots_) n += (e.ip != 0 && e.expires > now);
        return n;
    }

  private:
    struct Entry {
        rte_be32_t ip = 0;
        rte_ether_addr mac{};
        uint64_t expires = 0;
    };
    static unsigned hash(rte_be32_t ip) { return (ip * 2654435761u) >> 24; }
    std::array<Entry, kSlots> slots_{};
};

// Packets waiting for ARP resolution, per next hop. Bounded in both dimensions.
class ArpPending {
  public:
    static constexpr unsigned kHops = 16;
    static constexpr unsigned kPerHop = 8;

    struct Hop {
        rte_be32_t ip = 0;
        uint8_t count = 0;
        uint8_t tries = 0;
        uint64_t next_try = 0;
        rte_mbuf* pkts[kPerHop] = {};
    };

    // Finds or creates the queue for `ip`; nullptr when all queues are busy.
    Hop* get(rte_be32_t ip, bool* created) {
        Hop* free_hop = nullptr;
        for (Hop& h : hops_) {
            if (h.ip == ip) {
                *created = false;
                return &h;
            }
            if (h.ip == 0 && !free_hop) free_hop = &h;
        }
        if (free_hop) {
            free_hop->ip = ip;
            free_hop->count = 0;
            free_hop->tries = 0;
            *created = true;
        }
        return free_hop;
    }
    Hop* find(rte_be32_t ip) {
        for (Hop& h : hops_)
            if (h.ip == ip) return &h;
        return nullptr;
    }
    Hop* begin() { return hops_.data(); }
    Hop* end() { return hops_.data() + hops_.size(); }
    static void release(Hop& h) {
        h.ip = 0;
        h.count = 0;
    }

  private:
    std::array<Hop, kHops> hops_{};
};

}  // namespace sluice::proto
