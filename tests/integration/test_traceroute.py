#!/usr/bin/env python3
"""UDP port filtering (--udp-ports 7,9000-9100): open ports echo, closed ports answer ICMP
port unreachable, so `traceroute -U` to a closed port ends at the reflector."""

import re

import sluice_harness as h


def hops(output: str) -> list[tuple[int, str]]:
    """(hop number, first field after it) for each hop line of traceroute's output."""
    result = []
    for line in output.splitlines():
        m = re.match(r"^\s*(\d+)\s+(\S+)", line)
        if m:
            result.append((int(m.group(1)), m.group(2)))
    return result


class TracerouteTest(h.ReflectorTestCase):
    udp_ports = "7,9000-9100"

    def test_traceroute_ends_at_reflector(self):
        before = self.env.stats()
        r = self.env.exec(["traceroute", "-U", "-p", "33434", "-n", "-w", "1", "-q", "1",
                           "-m", "3", h.REFLECTOR_IP], timeout=30, check=False)
        output = r.stdout + r.stderr
        self.assertEqual(r.returncode, 0, output)
        found = hops(r.stdout)
        self.assertTrue(found, output)
        self.assertEqual(found[-1][1], h.REFLECTOR_IP, output)
        # Directly connected: the first probe (TTL 1) already reaches it.
        self.assertEqual(found[-1][0], 1, output)
        after = self.env.stats()
        self.assertGreater(after["icmp_unreach_out"] - before["icmp_unreach_out"], 0)

    def test_open_ports_echo(self):
        for port in (7, 9000, 9050, 9100):
            with self.subTest(port=port):
                self.assertEqual(self.env.udp_probe(port), {"result": "reply", "identical": True})

    def test_closed_ports_refused(self):
        for port in (8, 8999, 9101, 33434):
            with self.subTest(port=port):
                before_stats, before_drops = self.env.stats(), self.env.drops()
                self.assertEqual(self.env.udp_probe(port), {"result": "refused"})
                after_stats, after_drops = self.env.stats(), self.env.drops()
                self.assertCountersDelta(before_stats, after_stats, {"icmp_unreach_out": 1})
                self.assertCountersDelta(before_drops, after_drops, {"udp_port_closed": 1})


if __name__ == "__main__":
    h.main()
