"""Minimal DPDK telemetry (v2 socket) client, python3 stdlib only.

The EAL of every DPDK process listens on /var/run/dpdk/<file-prefix>/dpdk_telemetry.v2, a
SOCK_SEQPACKET unix socket. On connect it sends one JSON object (version, pid,
max_output_len); each command string sent gets one JSON reply {"<cmd>": <data>}.
This is what /usr/bin/dpdk-telemetry.py does, without the interactive shell.
"""

import json
import os
import socket
import time

RUN_DIR = "/var/run/dpdk"
SOCKET_NAME = "dpdk_telemetry.v2"


def socket_path(file_prefix):
    return os.path.join(RUN_DIR, file_prefix, SOCKET_NAME)


class TelemetryError(Exception):
    pass


class Telemetry:
    """One connection to one process's telemetry socket."""

    def __init__(self, file_prefix, timeout=2.0):
        self.path = socket_path(file_prefix)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(self.path)
            hello = json.loads(self.sock.recv(1024).decode())
        except (OSError, ValueError) as e:
            self.sock.close()
            raise TelemetryError(f"{self.path}: {e}") from e
        self.max_len = int(hello.get("max_output_len", 16384))
        self.pid = hello.get("pid")

    def query(self, cmd):
        """Sends one command; returns its data (None when the command is unknown/failed)."""
        try:
            self.sock.send(cmd.encode())
            reply = self.sock.recv(self.max_len + 1024).decode()
            data = json.loads(reply)
        except (OSError, ValueError) as e:
            raise TelemetryError(f"{self.path} {cmd}: {e}") from e
        key = cmd.split(",", 1)[0]
        return data.get(key) if isinstance(data, dict) else None

    def timed_query(self, cmd):
        """(monotonic midpoint of the exchange, data): for rates over short intervals."""
        t0 = time.monotonic()
        data = self.query(cmd)
        t1 = time.monotonic()
        return (t0 + t1) / 2, data

    def commands(self):
        return self.query("/") or []

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def connect(file_prefix, deadline, timeout=2.0):
    """Connects, retrying until the monotonic deadline; raises TelemetryError after it."""
    last = None
    while True:
        try:
            return Telemetry(file_prefix, timeout)
        except TelemetryError as e:
            last = e
        if time.monotonic() >= deadline:
            raise TelemetryError(f"no telemetry from {file_prefix}: {last}")
        time.sleep(0.05)
