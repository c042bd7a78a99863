"""Fleet discovery from Python (src/sdk/networks.ts, fleet.ts): a network, an invite with a tag, a member
joins, find(tag=...) and discover() list it; self tags."""

from __future__ import annotations

import time
import unittest

import pilot
from pilot import PilotError

from . import env
from .env import needs_daemons


def eventually(fn, check, secs=20):
    """Membership and presence travel asynchronously: until ``check`` holds."""
    end = time.monotonic() + secs
    while True:
        v = fn()
        if check(v) or time.monotonic() > end:
            return v
        time.sleep(0.25)


@needs_daemons
class FleetTest(unittest.TestCase):
    def test_network_invite_join_discover(self):
        with pilot.connect(env.A_SOCKET) as a, pilot.connect(env.B_SOCKET) as c:
            created = a.networks.create("pyfleet")
            self.assertEqual(created["name"], "pyfleet")
            inv = a.networks.invite("pyfleet", tags=["gpu"], uses=1, expires="1h")
            self.assertEqual(inv["tags"], ["gpu"])
            joined = c.networks.join(inv["token"])
            self.assertEqual((joined["name"], joined["tags"], joined["already"]), ("pyfleet", ["gpu"], False))
            self.assertIn("pyfleet", [n["name"] for n in c.networks.list()])
            found = eventually(lambda: a.discover("gpu", "pyfleet"), lambda ns: len(ns) == 1)
            self.assertEqual([n["address"] for n in found], [joined["address"]])
            self.assertEqual(a.find(tag="gpu", network="pyfleet", online=True)["nodes"][0]["tags"], ["gpu"])
            self.assertEqual(a.discover("cpu", "pyfleet"), [])
            self.assertEqual(c.set_tags(["py-worker"]), ["py-worker"])
            c.clear_tags()
            with self.assertRaises(PilotError) as cm:
                c.networks.join(inv["token"] + "x")
            self.assertIn(cm.exception.code, pilot.ERROR_CODES)


if __name__ == "__main__":
    unittest.main()
