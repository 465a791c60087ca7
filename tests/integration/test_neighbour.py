#!/usr/bin/env python3
"""ARP: the kernel resolves 198.18.0.2 to the reflector's MAC; the reflector announces itself
with a gratuitous ARP when it starts."""

import json
import os
import select
import subprocess
import sys
import unittest

import sluice_harness as h


class NeighbourTest(h.ReflectorTestCase):

    def neighbour(self) -> dict | None:
        out = self.env.ip("-j", "neigh", "show", h.REFLECTOR_IP, "dev", self.env.kernel_if).stdout
        entries = json.loads(out or "[]")
        return entries[0] if entries else None

    def test_kernel_learns_reflector_mac(self):
        mac = self.env.reflector_mac()
        self.env.ip("neigh", "flush", "dev", self.env.kernel_if, check=False)
        before, drops_before = self.env.stats(), self.env.drops()
        r = self.env.ping("-c", "1", "-W", "2", "-w", "5")
        drops = self.env.drops()
        moved = {k: v - drops_before[k] for k, v in drops.items() if v != drops_before[k]}
        self.assertEqual(r.returncode, 0, f"{r.stdout}{r.stderr}\ndrops meanwhile: {moved}\n"
                                          f"neighbour: {self.neighbour()}")
        entry = self.neighbour()
        self.assertIsNotNone(entry, "no neighbour entry for the reflector")
        self.assertEqual(entry.get("lladdr", "").lower(), mac, entry)
        self.assertNotIn("FAILED", entry.get("state", []), entry)
        after = self.env.stats()
        self.assertGreaterEqual(after["arp_requests_in"] - before["arp_requests_in"], 1)
        self.assertGreaterEqual(after["arp_replies_out"] - before["arp_replies_out"], 1)

    def test_reflector_mac(self):
        mac = self.env.reflector_mac()
        if h.CONFIG.mode == "af_packet":
            # The port takes veth0's address, and the kernel talks to it from veth1.
            self.assertEqual(mac, self.env.link_mac(self.env.dpdk_if))
        else:
            # net_tap gives the kernel's TAP interface the port's own address, so the engine
            # answers to a distinct, locally administered one: the kernel must see a peer
            # with an address other than its own.
            self.assertNotEqual(mac, self.env.link_mac(self.env.kernel_if))
            self.assertTrue(int(mac.split(":")[0], 16) & 0x02, mac)


class GratuitousArpTest(unittest.TestCase):
    """Captures the announcement on the kernel side, so the capture must be listening before
    the reflector starts: only possible with a veth pair (net_tap creates its interface at
    start)."""

    def test_gratuitous_arp_at_start(self):
        if h.CONFIG.mode != "af_packet":
            self.skipTest("with net_tap the interface only exists once the reflector runs")
        env = h.ReflectorEnv(h.CONFIG.mode, h.CONFIG.reflector)
        capture = None
        try:
            env.create_netns()
            capture = subprocess.Popen(
                ["ip", "netns", "exec", env.name, sys.executable,
                 os.path.join(h.HERE, "ns_tools.py"), "capture-garp", "--iface", env.kernel_if,
                 "--ip", h.REFLECTOR_IP, "--timeout", "30"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            ready, _, _ = select.select([capture.stderr], [], [], 15)
            self.assertTrue(ready, "ARP capture did not start")
            self.assertEqual(capture.stderr.readline().strip(), "listening")
            env.start_reflector()
            out, err = capture.communicate(timeout=40)
            result = json.loads(out.strip().splitlines()[-1])
            self.assertTrue(result.get("found"), f"no gratuitous ARP seen: {result} {err}")
            mac = env.reflector_mac()
            self.assertEqual(result["sha"], mac, result)
            self.assertEqual(result["eth_src"], mac, result)
            self.assertEqual(result["eth_dst"], "ff:ff:ff:ff:ff:ff", result)
        finally:
            if capture is not None:
                if capture.poll() is None:
                    capture.kill()
                capture.communicate(timeout=5)  # reaps it and closes the pipes
            env.stop()


if __name__ == "__main__":
    h.main()
