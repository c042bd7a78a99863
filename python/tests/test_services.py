"""The built-in services from Python against real daemons: a 20 MiB file with progress, pub/sub as an
iterator (sync and asyncio), messages, tasks, webhooks."""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
import threading
import unittest

import pilot
import pilot.aio
from pilot import PilotError

from . import env
from .env import needs_daemons


@needs_daemons
class ServicesTest(env.ThreeNodes):
    def test_file_20mib_with_progress(self):
        size = 20 * 1024 * 1024
        data = os.urandom(size)
        with tempfile.NamedTemporaryFile(dir=env.WORK, suffix=".bin", delete=False) as f:
            f.write(data)
        try:
            seen: list[dict] = []
            r = self.b.files.send("py-alpha", f.name, on_progress=seen.append)
        finally:
            os.unlink(f.name)
        self.assertEqual(r["sha256"], hashlib.sha256(data).hexdigest())
        self.assertTrue(seen, "no progress reported")
        self.assertEqual(seen[-1]["sent"], size)
        got = [x for x in self.a.files.received()["files"] if x["name"] == os.path.basename(f.name)]
        self.assertEqual(len(got), 1)
        with open(os.path.join(self.a.files.received()["dir"], got[0]["name"]), "rb") as fh:
            self.assertEqual(hashlib.sha256(fh.read()).hexdigest(), hashlib.sha256(data).hexdigest())

    def test_pubsub_iterator(self):
        with self.b.pubsub.subscribe("py-alpha", "py.*", count=3) as events:
            for i in range(3):
                self.assertEqual(self.a.pubsub.publish(env.A, f"py.t{i}", f"e{i}")["delivered"], 1)
            got = [(e["topic"], e["data"]) for e in events]
        self.assertEqual(got, [("py.t0", "e0"), ("py.t1", "e1"), ("py.t2", "e2")])

    def test_pubsub_close_ends_iteration(self):
        events = self.b.pubsub.subscribe("py-alpha", "close.*")

        def later():
            self.a.pubsub.publish(env.A, "close.x", "one")

        threading.Thread(target=later).start()
        first = events.next(timeout=10)
        self.assertEqual(first["data"], "one")
        events.close()
        self.assertEqual(list(events), [])

    def test_pubsub_asyncio(self):
        async def run():
            a = await pilot.aio.connect(env.A_SOCKET)
            b = await pilot.aio.connect(env.B_SOCKET)
            try:
                events = await b.pubsub.subscribe("py-alpha", "aio.*", count=2)
                await a.pubsub.publish(env.A, "aio.one", "1")
                await a.pubsub.publish(env.A, "aio.two", "2")
                return [e["data"] async for e in events]
            finally:
                await a.close()
                await b.close()

        self.assertEqual(asyncio.run(run()), ["1", "2"])

    def test_messages(self):
        self.a.messages.clear()
        self.b.messages.send("py-alpha", "hello from python")
        self.b.messages.send_json("py-alpha", {"n": 1})
        self.b.messages.send("py-alpha", b"\x00\x01")
        inbox = self.a.messages.inbox()
        self.assertEqual([m["type"] for m in inbox], ["text", "json", "binary"])
        self.assertEqual(inbox[1]["json"], {"n": 1})
        self.assertEqual(self.a.messages.clear(), 3)

    def test_tasks(self):
        t = self.b.tasks.submit("py-alpha", "add 2 and 3")
        tid = t["id"]
        self.assertEqual(t["role"], "submitted")
        self.a.tasks.accept(tid)
        self.a.tasks.execute(tid)
        self.a.tasks.send_results(tid, "5")
        mine = [x for x in self.a.tasks.list(type="received") if x["id"] == tid]
        self.assertEqual(mine[0]["status"], "completed")

    def test_webhooks(self):
        r = self.a.webhooks.set("http://127.0.0.1:9/hook")
        self.assertEqual(r["url"], "http://127.0.0.1:9/hook")
        self.assertTrue(r["secret"])
        self.assertEqual(self.a.webhooks.status()["url"], "http://127.0.0.1:9/hook")
        self.a.webhooks.clear()
        self.assertIsNone(self.a.webhooks.status()["url"])

    def test_untrusted_service_call_is_coded(self):
        with self.assertRaises(PilotError) as cm:
            self.c.messages.send(env.A, "hi")
        self.assertEqual(cm.exception.code, "NOT_TRUSTED")


if __name__ == "__main__":
    unittest.main()
