#include "pmd/wire.hpp"

#include <cerrno>
#include <cstdio>

#include <rte_eth_ring.h>

namespace sluice::pmd {

int Wire::open(const std::string& name, const PortConfig& cfg, rte_mempool* pool,
               unsigned ring_size) {
    nq_ = RTE_MAX(uint16_t(1), RTE_MIN(RTE_MAX(cfg.rx_queues, cfg.tx_queues), kMaxQueues));
    for (uint16_t q = 0; q < nq_; ++q) {
        const std::string ab = name + "_ab" + std::to_string(q);
        const std::string ba = name + "_ba" + std::to_string(q);
        // One producer (the sending port's TX queue owner), one consumer (the receiver's).
        a_to_b_[q] = rte_ring_create(ab.c_str(), ring_size, int(rte_socket_id()),
                                     RING_F_SP_ENQ | RING_F_SC_DEQ);
        b_to_a_[q] = rte_ring_create(ba.c_str(), ring_size, int(rte_socket_id()),
                                     RING_F_SP_ENQ | RING_F_SC_DEQ);
        if (!a_to_b_[q] || !b_to_a_[q]) {
            fprintf(stderr, "sluice: wire %s: cannot create rings\n", name.c_str());
            close();
            return -ENOMEM;
        }
    }
    const int pa =
        rte_eth_from_rings((name + "_a").c_str(), b_to_a_, nq_, a_to_b_, nq_, rte_socket_id());
    const int pb =
        rte_eth_from_rings((name + "_b").c_str(), a_to_b_, nq_, b_to_a_, nq_, rte_socket_id());
    if (pa < 0 || pb < 0) {
        fprintf(stderr, "sluice: wire %s: rte_eth_from_rings failed\n", name.c_str());
        if (pa >= 0) rte_eth_dev_close(uint16_t(pa));
        if (pb >= 0) rte_eth_dev_close(uint16_t(pb));
        close();
        return -ENODEV;
    }
    PortConfig c = cfg;
    c.rx_queues = c.tx_queues = nq_;
    c.queues_without_rss = true;  // queue q of one end feeds queue q of the other
    int rc = a_.open_id(uint16_t(pa), c, pool);
    if (rc == 0) rc = b_.open_id(uint16_t(pb), c, pool);
    if (rc != 0) {
        if (!a_.is_open()) rte_eth_dev_close(uint16_t(pa));
        if (!b_.is_open()) rte_eth_dev_close(uint16_t(pb));
        close();
    }
    return rc;
}

void Wire::close() {
    a_.close();
    b_.close();
    for (uint16_t q = 0; q < kMaxQueues; ++q) {
        // Whatever is still in flight on the wire goes back to its pool.
        for (rte_ring** r : {&a_to_b_[q], &b_to_a_[q]}) {
            if (!*r) continue;
            void* obj;
            while (rte_ring_sc_dequeue(*r, &obj) == 0)
                rte_pktmbuf_free(static_cast<rte_mbuf*>(obj));
            rte_ring_free(*r);
            *r = nullptr;
        }
    }
    nq_ = 0;
}

}  // namespace sluice::pmd
