// Congestion control behind one small interface: NewReno (RFC 5681, RFC 6582) and CUBIC
// (RFC 9438, the default). The algorithm is a per-connection tag and the calls are switch
// dispatched: no virtual call per ACK. Windows are in bytes; times in microseconds.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace sluice::proto {

enum class TcpCcAlgo : uint8_t { newreno, cubic };

struct TcpCc {
    TcpCcAlgo algo = TcpCcAlgo::cubic;
    uint32_t mss = 1460;
    uint32_t cwnd = 0;
    uint32_t ssthresh = 0;
    uint32_t ca_acc = 0;  // congestion avoidance byte accumulator (RFC 5681 3.1, eq. 3 note)
    // CUBIC state (RFC 9438 4), in segments and seconds.
    double w_max = 0, w_last_max = 0, k = 0, w_est = 0;
    uint64_t epoch_us = 0;  // start of the current congestion-avoidance epoch; 0: not started

    static constexpr double kBeta = 0.7;  // RFC 9438 4.6
    static constexpr double kC = 0.4;     // RFC 9438 5

    // RFC 5681 3.1 / RFC 6928: initial window of 10 segments (IW10) but at least 2.
    void init(TcpCcAlgo a, uint32_t smss) {
        algo = a;
        mss = smss;
        cwnd = std::min(10 * smss, std::max(2 * smss, 14600u));
        ssthresh = 0x7fffffff;  // RFC 5681 3.1: arbitrarily high
        ca_acc = 0;
        w_max = w_last_max = k = w_est = 0;
        epoch_us = 0;
    }

    // `acked` new bytes acknowledged outside recovery. `rtt_us`: smoothed RTT.
    void on_ack(uint32_t acked, uint64_t now_us, uint32_t rtt_us) {
        if (cwnd < ssthresh) {
            // Slow start (RFC 5681 3.1 eq. 2, with RFC 3465's L = 2 SMSS limit).
            cwnd += std::min(acked, 2 * mss);
            return;
        }
        if (algo == TcpCcAlgo::newreno) {
            // Congestion avoidance: about one SMSS per RTT (RFC 5681 3.1, eq. 3 note).
            ca_acc += acked;
            if (ca_acc >= cwnd) {
                ca_acc -= cwnd;
                cwnd += mss;
            }
            return;
        }
        cubic_ack(acked, now_us, rtt_us);
    }

    // A loss detected by duplicate ACKs or SACK (RFC 5681 3.2 step 2, RFC 9438 4.6), or an
    // ECN echo (RFC 3168 6.1.2): the window shrinks by the algorithm's factor.
    void on_congestion(uint32_t flight) {
        if (algo == TcpCcAlgo::newreno) {
            ssthresh = std::max(flight / 2, 2 * mss);  // RFC 5681 eq. 4
        } else {
            const double w = double(cwnd) / mss;
            // Fast convergence (RFC 9438 4.7).
            w_max = (w < w_last_max) ? w * (1.0 + kBeta) / 2.0 : w;
            w_last_max = w;
            ssthresh = std::max(uint32_t(double(cwnd) * kBeta), 2 * mss);
            epoch_us = 0;
        }
        cwnd = ssthresh;
        ca_acc = 0;
    }

    // Retransmission timeout (RFC 5681 3.1 eq. 4 and "LW = 1 SMSS"; RFC 9438 4.8).
    void on_rto(uint32_t flight) {
        if (algo == TcpCcAlgo::cubic) {
            const double w = double(cwnd) / mss;
            w_max = w;
            w_last_max = w;
            ssthresh = std::max(uint32_t(double(cwnd) * kBeta), 2 * mss);
            epoch_us = 0;
        } else {
            ssthresh = std::max(flight / 2, 2 * mss);
        }
        cwnd = mss;
        ca_acc = 0;
    }

  private:
    void cubic_ack(uint32_t acked, uint64_t now_us, uint32_t rtt_us) {
        const double cw = double(cwnd) / mss;
        if (epoch_us == 0) {
            epoch_us = now_us ? now_us : 1;
            if (w_max <= cw) {
                w_max = cw;
                k = 0;
            } else {
                k = std::cbrt((w_max - cw) / kC);  // RFC 9438 eq. 2, with cwnd at epoch start
            }
            w_est = cw;
        }
        const double t = double(now_us - epoch_us + rtt_us) / 1e6;
        const double target_w = kC * (t - k) * (t - k) * (t - k) + w_max;  // eq. 1
        // Reno-friendly estimate (RFC 9438 4.3): alpha = 3 (1 - beta) / (1 + beta).
        constexpr double kAlpha = 3.0 * (1.0 - kBeta) / (1.0 + kBeta);
        w_est += kAlpha * double(acked) / double(cwnd);
        double target = target_w;
        if (target < cw) target = cw;
        if (target > 1.5 * cw) target = 1.5 * cw;  // RFC 9438 4.2
        double next;
        if (target_w < w_est) {
            next = w_est;  // Reno-friendly region
        } else {
            next = cw + (target - cw) / cw * (double(acked) / mss);  // concave / convex
        }
        if (next > cw) cwnd = uint32_t(next * mss);
    }
};

}  // namespace sluice::proto
