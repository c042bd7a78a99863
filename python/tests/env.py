"""What test/python/python.test.ts started for these tests (real daemons), read from the environment."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import threading
import unittest

E = os.environ
A_SOCKET = E.get("PILOT_TEST_A_SOCKET", "")
B_SOCKET = E.get("PILOT_TEST_B_SOCKET", "")
C_SOCKET = E.get("PILOT_TEST_C_SOCKET", "")
A = E.get("PILOT_TEST_A_ADDRESS", "")
B = E.get("PILOT_TEST_B_ADDRESS", "")
C = E.get("PILOT_TEST_C_ADDRESS", "")
TS_ECHO_PORT = int(E.get("PILOT_TEST_TS_ECHO_PORT", "0"))
TS_HTTP_PORT = int(E.get("PILOT_TEST_TS_HTTP_PORT", "0"))
NODE = E.get("PILOT_TEST_NODE", "")
ROOT = E.get("PILOT_TEST_ROOT", "")
WORK = E.get("PILOT_TEST_WORK", "")

needs_daemons = unittest.skipUnless(A_SOCKET, "run by test/python/python.test.ts, which starts the daemons")


def ts_peer(*args: str, timeout: float = 60) -> dict:
    """Run test/python/ts-peer.ts (the TypeScript SDK) and return its JSON line."""
    r = subprocess.run([NODE, os.path.join(ROOT, "test/python/ts-peer.ts"), *args], capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise AssertionError(f"ts-peer {args} failed: {r.stderr}{r.stdout}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def pump(sock, size: int, chunk: int = 64 * 1024) -> str:
    """Send ``size`` random bytes and end our direction; returns their sha256."""
    h = hashlib.sha256()
    left = size
    while left > 0:
        buf = os.urandom(min(chunk, left))
        h.update(buf)
        sock.sendall(buf)
        left -= len(buf)
    sock.shutdown()
    return h.hexdigest()


def drain(sock) -> tuple[int, str]:
    h = hashlib.sha256()
    n = 0
    while True:
        b = sock.recv(256 * 1024)
        if not b:
            return n, h.hexdigest()
        n += len(b)
        h.update(b)


def in_thread(fn, *args):
    """Run fn in a thread; the returned function joins it and returns (or raises) its result."""
    out: dict = {}

    def run():
        try:
            out["v"] = fn(*args)
        except BaseException as e:  # noqa: BLE001 - handed to the joining test
            out["e"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()

    def join(timeout: float = 60):
        t.join(timeout)
        if t.is_alive():
            raise AssertionError(f"{fn.__name__} did not finish within {timeout} s")
        if "e" in out:
            raise out["e"]
        return out.get("v")

    return join


class ThreeNodes(unittest.TestCase):
    """A test case with a blocking connection to each of the three daemons (a, b, c)."""

    @classmethod
    def setUpClass(cls):
        import pilot

        cls.a = pilot.connect(A_SOCKET)
        cls.b = pilot.connect(B_SOCKET)
        cls.c = pilot.connect(C_SOCKET)

    @classmethod
    def tearDownClass(cls):
        for n in (cls.a, cls.b, cls.c):
            n.close()
