#!/usr/bin/env python3
"""UDP echo: 1000 datagrams of seeded random sizes (1..8000 bytes; above 1472 they travel as
IPv4 fragments) must each come back byte-identical, from the port they were sent to."""

import sluice_harness as h


class UdpEchoTest(h.ReflectorTestCase):

    def check_echo(self, result: dict, count: int) -> None:
        summary = {k: result[k] for k in ("identical", "mismatched", "missing",
                                          "unexpected_source")}
        self.assertEqual(summary, {"identical": count, "mismatched": 0, "missing": 0,
                                   "unexpected_source": 0}, result)

    def test_random_sizes(self):
        before = self.env.stats()
        result = self.env.udp_echo(count=1000, min_size=1, max_size=8000, seed=20240601,
                                   window=32, timeout=1.0, retries=3, deadline=45)
        print(f"udp echo: {result['identical']} identical, {result['retransmits']} "
              f"retransmits, {result['bytes']} payload bytes in {result['elapsed_s']} s")
        self.check_echo(result, 1000)
        after = self.env.stats()
        self.assertGreaterEqual(after["udp_delivered"] - before["udp_delivered"], 1000)
        self.assertGreater(after["ipv4_frags_out"] - before["ipv4_frags_out"], 0)
        if not self.env.kernel_defrags:  # see ReflectorEnv.kernel_defrags
            self.assertGreater(after["ipv4_reassembled"] - before["ipv4_reassembled"], 0)

    def test_empty_datagram(self):
        # A zero-length payload is a valid datagram (UDP length 8) and must be echoed too.
        result = self.env.udp_echo(count=1, min_size=0, max_size=0, seed=1, deadline=10)
        self.check_echo(result, 1)

    def test_mtu_boundary(self):
        # 1472 bytes is the largest payload in one 1500-byte IP packet; 1473 needs 2 fragments.
        for size in (1471, 1472, 1473, 1480, 2952, 2953):
            with self.subTest(size=size):
                result = self.env.udp_echo(count=3, min_size=size, max_size=size, seed=size,
                                           deadline=10)
                self.check_echo(result, 3)


if __name__ == "__main__":
    h.main()
