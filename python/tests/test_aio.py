"""pilot.aio against real daemons: (reader, writer) streams both ways with the TypeScript SDK, datagrams,
concurrent requests on one connection, and the coded errors."""

from __future__ import annotations

import asyncio
import hashlib
import os
import unittest

import pilot.aio
from pilot import PilotError

from . import env
from .env import needs_daemons, ts_peer


async def pump(writer: asyncio.StreamWriter, size: int) -> str:
    h = hashlib.sha256()
    left = size
    while left > 0:
        buf = os.urandom(min(64 * 1024, left))
        h.update(buf)
        writer.write(buf)
        await writer.drain()
        left -= len(buf)
    writer.write_eof()
    return h.hexdigest()


async def drain(reader: asyncio.StreamReader) -> tuple[int, str]:
    h = hashlib.sha256()
    n = 0
    while chunk := await reader.read(256 * 1024):
        n += len(chunk)
        h.update(chunk)
    return n, h.hexdigest()


@needs_daemons
class AioTest(unittest.IsolatedAsyncioTestCase):
    async def asyncSetUp(self):
        self.a = await pilot.aio.connect(env.A_SOCKET)
        self.b = await pilot.aio.connect(env.B_SOCKET)
        self.c = await pilot.aio.connect(env.C_SOCKET)

    async def asyncTearDown(self):
        for n in (self.a, self.b, self.c):
            await n.close()

    async def test_info_and_concurrent_requests(self):
        self.assertEqual(self.a.address, env.A)
        infos = await asyncio.gather(*(self.b.info() for _ in range(20)), self.b.peers(), self.b.find("py-alpha"))
        self.assertTrue(all(i["address"] == env.B for i in infos[:20]))
        self.assertEqual(infos[21]["address"], env.A)

    async def test_dial_ts_listener_20mib_echo(self):
        size = 20 * 1024 * 1024
        reader, writer = await self.b.dial("py-alpha", env.TS_ECHO_PORT)
        self.assertEqual(writer.pilot.remote_address, env.A)
        self.assertEqual(writer.pilot.remote_port, env.TS_ECHO_PORT)
        sent, (n, back) = await asyncio.gather(pump(writer, size), drain(reader))
        self.assertEqual((n, back), (size, sent))
        self.assertIsNone(await self.b.pipe_error(writer))
        writer.close()

    async def test_ts_dials_async_listener(self):
        async with await self.a.listen(7210) as lst:

            async def echo(reader, writer):
                while chunk := await reader.read(65536):
                    writer.write(chunk)
                    await writer.drain()
                writer.write_eof()

            server = asyncio.ensure_future(lst.serve(echo))
            r = await asyncio.to_thread(ts_peer, "echo", env.B_SOCKET, env.A, "7210", str(5 * 1024 * 1024))
            self.assertEqual((r["bytes"], r["back"]), (5 * 1024 * 1024, r["sent"]))
        await asyncio.wait_for(server, 10)  # the accept loop ends when the listener closes

    async def test_datagrams(self):
        async with await self.a.bind(7310) as da, await self.b.bind(7311) as db:
            await db.sendto(b"hi", (env.A, 7310))
            data, sender = await asyncio.wait_for(da.recvfrom(), 10)
            self.assertEqual((data, sender), (b"hi", (env.B, 7311)))

    async def test_coded_errors(self):
        with self.assertRaises(PilotError) as cm:
            await self.c.dial(env.A, env.TS_ECHO_PORT, timeout=5)
        self.assertEqual(cm.exception.code, "NOT_TRUSTED")
        with self.assertRaises(PilotError) as cm:
            await self.b.dial(env.A, 7998, timeout=5)
        self.assertEqual(cm.exception.code, "CONNECTION_REFUSED")
        with self.assertRaises(PilotError) as cm:
            await pilot.aio.connect(os.path.join(env.WORK, "nobody.sock"))
        self.assertEqual(cm.exception.code, "NO_DAEMON")
        self.assertIn("PILOT_SOCKET", cm.exception.hint)


if __name__ == "__main__":
    unittest.main()
