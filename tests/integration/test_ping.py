#!/usr/bin/env python3
"""ICMP echo through the reflector: small pings, and 4000-byte pings that travel as IPv4
fragments both ways (the reflector reassembles the request and fragments the reply)."""

import re

import sluice_harness as h


def ping_counts(output: str) -> tuple[int, int]:
    m = re.search(r"(\d+) packets transmitted, (\d+) received", output)
    if not m:
        raise AssertionError(f"unexpected ping output:\n{output}")
    return int(m.group(1)), int(m.group(2))


class PingTest(h.ReflectorTestCase):

    def check_ping(self, *size_args: str) -> None:
        # -w bounds the whole run; -W bounds the wait for each reply.
        r = self.env.ping("-c", "3", "-W", "2", "-i", "0.2", "-w", "10", *size_args)
        output = r.stdout + r.stderr
        self.assertEqual(ping_counts(output), (3, 3), output)
        self.assertNotIn("wrong data", output)  # ping compares the echoed payload
        self.assertNotIn("DUP!", output)
        self.assertEqual(r.returncode, 0, output)

    def test_small(self):
        before = self.env.stats()
        self.check_ping()
        after = self.env.stats()
        self.assertCountersDelta(before, after, {"icmp_echo_in": 3})
        self.assertGreaterEqual(after["icmp_echo_out"] - before["icmp_echo_out"], 3)

    def test_fragmented(self):
        # 4000 bytes of payload + 8 of ICMP header: 3 fragments each way at MTU 1500.
        before = self.env.stats()
        self.check_ping("-s", "4000")
        after = self.env.stats()
        self.assertCountersDelta(before, after, {"icmp_echo_in": 3})
        self.assertCountersDelta(before, after, {"ipv4_frags_out": 9})
        if not self.env.kernel_defrags:  # see ReflectorEnv.kernel_defrags
            self.assertCountersDelta(before, after, {"ipv4_reassembled": 3})
            self.assertGreaterEqual(after["ipv4_frags_in"] - before["ipv4_frags_in"], 9)


if __name__ == "__main__":
    h.main()
