#!/usr/bin/env python3
"""Sluice's TCP under injected faults: a Linux client sends a seeded byte stream to the
sluice-echo server (reading the echo at the same time) while the engine's fault-injecting
stage (--impair, both directions, deterministic for its seed) loses 1 %, 5 % or 10 % of the
packets, reorders 2 % and duplicates 1 %. What comes back must be byte-identical (SHA-256, and
the offset of the first differing byte), then EOF; the Sluice process must exit 0 on SIGINT
without leaking mbufs (AppTestCase.tearDown). Every transfer is bounded: --stall seconds
without progress or an overall deadline fail it instead of hanging.

Sizes: the issue asks for 50 MB per transfer; on the 2-core CI box (30 min for the whole
integration suite) the default is 5 MB. SLUICE_FULL_TCP=1 selects the issue's 50 MB (with
`meson test --timeout-multiplier 4`), SLUICE_TCP_IMPAIR_MB=N any size.
(Sluice-to-Sluice over the in-memory wire is tested elsewhere.)
"""

import os

import sluice_harness as h

FULL = os.environ.get("SLUICE_FULL_TCP") == "1"
IMPAIR_MB = float(os.environ.get("SLUICE_TCP_IMPAIR_MB", "50" if FULL else "5"))
ECHO_PORT = 7
# A stall fails the test only past the kernel's largest retransmission timeout (TCP_RTO_MAX,
# 120 s) with some slack: below it, a correct peer can still be waiting out a backed-off timer.
# What stalls at 10 % loss each way (seen with pcaps and TCP_INFO, Dec 2026): the Linux client
# is limited by Sluice's receive window (out-of-order data and the echo's unsent backlog fill
# it), so it has no new data whose SACKs would reveal a lost retransmission; only its RTO
# recovers the hole, backing off each time the retransmission or its ACK is lost (p ~ 0.19):
# gaps of 1.8, 8.7, 9.7, 19.2, 30.7 s for one segment, the next would have been ~61 s. Past
# 130 s a peer has stopped retransmitting: a real bug. SLUICE_TCP_IMPAIR_STALL overrides it.
STALL_S = float(os.environ.get("SLUICE_TCP_IMPAIR_STALL", "130"))


class ImpairedEchoTest(h.AppTestCase):

    def transfer(self, loss: float, seed: int) -> None:
        size = int(IMPAIR_MB * 1_000_000)
        spec = f"loss={loss},reorder=0.02,dup=0.01,seed={seed}"
        env = self.start_server("--impair", spec)
        # Generous for the slowest case (10 % loss each way: 5 MB takes 20-60 s, most of it
        # retransmission timeouts), with room for two of the longest legitimate stalls.
        deadline = 2 * STALL_S + 30.0 + 20.0 * IMPAIR_MB
        r = env.tcp_tool("bulk", "--dst", h.REFLECTOR_IP, "--port", str(ECHO_PORT), "--bytes",
                         str(size), "--seed", str(seed), "--stall", str(STALL_S),
                         "--deadline", str(deadline), timeout=deadline + 30)
        stats, drops = env.stats(), env.drops()
        tcp = h.wait_tcp_idle(env, timeout=15)
        faults = {k: v for k, v in stats.items() if k.startswith("impair_") and v}
        tcp_summary = tcp and {k: tcp.get(k) for k in (
            "retransmits", "fast_retransmits", "early_retransmits", "lost_retransmits",
            "tlp_probes", "tlp_repairs", "tlp_losses", "rto_expirations", "ooo_segs", "dup_segs",
            "open_conns")}
        print(f"impair {spec}: {size} bytes each way in {r['elapsed_s']} s "
              f"({r.get('mb_per_s')} MB/s); linux retransmits {r['total_retrans']}; "
              f"faults {faults}; sluice tcp {tcp_summary}; longest stall "
              f"{r['longest_stall_s']} s; linux rto backoff up to {r.get('max_backoff')}, "
              f"at the end {r.get('tcp_info')}")
        if r["error"] or (r["bytes_sent"], r["bytes_received"]) != (size, size):
            # Diagnostics: every counter, and the app's exit summary (it prints it on SIGINT).
            print(f"FAILED transfer: {r}\nall tcp counters: {tcp}\n"
                  f"nonzero stats: { {k: v for k, v in stats.items() if v} }\n"
                  f"nonzero drops: { {k: v for k, v in drops.items() if v} }", flush=True)
            env.stop()
            print(f"{env.app_name} exit {env.returncode}; its output:\n"
                  + "\n".join(env.stdout_lines + env.stderr_lines), flush=True)
        self.assertIsNone(r["error"], r)
        self.assertTrue(r["connected"], r)
        self.assertEqual((r["bytes_sent"], r["bytes_received"]), (size, size), r)
        self.assertIsNone(r["first_mismatch"], r)
        self.assertEqual(r["recv_sha256"], r["sent_sha256"], r)
        self.assertTrue(r["eof"], r)
        # The faults really happened, in both directions.
        self.assertGreater(stats.get("impair_rx_lost", 0), 0, stats)
        self.assertGreater(stats.get("impair_tx_lost", 0), 0, stats)
        # Sluice must not build segments larger than the MTU: the IP layer drops them (DF), and
        # only a retransmission timeout recovers (e.g. SACK blocks added to a full-sized
        # segment while out-of-order data is held).
        self.assertEqual(drops.get("ipv4_frag_too_big", 0), 0,
                         f"Sluice dropped its own oversized segments: "
                         f"{ {k: v for k, v in drops.items() if v} }")
        if tcp is not None and "open_conns" in tcp:
            self.assertEqual(tcp["open_conns"], 0, f"connection left open: {tcp}")

    def test_loss_1_percent(self):
        self.transfer(0.01, seed=7)

    def test_loss_5_percent(self):
        self.transfer(0.05, seed=8)

    def test_loss_10_percent(self):
        self.transfer(0.10, seed=9)


if __name__ == "__main__":
    h.main(needs=("echo",))
