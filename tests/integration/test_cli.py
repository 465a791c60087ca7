#!/usr/bin/env python3
"""Command lines of sluice-reflector and sluice-udpgen: malformed options exit 2 with a message
on stderr. Everything runs in an empty namespace of its own (only `lo`), so that a binary that
wrongly accepted its arguments could reach no real interface or network; --duration and the
timeouts bound it anyway."""

import os
import re
import select
import signal
import subprocess
import time
import unittest

import sluice_harness as h


class CliTestCase(unittest.TestCase):
    env: h.ReflectorEnv

    @classmethod
    def setUpClass(cls) -> None:
        cls.env = h.ReflectorEnv("tap", h.CONFIG.reflector)
        try:
            cls.env.create_netns()
        except BaseException:
            cls.env.stop()
            raise

    @classmethod
    def tearDownClass(cls) -> None:
        cls.env.stop()


class ReflectorCliTest(CliTestCase):

    def reflector(self, *args: str):
        return self.env.exec([h.CONFIG.reflector, *args], timeout=30, check=False)

    def eal(self) -> list[str]:
        return h.eal_args(self.env.prefix)

    def test_help(self):
        r = self.reflector("--help")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("--udp-ports", r.stdout)

    def test_bad_options_exit_2(self):
        good = ["--port", "net_tap0,iface=sl9", "--ip", "198.18.0.2/24", "--duration", "2",
                "--quiet"]
        cases = {
            "unknown option": good + ["--bogus"],
            "missing --ip": ["--port", "net_tap0,iface=sl9", "--duration", "2"],
            "missing --port": ["--ip", "198.18.0.2/24", "--duration", "2"],
            "no prefix length": ["--port", "net_tap0,iface=sl9", "--ip", "198.18.0.2",
                                 "--duration", "2"],
            "bad address": ["--port", "net_tap0,iface=sl9", "--ip", "198.18.0.256/24",
                            "--duration", "2"],
            "reversed port range": good + ["--udp-ports", "9100-9000"],
            "port out of range": good + ["--udp-ports", "70000"],
            "off-link gateway": good + ["--gateway", "198.19.0.1"],
            "bad duration": ["--port", "net_tap0,iface=sl9", "--ip", "198.18.0.2/24",
                             "--duration", "-1"],
            "value missing": good + ["--udp-ports"],
        }
        for name, args in cases.items():
            with self.subTest(name):
                r = self.reflector(*args, *self.eal())
                self.assertEqual(r.returncode, 2, f"{args}\n{r.stdout}\n{r.stderr}")
                self.assertTrue(r.stderr.strip(), f"{args}: no message on stderr")
                self.assertNotIn("ready", r.stdout)


class ReflectorLifecycleTest(CliTestCase):
    """--duration and SIGTERM end the reflector with a summary and exit 0 (SIGINT is checked
    by every other test's teardown)."""

    def argv(self, *extra: str) -> list[str]:
        return ["ip", "netns", "exec", self.env.name, h.CONFIG.reflector,
                "--port", "net_tap0,iface=sl9", "--ip", f"{h.REFLECTOR_IP}/24", *extra,
                *h.eal_args(self.env.prefix)]

    def test_duration(self):
        r = h.run(self.argv("--duration", "1"), timeout=60, check=False)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("ready", r.stdout)
        self.assertIn("summary", r.stdout)

    def test_sigterm(self):
        proc = subprocess.Popen(self.argv("--duration", "60"), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            ready, _, _ = select.select([proc.stdout], [], [], h.READY_TIMEOUT_S)
            self.assertTrue(ready, "no output from the reflector")
            line = proc.stdout.readline()
            self.assertIn("ready", line)
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=h.STOP_TIMEOUT_S)
            self.assertEqual(proc.returncode, 0, line + out + err)
            self.assertIn("summary", out)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate(timeout=5)


    def test_fatal_signal_leaves_its_name_and_the_stack(self):
        # A fault dies of its signal as before (no core file here: RLIMIT_CORE 0), after
        # writing the signal, the lcore and the stack to stderr.
        import resource
        proc = subprocess.Popen(self.argv("--duration", "60"), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True,
                                preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_CORE,
                                                                      (0, 0)))
        try:
            ready, _, _ = select.select([proc.stdout], [], [], h.READY_TIMEOUT_S)
            self.assertTrue(ready, "no output from the reflector")
            self.assertIn("ready", proc.stdout.readline())
            proc.send_signal(signal.SIGSEGV)
            out, err = proc.communicate(timeout=h.STOP_TIMEOUT_S)
            self.assertEqual(proc.returncode, -signal.SIGSEGV, out + err)
            self.assertRegex(err, r"sluice: fatal signal 11 \(Segmentation fault\) on lcore")
            self.assertIn("rte_dump_stack", err)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate(timeout=5)


class SeededLoopbackTest(CliTestCase):
    """--seed on a loopback port (net_ring0, whose TX feeds its RX) with --mac: the frames
    circulate, each lap validated and reflected, nothing is dropped, and every mbuf is back in
    its pool at exit (the engine warns otherwise)."""

    def test_seeded_frames_circulate(self):
        argv = ["ip", "netns", "exec", self.env.name, h.CONFIG.reflector, "--port", "net_ring0",
                "--ip", f"{h.REFLECTOR_IP}/24", "--mac", "02:53:4c:00:00:02", "--seed", "32,60",
                "--duration", "1", *h.eal_args(self.env.prefix)]
        r = h.run(argv, timeout=60, check=False)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("mac 02:53:4C:00:00:02", r.stdout)
        stack = next(l for l in r.stdout.splitlines() if l.strip().startswith("stack:"))
        fields = dict(f.split("=") for f in stack.split()[1:])
        # 32 frames for a second: many laps, each one received, delivered and sent again.
        self.assertGreater(int(fields["udp_delivered"]), 32 * 100, stack)
        # The only drop: our own gratuitous ARP, which the loopback hands back to us.
        self.assertIn("drops:  total=1 eth_looped=1\n", r.stdout)
        self.assertNotIn("not back in", r.stderr)
        self.assertNotIn("seeded", r.stderr)  # "warning: seeded N of M frames"


class ImpairLoopbackTest(CliTestCase):
    """--impair on the loopback: faults are injected and counted, corrupted frames are dropped
    by a reason, and nothing leaks. (Determinism for a seed is unit-tested in test_impair.cpp:
    here the number of laps depends on timing.)"""

    def run_once(self):
        argv = ["ip", "netns", "exec", self.env.name, h.CONFIG.reflector, "--port", "net_ring0",
                "--ip", f"{h.REFLECTOR_IP}/24", "--seed", "32,60", "--duration", "1",
                "--impair", "rx:corrupt=0.01,rx:dup=0.01,tx:loss=0.001,seed=5",
                *h.eal_args(self.env.prefix)]
        r = h.run(argv, timeout=60, check=False)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        return r

    def test_faults_counted_and_caught(self):
        r = self.run_once()
        lines = {l.split(":")[0].strip(): l for l in r.stdout.splitlines() if ":" in l}
        rx = dict(f.split("=") for f in lines["impair rx"].split(":", 1)[1].split())
        self.assertGreater(int(rx["corrupted"]), 0, r.stdout)
        self.assertGreater(int(rx["duplicated"]), 0, r.stdout)
        drops = dict(f.split("=") for f in lines["drops"].split(":", 1)[1].split())
        self.assertGreater(int(drops["total"]), 1, r.stdout)  # more than the looped ARP
        self.assertNotIn("not back in", r.stderr)


class EchoCliTest(CliTestCase):
    """sluice-echo's command line (issue 4's contract): --help exits 0, bad usage exits 2 with a
    message, --duration ends it with a summary and exit 0."""

    def setUp(self) -> None:
        if not h.CONFIG.echo:
            self.skipTest("no --echo binary")

    def echo(self, *args: str):
        return self.env.exec([h.CONFIG.echo, *args], timeout=30, check=False)

    def test_help(self):
        r = self.echo("--help")
        self.assertEqual(r.returncode, 0, r.stderr)
        for opt in ("--listen", "--discard", "--connect", "--impair"):
            self.assertIn(opt, r.stdout)

    def test_bad_options_exit_2(self):
        good = ["--port", "net_tap0,iface=sl9", "--ip", "198.18.0.2/24", "--duration", "2",
                "--quiet"]
        cases = {
            "listen port 0": good + ["--listen", "0"],
            "listen port too big": good + ["--listen", "65536"],
            "rr without connect": good + ["--rr", "64"],
            "two benchmark modes": good + ["--connect", "198.18.0.1:7", "--rr", "64", "--cps"],
            "connect without port": good + ["--connect", "198.18.0.1"],
            "bytes and send-file": good + ["--connect", "198.18.0.1:7", "--bytes", "5",
                                           "--send-file", "/dev/null"],
            "unknown congestion control": good + ["--cc", "bbr"],
            "missing --ip": ["--port", "net_tap0,iface=sl9", "--duration", "2"],
        }
        for name, args in cases.items():
            with self.subTest(name):
                r = self.echo(*args, *h.eal_args(self.env.prefix))
                self.assertEqual(r.returncode, 2, f"{args}\n{r.stdout}\n{r.stderr}")
                self.assertTrue(r.stderr.strip(), f"{args}: no message on stderr")
                self.assertNotIn("ready", r.stdout)

    def test_duration(self):
        r = h.run(["ip", "netns", "exec", self.env.name, h.CONFIG.echo, "--port",
                   "net_tap0,iface=sl9", "--ip", f"{h.REFLECTOR_IP}/24", "--duration", "1",
                   *h.eal_args(self.env.prefix)], timeout=60, check=False)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("ready", r.stdout)
        self.assertIn("summary", r.stdout)

    def linger_argv(self, linger: str) -> list[str]:
        return ["ip", "netns", "exec", self.env.name, h.CONFIG.echo, "--port",
                "net_tap0,iface=sl9", "--ip", f"{h.REFLECTOR_IP}/24", "--duration", "1",
                "--linger", linger, "--quiet", *h.eal_args(self.env.prefix)]

    def test_linger_holds_the_port_until_a_signal(self):
        """--linger: once the workers stop (--duration), the process says `lingering` and keeps
        its port open until SIGINT, then exits 0 with its summary (the benchmark runners stop
        a memif server while its client lingers)."""
        proc = subprocess.Popen(self.linger_argv("60"), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        try:
            # Raw reads: a buffered readline could take `lingering` into its buffer while
            # select() waits on the descriptor.
            seen = b""
            deadline = time.monotonic() + h.READY_TIMEOUT_S + 10
            while b"lingering" not in seen:
                left = deadline - time.monotonic()
                ready, _, _ = select.select([proc.stdout], [], [], max(left, 0))
                self.assertTrue(ready, "no `lingering` line: " + seen.decode(errors="replace"))
                chunk = os.read(proc.stdout.fileno(), 4096)
                self.assertTrue(chunk, "stdout closed before `lingering`: " +
                                seen.decode(errors="replace"))
                seen += chunk
            self.assertIn(b"ready", seen)
            self.assertIn(b"summary", seen, "the workers' summary comes before the wait")
            # Still there a while later: it waits for the signal, not for its workers.
            with self.assertRaises(subprocess.TimeoutExpired):
                proc.wait(timeout=1.0)
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=h.STOP_TIMEOUT_S)
            self.assertEqual(proc.returncode, 0, (seen + out + err).decode(errors="replace"))
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate(timeout=5)

    def test_linger_is_bounded(self):
        """Without a signal, --linger SEC ends the wait after SEC seconds: exit 0."""
        r = h.run(self.linger_argv("1"), timeout=60, check=False)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("lingering", r.stdout)
        self.assertIn("summary", r.stdout)


class EchoMemifTest(CliTestCase):
    """Sluice to Sluice, two processes over net_memif: a sluice-echo client sends 4 MB to a
    sluice-echo server through injected loss, reordering and duplication (both directions of
    both processes), half-closes, and checks the echo byte for byte; both exit 0 with every
    mbuf back."""

    def setUp(self) -> None:
        if not h.CONFIG.echo:
            self.skipTest("no --echo binary")

    def memif_pair(self, server_args, client_args):
        """Runs a sluice-echo server and client over net_memif in the test's namespace; the
        client to its end, then the server to SIGINT. Both must exit 0 with every mbuf back.
        Returns (client stdout, server stdout)."""
        sock = f"/run/sluice-memif-{self.env.prefix}.sock"
        lcore = "1" if (os.cpu_count() or 1) >= 2 else "0"
        server_argv = ["ip", "netns", "exec", self.env.name, h.CONFIG.echo,
                       "--port", f"net_memif0,role=server,socket={sock},id=0",
                       "--ip", "198.18.0.2/24", "--quiet", *server_args,
                       "--", "-l", lcore, "--file-prefix", self.env.prefix + "s"]
        client_argv = ["ip", "netns", "exec", self.env.name, h.CONFIG.echo,
                       "--port", f"net_memif0,role=client,socket={sock},id=0",
                       "--ip", "198.18.0.1/24", "--quiet", "--connect", "198.18.0.2:7",
                       *client_args, "--", "-l", "0", "--file-prefix", self.env.prefix + "c"]
        server = subprocess.Popen(server_argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True)
        try:
            ready, _, _ = select.select([server.stdout], [], [], h.READY_TIMEOUT_S)
            self.assertTrue(ready, "no output from the server")
            line = server.stdout.readline()
            self.assertIn("ready", line)
            client = h.run(client_argv, timeout=150, check=False)
            self.assertEqual(client.returncode, 0, client.stdout + client.stderr)
            self.assertNotIn("not back", client.stderr)
            server.send_signal(signal.SIGINT)
            out, err = server.communicate(timeout=h.STOP_TIMEOUT_S)
            self.assertEqual(server.returncode, 0, out + err)
            self.assertNotIn("not back", err)
            return client.stdout, out
        finally:
            if server.poll() is None:
                server.kill()
                server.communicate(timeout=5)
            for p in (sock, f"/var/run/dpdk/{self.env.prefix}s", f"/var/run/dpdk/{self.env.prefix}c"):
                subprocess.run(["rm", "-rf", p], check=False)

    def test_impaired_echo_over_memif(self):
        client_out, server_out = self.memif_pair(
            ["--impair", "loss=0.02,reorder=0.01,dup=0.01,seed=5"],
            ["--conns", "4", "--bytes", "1000000", "--verify", "--timeout", "90",
             "--impair", "loss=0.02,reorder=0.01,dup=0.01,seed=6"])
        self.assertIn("client: done conns=4 ok=4 failed=0 bytes_sent=4000000 "
                      "bytes_received=4000000 mismatches=0", client_out)
        self.assertIn("passive_opens=4", server_out)

    def test_zero_copy_bulk_over_memif(self):
        """--bulk --zero-copy: mbufs attached to one shared buffer, sent by reference and
        retransmitted (indirect clones of external buffers) through loss; every mbuf back."""
        client_out, server_out = self.memif_pair(
            ["--discard", "--impair", "loss=0.01,reorder=0.01,seed=3"],
            ["--bulk", "--zero-copy", "--duration", "1", "--impair", "loss=0.01,seed=4"])
        m = re.search(r"client: bulk bytes=(\d+) seconds=\S+ gbps=\S+", client_out)
        self.assertIsNotNone(m, client_out)
        self.assertGreater(int(m.group(1)), 1_000_000, client_out)
        self.assertIn("passive_opens=1", server_out)


class UdpgenCliTest(CliTestCase):

    def udpgen(self, *args: str):
        if not h.CONFIG.udpgen:
            self.skipTest("sluice-udpgen not given (--udpgen)")
        return self.env.exec([h.CONFIG.udpgen, *args], timeout=30, check=False)

    def test_refuses_non_test_destinations(self):
        for dst in ("8.8.8.8:53", "198.20.0.1:9000", "10.0.0.1:9000", "198.17.255.255:9000"):
            with self.subTest(dst=dst):
                r = self.udpgen("--dst", dst, "--count", "1")
                self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
                self.assertIn("refusing destination", r.stderr)
                self.assertEqual(r.stdout, "")

    def test_bad_usage_exit_2(self):
        for args in ((), ("--bogus",), ("--dst",), ("--dst", "198.18.0.2"),
                     ("--dst", "198.18.0.2:9000", "--size", "3"),
                     ("--dst", "198.18.0.2:9000", "--sizes", "100-50"),
                     ("--dst", "198.18.0.2:9000", "--count", "0"),
                     ("--dst", "198.18.0.2:9000", "--size", "64", "--sizes", "8-9")):
            with self.subTest(args=args):
                r = self.udpgen(*args)
                self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
                self.assertEqual(r.stdout, "")
                self.assertTrue(r.stderr.strip())


if __name__ == "__main__":
    h.main()
