#include "pmd/impair.hpp"

#include <cstdlib>
#include <cstring>

namespace sluice::pmd {

static bool parse_prob(const std::string& v, double& out) {
    char* end = nullptr;
    const double d = strtod(v.c_str(), &end);
    if (v.empty() || *end != '\0' || !(d >= 0) || d > 1) return false;
    out = d;
    return true;
}

static bool parse_delay(const std::string& v, uint64_t& us) {
    char* end = nullptr;
    const double d = strtod(v.c_str(), &end);
    if (v.empty() || !(d >= 0) || d > 10e6) return false;
    const std::string unit = end;
    if (unit == "us")
        us = uint64_t(d);
    else if (unit == "ms" || unit.empty())
        us = uint64_t(d * 1000);
    else if (unit == "s")
        us = uint64_t(d * 1e6);
    else
        return false;
    return true;
}

bool parse_impair(const std::string& s, ImpairConfig& out, std::string& error) {
    out = ImpairConfig{};
    if (s.empty()) {
        error = "empty impairment list";
        return false;
    }
    size_t pos = 0;
    while (pos <= s.size()) {
        const size_t comma = s.find(',', pos);
        std::string item =
            s.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
        pos = comma == std::string::npos ? s.size() + 1 : comma + 1;
        bool rx = true, tx = true;
        if (item.rfind("rx:", 0) == 0) {
            tx = false;
            item = item.substr(3);
        } else if (item.rfind("tx:", 0) == 0) {
            rx = false;
            item = item.substr(3);
        }
        const size_t eq = item.find('=');
        if (eq == std::string::npos) {
            error = "expected key=value, got '" + item + "'";
            return false;
        }
        const std::string key = item.substr(0, eq), val = item.substr(eq + 1);
        if (key == "seed") {
            char* end = nullptr;
            out.seed = strtoull(val.c_str(), &end, 10);
            if (val.empty() || *end != '\0') {
                error = "seed needs an integer, got '" + val + "'";
                return false;
            }
            continue;
        }
        double p = 0;
        uint64_t us = 0;
        bool ok = true;
        for (ImpairSpec* spec : {rx ? &out.rx : nullptr, tx ? &out.tx : nullptr}) {
            if (!spec) continue;
            if (key == "loss")
                ok = parse_prob(val, p) && ((spec->loss = p), true);
            else if (key == "reorder")
                ok = parse_prob(val, p) && ((spec->reorder = p), true);
            else if (key == "dup")
                ok = parse_prob(val, p) && ((spec->dup = p), true);
            else if (key == "corrupt")
                ok = parse_prob(val, p) && ((spec->corrupt = p), true);
            else if (key == "delay")
                ok = parse_delay(val, us) && ((spec->delay_us = us), true);
            else {
                error =
                    "unknown impairment '" + key + "' (loss, reorder, dup, corrupt, delay, seed)";
                return false;
            }
            if (!ok) {
                error = "bad value '" + val + "' for " + key +
                        (key == "delay" ? " (e.g. 2ms, 500us)" : " (a probability 0..1)");
                return false;
            }
        }
    }
    return true;
}

void Impairment::init(const ImpairSpec& spec, uint64_t seed, rte_mempool* pool, uint64_t tsc_hz) {
    clear();
    spec_ = spec;
    active_ = spec.any();
    // splitmix64 of the seed: never 0, and distinct seeds give unrelated streams.
    uint64_t z = seed + 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    state_ = (z ^ (z >> 31)) | 1;
    pool_ = pool;
    delay_cycles_ = tsc_hz / 1000000 * spec.delay_us;
    stats_ = {};
}

bool Impairment::hold(rte_mbuf* m, uint64_t due) {
    if (count_ == kHeld) {
        stats_.overflow++;
        rte_pktmbuf_free(m);
        return false;
    }
    const unsigned tail = (head_ + count_) % kHeld;
    line_[tail] = m;
    due_[tail] = due;
    count_++;
    return true;
}

uint16_t Impairment::apply(rte_mbuf** pkts, uint16_t n, rte_mbuf** out, uint16_t cap,
                           uint64_t now) {
    uint16_t k = 0;
    rte_mbuf* const kept_before = kept_;
    auto emit = [&](rte_mbuf* m) {
        if (delay_cycles_) {
            stats_.delayed++;
            hold(m, now + delay_cycles_);
        } else if (k < cap) {
            out[k++] = m;
        } else {
            stats_.overflow++;
            rte_pktmbuf_free(m);
        }
    };
    for (uint16_t i = 0; i < n; ++i) {
        rte_mbuf* m = pkts[i];
        if (chance(spec_.loss)) {
            stats_.lost++;
            rte_pktmbuf_free(m);
            continue;
        }
        if (chance(spec_.corrupt) && m->data_len > 0) {
            // One bit of one byte of the first segment: checksums must catch it.
            const uint32_t at = uint32_t(next() % m->data_len);
            rte_pktmbuf_mtod(m, uint8_t*)[at] ^= uint8_t(1u << (next() % 8));
            // The damage happens on the wire: after the sender's checksums and before the
            // receiver's verdict. So no checksum is computed over the damaged bytes (TX
            // requests dropped: the fields keep what they held, which no longer matches) and
            // no port's RX verdict vouches for them (UNKNOWN: the stack verifies).
            m->ol_flags &= ~(RTE_MBUF_F_RX_IP_CKSUM_MASK | RTE_MBUF_F_RX_L4_CKSUM_MASK |
                             RTE_MBUF_F_TX_IP_CKSUM | RTE_MBUF_F_TX_L4_MASK);
            stats_.corrupted++;
        }
        rte_mbuf* copy = nullptr;
        if (chance(spec_.dup)) {
            copy = rte_pktmbuf_copy(m, pool_, 0, UINT32_MAX);
            if (copy) stats_.duplicated++;
        }
        if (!kept_ && chance(spec_.reorder)) {
            kept_ = m;  // leaves after the next packet
            stats_.reordered++;
        } else {
            emit(m);
            if (kept_) {
                emit(kept_);
                kept_ = nullptr;
            }
        }
        if (copy) emit(copy);
    }
    // A packet kept back leaves after the next one, or at the next call at the latest: never
    // held for want of traffic.
    if (kept_ && kept_ == kept_before) {
        emit(kept_);
        kept_ = nullptr;
    }
    // Release what is due (all share one delay: the line is in due order).
    while (count_ && due_[head_] <= now && k < cap) {
        out[k++] = line_[head_];
        head_ = (head_ + 1) % kHeld;
        count_--;
    }
    return k;
}

unsigned Impairment::held() const {
    return count_ + (kept_ ? 1 : 0);
}

void Impairment::clear() {
    while (count_) {
        rte_pktmbuf_free(line_[head_]);
        head_ = (head_ + 1) % kHeld;
        count_--;
    }
    head_ = 0;
    if (kept_) rte_pktmbuf_free(kept_);
    kept_ = nullptr;
}

}  // namespace sluice::pmd
