#!/usr/bin/env python3
"""Sluice's TCP against the Linux kernel's, with sluice-echo in the namespace (engine on
198.18.0.2) and Linux peers (tcp_tools.py) on 198.18.0.1:

  Linux client -> Sluice echo server   bulk transfer both ways at once (SHA-256 of what was
                                       sent == SHA-256 of what came back); 1000 concurrent
                                       connections; half-close (the echo and then EOF still
                                       arrive after the client's FIN); ECONNREFUSED
  Sluice client -> Linux server        bulk transfer of a random file through a Linux echo
                                       server (both sides' SHA-256); half-close (the server
                                       replies after the client's FIN); refused

After every test each Sluice process must have exited 0 (on SIGINT, or by itself as a client)
without the engine's "mbufs not back" warning (AppTestCase.tearDown).

Sizes: the issue asks for 200 MB bulk each way. That takes minutes on the 2-core CI box, whose
whole integration budget is 30 min, so the default is 20 MB; SLUICE_FULL_TCP=1 selects the
issue's 200 MB (run it as `SLUICE_FULL_TCP=1 meson test -C build --suite integration
--timeout-multiplier 4`), SLUICE_TCP_BULK_MB=N any size.
"""

import hashlib
import os
import re
import tempfile

import sluice_harness as h
import tcp_tools

FULL = os.environ.get("SLUICE_FULL_TCP") == "1"
BULK_MB = int(os.environ.get("SLUICE_TCP_BULK_MB", "200" if FULL else "20"))
MANY_CONNS = int(os.environ.get("SLUICE_TCP_CONNS", "1000"))
ECHO_PORT = 7
CLOSED_PORT = 9  # nothing listens there (sluice-echo serves port 7 only)
LINUX_PORT = 5007  # the Linux servers'

SUMMARY = re.compile(r"client: done conns=(\d+) ok=(\d+) failed=(\d+) bytes_sent=(\d+) "
                     r"bytes_received=(\d+) mismatches=(\d+)")


def bulk_deadline(mb: float) -> float:
    """Seconds a transfer of `mb` MB each way may take: generous for a busy 2-core box
    (a slow but progressing run must not fail; a hung one must)."""
    return 60.0 + 2.0 * mb


def sha256_file(path: str) -> str:
    h_ = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h_.update(block)
    return h_.hexdigest()


def write_random_file(path: str, size: int, seed: int) -> str:
    """A file of `size` bytes of the seeded pattern; returns its SHA-256."""
    pat, h_ = tcp_tools.Pattern(seed), hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        while left:
            block = pat.take(min(left, 1 << 20))
            f.write(block)
            h_.update(block)
            left -= len(block)
    return h_.hexdigest()


def client_summary(env: h.ReflectorEnv) -> dict | None:
    for line in env.stdout_lines + env.stderr_lines:
        m = SUMMARY.search(line)
        if m:
            return dict(zip(("conns", "ok", "failed", "bytes_sent", "bytes_received",
                             "mismatches"), map(int, m.groups())))
    return None


def check_bulk(test, r: dict, size: int) -> None:
    """A bulk result (tcp_tools.py bulk) is a complete, identical echo of `size` bytes."""
    # The sender hashes what it sent (the pattern); the receiver compares every received
    # byte with the pattern (first_mismatch) and hashes it.
    test.assertIsNone(r["error"], r)
    test.assertTrue(r["connected"], r)
    test.assertEqual(r["bytes_sent"], size, r)
    test.assertEqual(r["bytes_received"], size, r)
    test.assertIsNone(r["first_mismatch"], r)
    test.assertEqual(r["recv_sha256"], r["sent_sha256"], r)
    test.assertTrue(r["eof"], r)


class SluiceServerTest(h.AppTestCase):
    """A Linux client against a sluice-echo server (one per test)."""

    def setUp(self) -> None:
        super().setUp()
        self.env = self.start_server()

    def bulk(self, size: int, *extra: str, seed: int = 1, deadline: float | None = None,
             stall: float = 20.0) -> dict:
        deadline = deadline or bulk_deadline(size / 1e6)
        return self.env.tcp_tool("bulk", "--dst", h.REFLECTOR_IP, "--port", str(ECHO_PORT),
                                 "--bytes", str(size), "--seed", str(seed), "--stall",
                                 str(stall), "--deadline", str(deadline), *extra,
                                 timeout=deadline + 30)

    def test_bulk_echo(self):
        # Issue: 200 MB each way (SLUICE_FULL_TCP=1); default 20 MB (see the docstring).
        size = BULK_MB * 1_000_000
        before = self.env.tcp_stats()
        r = self.bulk(size, seed=2024)
        drops = {k: v for k, v in self.env.drops().items() if v}
        print(f"bulk echo: {size} bytes each way in {r['elapsed_s']} s "
              f"({r.get('mb_per_s')} MB/s), linux retransmits {r['total_retrans']}, longest "
              f"stall {r['longest_stall_s']} s, sluice drops {drops}")
        check_bulk(self, r, size)
        after = h.wait_tcp_idle(self.env, timeout=10)
        if before is not None and after is not None and "passive_opens" in after:
            self.assertEqual(after["passive_opens"] - before.get("passive_opens", 0), 1, after)
            self.assertEqual(after.get("open_conns", 0), 0, after)

    def test_many_concurrent_connections(self):
        # 1000 connections open at once; each echoes a distinct message; all are still open
        # when the last echo is in (checked on both sides), then each closes cleanly (its FIN,
        # the echo server's FIN, EOF).
        n = MANY_CONNS
        tool = self.env.spawn_tool("tcp_tools.py", "many", "--dst", h.REFLECTOR_IP, "--port",
                                   str(ECHO_PORT), "--count", str(n), "--min-size", "1",
                                   "--max-size", "1400", "--seed", "77", "--pause",
                                   "--deadline", "60", stdin=True)
        line = tool.wait_line("echoed", timeout=70)
        open_now = int(line.split()[1])
        during = self.env.tcp_stats()
        tool.send_line("go")
        r = tool.json_result(timeout=90)
        print(f"{n} connections: all open after {r['connect_s']} s, done in {r['elapsed_s']} s; "
              f"sluice with all open: "
              f"{during and {k: during.get(k) for k in ('established', 'open_conns', 'passive_opens', 'syn_cookies_sent', 'syn_cookies_ok')}}")
        self.assertEqual({k: r[k] for k in ("connected", "max_open", "echoed_ok",
                                            "open_after_echo", "mismatched", "clean_closes",
                                            "unfinished", "connect_failures", "errors")},
                         {"connected": n, "max_open": n, "echoed_ok": n, "open_after_echo": n,
                          "mismatched": 0, "clean_closes": n, "unfinished": 0,
                          "connect_failures": {}, "errors": {}}, r)
        self.assertEqual(open_now, n, r)
        if during is not None and "established" in during:
            # Every connection has echoed data and none is closed yet.
            self.assertEqual(during["established"], n, during)
        after = h.wait_tcp_idle(self.env, timeout=15)
        if after is not None and "open_conns" in after:
            self.assertEqual(after["open_conns"], 0, f"connections left open: {after}")
        self.env.assert_alive()

    def test_half_close_linux_client(self):
        # The client sends everything, shuts down its write side, and only then reads: the
        # whole echo and then EOF (the server's FIN) must still arrive. Sizes fit in the
        # buffers of both ends (the client reads nothing before its FIN).
        for size in (0, 1, 1460, 100_000):
            with self.subTest(size=size):
                r = self.bulk(size, "--sequential", seed=size, deadline=30, stall=15)
                check_bulk(self, r, size)

    def test_connection_refused(self):
        r = self.env.tcp_tool("connect", "--dst", h.REFLECTOR_IP, "--port", str(CLOSED_PORT),
                              "--timeout", "5", timeout=30)
        self.assertEqual(r, {"result": "refused", "errno": "ECONNREFUSED",
                             "elapsed_s": r.get("elapsed_s")}, r)
        self.env.assert_alive()
        # The listener still works afterwards.
        r = self.env.tcp_tool("connect", "--dst", h.REFLECTOR_IP, "--port", str(ECHO_PORT),
                              "--timeout", "5", timeout=30)
        self.assertEqual(r["result"], "connected", r)


class SluiceClientTest(h.AppTestCase):
    """sluice-echo as a client (--connect) against a Linux server on 198.18.0.1."""

    def setUp(self) -> None:
        super().setUp()
        tmp = tempfile.TemporaryDirectory(prefix="sluice-tcp-")
        self.addCleanup(tmp.cleanup)
        self.tmp = tmp.name

    def run_client(self, server_args: list[str], client_args: list[str], *,
                   timeout: float) -> tuple[int, dict | None, h.ReflectorEnv, h.NsProcess | None]:
        """Starts the Linux server (if `server_args`), then sluice-echo --connect; returns the
        client's exit code, its summary, its env and the server."""
        env = self.new_env("--timeout", str(int(timeout)), *client_args)
        env.create_netns()
        server = None
        if server_args:
            server = env.spawn_tool("tcp_tools.py", "server", "--bind", h.KERNEL_IP, "--port",
                                    str(LINUX_PORT), "--deadline", str(timeout + 20),
                                    *server_args)
            server.wait_line("listening", timeout=20)
        env.start_reflector()
        code = env.wait_exit(timeout + 30)
        return code, client_summary(env), env, server

    def test_bulk_to_linux_echo(self):
        # Issue: 200 MB each way (SLUICE_FULL_TCP=1); default 20 MB (see the docstring).
        size = BULK_MB * 1_000_000
        src, dst = os.path.join(self.tmp, "send"), os.path.join(self.tmp, "recv")
        sha = write_random_file(src, size, seed=99)
        timeout = bulk_deadline(size / 1e6)
        code, summary, env, server = self.run_client(
            ["--mode", "echo", "--conns", "1"],
            ["--connect", f"{h.KERNEL_IP}:{LINUX_PORT}", "--send-file", src, "--recv-file", dst,
             "--verify"], timeout=timeout)
        out = env.output_tail()
        self.assertEqual(code, 0, out)
        self.assertEqual(summary, {"conns": 1, "ok": 1, "failed": 0, "bytes_sent": size,
                                   "bytes_received": size, "mismatches": 0}, out)
        srv = server.json_result(timeout=30)
        self.assertEqual(len(srv["conns"]), 1, srv)
        c = srv["conns"][0]
        self.assertEqual((c["error"], c["eof"], c["bytes_received"], c["bytes_sent"]),
                         (None, True, size, size), srv)
        self.assertEqual(c["sha256"], sha, "what the Linux server received differs")
        self.assertEqual(os.path.getsize(dst), size)
        self.assertEqual(sha256_file(dst), sha, "what the Sluice client received differs")

    def test_half_close_sluice_client(self):
        # The client sends a file and shuts down its write side; the Linux server reads to EOF
        # and only then replies (SHA-256 line + 256 KiB of a pattern) and closes: the client,
        # half-closed, must receive all of the reply.
        size, reply_bytes, reply_seed = 300_000, 256 * 1024, 5
        src, dst = os.path.join(self.tmp, "send"), os.path.join(self.tmp, "recv")
        sha = write_random_file(src, size, seed=3)
        code, summary, env, server = self.run_client(
            ["--mode", "sink-reply", "--conns", "1", "--reply-bytes", str(reply_bytes),
             "--reply-seed", str(reply_seed)],
            ["--connect", f"{h.KERNEL_IP}:{LINUX_PORT}", "--send-file", src, "--recv-file", dst],
            timeout=60)
        out = env.output_tail()
        expected = f"sha256={sha}\n".encode() + tcp_tools.pattern_bytes(reply_seed, reply_bytes)
        self.assertEqual(code, 0, out)
        self.assertIsNotNone(summary, out)
        self.assertEqual({k: summary[k] for k in ("ok", "failed", "bytes_sent",
                                                  "bytes_received")},
                         {"ok": 1, "failed": 0, "bytes_sent": size,
                          "bytes_received": len(expected)}, out)
        srv = server.json_result(timeout=30)
        c = srv["conns"][0]
        self.assertEqual((c["error"], c["eof"], c["bytes_received"], c["sha256"],
                          c["bytes_sent"]), (None, True, size, sha, len(expected)), srv)
        with open(dst, "rb") as f:
            got = f.read()
        self.assertEqual(len(got), len(expected))
        self.assertTrue(got == expected, "the reply received after the half-close differs")

    def test_refused(self):
        # Nothing listens on LINUX_PORT: the kernel answers the SYN with an RST.
        code, summary, env, _ = self.run_client(
            [], ["--connect", f"{h.KERNEL_IP}:{LINUX_PORT}", "--bytes", "1000"], timeout=30)
        out = env.output_tail()
        self.assertEqual(code, 1, out)
        self.assertTrue(any(re.search(r"client: conn 0 failed: refused", l)
                            for l in env.stdout_lines + env.stderr_lines), out)
        self.assertIsNotNone(summary, out)
        self.assertEqual((summary["ok"], summary["failed"]), (0, 1), out)


if __name__ == "__main__":
    h.main(needs=("echo",))
