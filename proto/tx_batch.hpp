// Outgoing packets of one RX burst, handed to the port's TX stage in one go. Every mbuf in it
// carries l2_len/l3_len and the checksum requests of DPDK's TX offload contract
// (RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IP_CKSUM, optionally RTE_MBUF_F_TX_UDP_CKSUM with the
// pseudo-header sum in the UDP checksum field); pmd/ finishes them in hardware or software.
#pragma once

#include <cstdint>

#include <rte_mbuf.h>

namespace sluice::proto {

class TxBatch {
  public:
    static constexpr uint16_t kCapacity = 512;

    // False when full: the caller frees the mbuf and counts Drop::tx_full.
    bool push(rte_mbuf* m) {
        if (n_ == kCapacity) return false;
        pkts_[n_++] = m;
        return true;
    }
    rte_mbuf** data() { return pkts_; }
    uint16_t size() const { return n_; }
    bool empty() const { return n_ == 0; }
    uint16_t room() const { return kCapacity - n_; }
    void clear() { n_ = 0; }
    // Keeps the first `n` (after a stage rewrote data() in place).
    void resize(uint16_t n) { n_ = n; }
    // Drops everything not sent (used by tests and at shutdown).
    void free_all() {
        rte_pktmbuf_free_bulk(pkts_, n_);
        n_ = 0;
    }

  private:
    rte_mbuf* pkts_[kCapacity];
    uint16_t n_ = 0;
};

}  // namespace sluice::proto
