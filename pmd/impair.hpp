// The fault-injecting stage: wraps a port's RX and TX bursts and drops, duplicates, corrupts,
// reorders and delays packets with given probabilities, deterministically for a seed (one
// xorshift generator per queue and direction), counting what it did. There is no netem here;
// tests of loss recovery use this instead.
//
//   --impair loss=0.05,reorder=0.02,dup=0.01,corrupt=0.001,delay=2ms,seed=7
//
// applies to both directions; "rx:" or "tx:" before a key limits it to one
// (e.g. rx:loss=0.1,tx:delay=5ms).
#pragma once

#include <cstdint>
#include <string>

#include <rte_mbuf.h>

namespace sluice::pmd {

struct ImpairSpec {
    double loss = 0, reorder = 0, dup = 0, corrupt = 0;
    uint64_t delay_us = 0;
    bool any() const { return loss > 0 || reorder > 0 || dup > 0 || corrupt > 0 || delay_us > 0; }
};

struct ImpairConfig {
    ImpairSpec rx, tx;
    uint64_t seed = 1;
};

// Parses the --impair value; false with `error` set when malformed.
bool parse_impair(const std::string& s, ImpairConfig& out, std::string& error);

#define SLUICE_IMPAIR_COUNTERS(X) \
    X(lost)                       \
    X(duplicated)                 \
    X(corrupted)                  \
    X(reordered)                  \
    X(delayed)                    \
    X(overflow)

struct ImpairStats {
#define SLUICE_X(name) uint64_t name = 0;
    SLUICE_IMPAIR_COUNTERS(SLUICE_X)
#undef SLUICE_X
};

// One direction of one queue. Not thread-safe: owned by the worker that owns the queue.
class Impairment {
  public:
    static constexpr unsigned kHeld = 1024;  // packets in the delay line, at most

    Impairment() = default;
    ~Impairment() { clear(); }
    Impairment(const Impairment&) = delete;
    Impairment& operator=(const Impairment&) = delete;

    // `pool` supplies duplicates; `tsc_hz` converts the delay.
    void init(const ImpairSpec& spec, uint64_t seed, rte_mempool* pool, uint64_t tsc_hz);
    bool active() const { return active_; }

    // Takes `n` packets in `pkts` and returns, in `out` (room for `cap`), what leaves the
    // stage now: survivors, duplicates, and packets whose delay has passed, in the (possibly
    // reordered) order they leave. Dropped packets are freed. Call with n = 0 to release what
    // the delay line holds.
    uint16_t apply(rte_mbuf** pkts, uint16_t n, rte_mbuf** out, uint16_t cap, uint64_t now);

    // Packets still held (delay line and the one kept back for reordering).
    unsigned held() const;
    void clear();  // frees what is held
    const ImpairStats& stats() const { return stats_; }

  private:
    bool chance(double p) {
        if (p <= 0) return false;
        if (p >= 1) return true;
        return next() < uint64_t(p * 18446744073709551616.0);  // p * 2^64, below 2^64
    }
    uint64_t next() {
        state_ ^= state_ << 13;
        state_ ^= state_ >> 7;
        state_ ^= state_ << 17;
        return state_;
    }
    bool hold(rte_mbuf* m, uint64_t due);

    ImpairSpec spec_{};
    bool active_ = false;
    uint64_t state_ = 1;
    uint64_t delay_cycles_ = 0;
    rte_mempool* pool_ = nullptr;
    ImpairStats stats_{};
    rte_mbuf* kept_ = nullptr;  // held back to leave after the next packet (reordering)
    // Delay line: a FIFO of (packet, due time); all share one delay, so it stays sorted.
    rte_mbuf* line_[kHeld] = {};
    uint64_t due_[kHeld] = {};
    unsigned head_ = 0, count_ = 0;
};

}  // namespace sluice::pmd
