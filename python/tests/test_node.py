"""pilot.connect() and the blocking API against real daemons: streams both ways with the TypeScript SDK,
trust, datagrams, and the coded errors a caller sees."""

from __future__ import annotations

import os
import time
import unittest

import pilot
from pilot import PilotError

from . import env
from .env import drain, in_thread, needs_daemons, pump, ts_peer


@needs_daemons
class NodeTest(env.ThreeNodes):
    def test_connect_info_peers_find(self):
        self.assertEqual(self.a.address, env.A)
        self.assertEqual(self.a.hostname, "py-alpha")
        self.assertEqual(self.b.info()["address"], env.B)
        found = self.b.find("py-alpha")
        self.assertEqual(found["address"], env.A)
        self.assertEqual(self.b.lookup(env.A)["address"], env.A)
        self.b.ping("py-alpha", count=1)
        self.assertIn(env.A, [p["address"] for p in self.b.peers()])

    def test_socket_lookup_follows_pilotctl(self):
        # $PILOT_SOCKET first, then $PILOT_HOME/pilot.sock (no runtime directory for a home of its own)
        self.assertEqual(pilot.socket_path(None, {"PILOT_SOCKET": "/x/s.sock"}), "/x/s.sock")
        self.assertEqual(pilot.socket_path("/y.sock", {"PILOT_SOCKET": "/x/s.sock"}), "/y.sock")
        home = os.path.dirname(env.A_SOCKET)
        self.assertEqual(pilot.socket_path(None, {"PILOT_HOME": home, "XDG_RUNTIME_DIR": "/run/user/1"}), env.A_SOCKET)
        old = os.environ.get("PILOT_SOCKET")
        os.environ["PILOT_SOCKET"] = env.A_SOCKET
        try:
            with pilot.connect() as n:
                self.assertEqual(n.address, env.A)
        finally:
            if old is None:
                del os.environ["PILOT_SOCKET"]
            else:
                os.environ["PILOT_SOCKET"] = old

    def test_python_dials_ts_listener_20mib_echo(self):
        size = 20 * 1024 * 1024
        t0 = time.monotonic()
        with self.b.dial("py-alpha", env.TS_ECHO_PORT) as s:
            self.assertEqual(s.remote_address, env.A)
            self.assertEqual(s.remote_hostname, "py-alpha")
            self.assertEqual(s.getpeername(), (env.A, env.TS_ECHO_PORT))
            back = in_thread(drain, s)
            sent = pump(s, size)
            n, digest = back()
        secs = time.monotonic() - t0
        self.assertEqual(n, size)
        self.assertEqual(digest, sent)
        print(f"\n# python dial -> TS echo, 20 MiB each way: {secs:.2f} s ({2 * size / 1e6 / secs:.1f} MB/s both directions)")

    def test_ts_dials_python_listener_echo(self):
        with self.a.listen(7200) as lst:

            def serve():
                with lst.accept(timeout=30) as s:
                    while True:
                        chunk = s.recv(65536)
                        if not chunk:
                            break
                        s.sendall(chunk)
                    s.shutdown()
                    return s.remote_address

            peer = in_thread(serve)
            r = ts_peer("echo", env.B_SOCKET, "py-alpha", "7200", str(20 * 1024 * 1024))
            self.assertEqual(peer(), env.B)
        self.assertEqual(r["bytes"], 20 * 1024 * 1024)
        self.assertEqual(r["back"], r["sent"])

    def test_makefile_lines_and_listener_port_freed(self):
        with self.a.listen(7201) as lst:

            def serve():
                s = lst.accept(timeout=30)
                with s, s.makefile("rwb") as f:
                    for line in f:
                        f.write(line.upper())
                        f.flush()

            done = in_thread(serve)
            with self.b.dial(env.A, 7201) as s, s.makefile("rw", encoding="utf-8") as f:
                f.write("hello\n")
                f.flush()
                self.assertEqual(f.readline(), "HELLO\n")
                f.write("pilot\n")
                f.flush()
                self.assertEqual(f.readline(), "PILOT\n")
                s.shutdown()
                self.assertEqual(f.readline(), "")
            done()
        # closed: the port is free for the next listener at once
        self.a.listen(7201).close()

    def test_reset_reaches_the_peer_as_a_coded_error(self):
        with self.a.listen(7202) as lst:

            def serve():
                s = lst.accept(timeout=30)
                s.recv(5)
                s.reset()

            done = in_thread(serve)
            with self.b.dial(env.A, 7202) as s:
                s.sendall(b"hello")
                done()
                with self.assertRaises(PilotError) as cm:
                    while s.recv(65536):
                        pass
                self.assertEqual(cm.exception.code, "CONNECTION_RESET")

    def test_connections_disconnect_traceroute(self):
        with self.b.dial(env.A, 7) as s:  # the built-in echo
            s.sendall(b"y" * 1000)
            got = b""
            while len(got) < 1000:
                got += s.recv(65536)
            mine = [c for c in self.b.connections() if c["peer"] == env.A and c["remotePort"] == 7 and c["direction"] == "outgoing"]
            self.assertEqual(len(mine), 1, mine)
            self.assertEqual(mine[0]["bytesIn"], 1000)
            self.b.disconnect(mine[0]["id"])
            with self.assertRaises(PilotError) as cm:
                while s.recv(65536):
                    pass
            self.assertEqual(cm.exception.code, "CONNECTION_RESET")
        with self.assertRaises(PilotError) as cm:
            self.b.disconnect(mine[0]["id"])
        self.assertEqual(cm.exception.code, "NOT_FOUND")
        route = self.b.traceroute(env.A, count=2)
        self.assertEqual(route["target"], env.A)
        self.assertIn(route["pathType"], ("direct", "relay"), route)
        self.assertTrue(route["legs"], route)

    def test_a_file_from_makefile_outlives_close_like_socket_socket(self):
        # http.client closes the connection and reads the response from its makefile() afterwards
        s = self.b.dial(env.A, 7)  # the built-in echo
        s.sendall(b"x" * 100000)
        s.shutdown()
        f = s.makefile("rb")
        s.close()
        self.assertEqual(f.read(), b"x" * 100000)
        f.close()
        with self.assertRaises(OSError):
            s._sock.recv(1)  # closed for real once the file is

    def test_datagrams(self):
        with self.a.bind(7300) as da, self.b.bind(7301) as db:
            db.sendto(b"ping-1", (env.A, 7300))
            data, (frm, port) = da.recvfrom(timeout=10)
            self.assertEqual((data, frm, port), (b"ping-1", env.B, 7301))
            da.sendto("pong-1", (frm, port))
            data, (frm, port) = db.recvfrom(timeout=10)
            self.assertEqual((data, frm, port), (b"pong-1", env.A, 7300))

    def test_trust_flow(self):
        # gamma asks beta; beta sees it pending, approves; both trust each other; then gamma revokes
        r = self.c.handshake(env.B, "python tests")
        self.assertEqual(r["status"], "pending")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            incoming = self.b.pending()["incoming"]
            if any(p["from"] == env.C for p in incoming):
                break
            time.sleep(0.1)
        else:
            self.fail("beta never saw gamma's request")
        self.assertEqual([p["reason"] for p in incoming if p["from"] == env.C], ["python tests"])
        self.assertEqual(self.b.approve(env.C)["status"], "trusted")
        deadline = time.monotonic() + 15
        while not any(t["peer"] == env.B for t in self.c.trusted()) and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertIn(env.B, [t["peer"] for t in self.c.trusted()])
        self.c.untrust(env.B)
        self.assertNotIn(env.B, [t["peer"] for t in self.c.trusted()])

    def test_untrusted_target_is_not_trusted(self):
        with self.assertRaises(PilotError) as cm:
            self.c.dial(env.A, env.TS_ECHO_PORT, timeout=5)
        self.assertEqual(cm.exception.code, "NOT_TRUSTED")
        self.assertTrue(cm.exception.hint)

    def test_refused_port_and_bad_arguments(self):
        with self.assertRaises(PilotError) as cm:
            self.b.dial(env.A, 7999, timeout=5)
        self.assertEqual(cm.exception.code, "CONNECTION_REFUSED")
        with self.assertRaises(PilotError) as cm:
            self.b.dial(env.A, 70000)
        self.assertEqual(cm.exception.code, "BAD_ARGUMENT")
        with self.assertRaises(PilotError) as cm:
            self.b.call("find")  # the daemon checks params too
        self.assertEqual((cm.exception.code, cm.exception.message), ("BAD_ARGUMENT", 'missing parameter "target"'))
        with self.assertRaises(PilotError) as cm:
            self.b.find("no-such-agent-here")
        self.assertEqual(cm.exception.code, "NOT_FOUND")

    def test_missing_daemon_is_no_daemon(self):
        with self.assertRaises(PilotError) as cm:
            pilot.connect(os.path.join(env.WORK, "nobody.sock"))
        self.assertEqual(cm.exception.code, "NO_DAEMON")
        self.assertIn("pilotctl daemon start", cm.exception.hint)
        self.assertIn(cm.exception.code, pilot.ERROR_CODES)

    def test_planted_socket_is_refused(self):
        link = os.path.join(env.WORK, "link.sock")
        plain = os.path.join(env.WORK, "plain.sock")
        os.symlink(env.A_SOCKET, link)
        open(plain, "w").close()
        try:
            for p in (link, plain):
                with self.assertRaises(PilotError) as cm:
                    pilot.connect(p)
                self.assertEqual(cm.exception.code, "UNSAFE_SOCKET")
                self.assertIn("PILOT_SOCKET", cm.exception.hint)
        finally:
            os.unlink(link)
            os.unlink(plain)


if __name__ == "__main__":
    unittest.main()
