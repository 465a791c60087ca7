#!/usr/bin/env python3
"""sluice-udpgen against the reflector: the demo's traffic path (its command line: test_cli.py)."""

import re
import unittest

import sluice_harness as h


def udpgen_or_skip(test: unittest.TestCase) -> str:
    if not h.CONFIG.udpgen:
        test.skipTest("sluice-udpgen not given (--udpgen)")
    return h.CONFIG.udpgen


def summary(output: str) -> dict:
    m = re.search(r"sent (\d+), received (\d+), identical (\d+), mismatched (\d+), lost (\d+)",
                  output)
    if not m:
        raise AssertionError(f"no summary in udpgen output:\n{output}")
    return dict(zip(("sent", "received", "identical", "mismatched", "lost"),
                    map(int, m.groups())))


class UdpgenEchoTest(h.ReflectorTestCase):
    udp_ports = "9000"

    def test_mixed_sizes(self):
        udpgen = udpgen_or_skip(self)
        r = self.env.exec([udpgen, "--dst", f"{h.REFLECTOR_IP}:9000", "--count", "2000",
                           "--sizes", "8-8000", "--window", "32", "--seed", "3",
                           "--duration", "30"], timeout=60, check=False)
        output = r.stdout + r.stderr
        self.assertEqual(r.returncode, 0, output)
        self.assertEqual(summary(output), {"sent": 2000, "received": 2000, "identical": 2000,
                                           "mismatched": 0, "lost": 0}, output)

    def test_closed_port(self):
        udpgen = udpgen_or_skip(self)
        r = self.env.exec([udpgen, "--dst", f"{h.REFLECTOR_IP}:9001", "--count", "10"],
                          timeout=30, check=False)
        self.assertEqual(r.returncode, 3, r.stdout + r.stderr)
        self.assertIn("port unreachable", r.stderr)


if __name__ == "__main__":
    h.main()
