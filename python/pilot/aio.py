"""The asyncio API: ``node = await pilot.aio.connect()``, with the names of the blocking API, awaitable.

Streams are asyncio (reader, writer) pairs; ``writer.pilot`` tells who is at the other end. Requests share one
connection to the daemon (answers matched by id, so concurrent calls are fine); each subscription and stream
gets a connection of its own, as in the TypeScript SDK.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from . import _ops as ops
from ._wire import MAX_LINE, check_socket, encode, errno_name, no_daemon, parse_message, reply_error, socket_path, too_large
from .errors import PilotError
from .services import Files, Messages, Networks, PubSub, Tasks, Webhooks

_QUIET_EVENTS = ("alive", "keepalive")


async def _open(path: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    check_socket(path)
    try:
        # the limit bounds a line; a pipe's bytes are read with read(), which it does not bound
        return await asyncio.open_unix_connection(path, limit=MAX_LINE + 1)
    except OSError as err:
        raise no_daemon(path, errno_name(err)) from None


async def _read_message(reader: asyncio.StreamReader) -> dict | None:
    """The next well-formed message, None at the end of the connection."""
    while True:
        try:
            line = await reader.readuntil(b"\n")
        except asyncio.IncompleteReadError:
            return None
        except asyncio.LimitOverrunError:
            raise too_large() from None
        except (ConnectionResetError, BrokenPipeError):
            return None
        if not line.strip():
            continue
        msg = parse_message(line)
        if msg is not None:
            return msg


def _close(writer: asyncio.StreamWriter) -> None:
    try:
        writer.close()
    except (OSError, RuntimeError):
        pass


@dataclass(frozen=True)
class StreamInfo:
    """Who is at the other end of a stream (``writer.pilot``)."""

    pipe: str
    remote_address: str
    remote_hostname: str | None
    remote_port: int
    local_address: str
    local_port: int


class Subscription:
    """A long-running request on its own connection: events until the final answer, or cancel()."""

    def __init__(self, node: "Node", reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._node = node
        self._reader = reader
        self._writer = writer
        self.token: str | None = None
        self.result: Any = None
        self.ended = False
        self._cancelled = False
        self._reading = asyncio.Lock()
        self._done = asyncio.Event()

    @classmethod
    async def open(cls, node: "Node", method: str, params: dict) -> "Subscription":
        line = encode(1, method, params)
        reader, writer = await _open(node.socket)
        writer.write(line)
        return cls(node, reader, writer)

    async def next_event(self) -> tuple[str, Any] | None:
        """The next event as (name, data); None once the request answered (``result``); PilotError if it failed."""
        # one reader at a time: an accept loop may be reading while another task cancels
        async with self._reading:
            return await self._next_event()

    async def _next_event(self) -> tuple[str, Any] | None:
        while not self.ended:
            msg = await _read_message(self._reader)
            if msg is None:
                cancelled = self._cancelled
                self._finish()
                if cancelled:
                    return None
                raise PilotError("NO_DAEMON", "the daemon closed the connection", "is the daemon still running? see its log")
            if "event" in msg:
                data = msg.get("data")
                if isinstance(data, dict) and isinstance(data.get("cancel"), str):
                    self.token = data["cancel"]
                if msg["event"] in _QUIET_EVENTS or self._cancelled:
                    continue
                return msg["event"], data
            self._finish()
            err = reply_error(msg)
            if err:
                raise err
            self.result = msg.get("result")
        return None

    async def wait_for(self, name: str) -> None:
        while True:
            ev = await self.next_event()
            if ev is None:
                raise PilotError("INTERNAL", f"the request ended before {name}")
            if ev[0] == name:
                return

    def _finish(self) -> None:
        self.ended = True
        self._done.set()
        _close(self._writer)

    async def _drain(self) -> None:
        """Read to the daemon's final answer: it comes once a cancel let go of what the request held."""
        async with self._reading:
            while not self.ended:
                await self._next_event()

    async def cancel(self) -> None:
        """End it on the daemon side too: with its token (the daemon lets go, e.g. frees the port) or by leaving.

        A task reading events meanwhile (an accept loop) sees the final answer and ends; otherwise this task
        reads it. Either way this returns once the daemon let go (or after 2 s)."""
        if self.ended or self._cancelled:
            return
        self._cancelled = True
        if self.token is not None:
            try:
                await self._node.call("sdk_cancel", token=self.token)
                await asyncio.wait_for(self._done.wait() if self._reading.locked() else self._drain(), 2)
            except (PilotError, OSError, asyncio.TimeoutError):
                pass
        self._finish()


class ItemSubscription:
    """A service subscription (pub/sub events) as an async iterator, until its count, timeout, close() or an error."""

    def __init__(self, sub: Subscription, item_event: str) -> None:
        self._sub = sub
        self._item = item_event
        self._queued: list[Any] = []
        self.received = 0

    def __aiter__(self) -> "ItemSubscription":
        return self

    async def __anext__(self) -> Any:
        if self._queued:
            self.received += 1
            return self._queued.pop(0)
        while True:
            ev = await self._sub.next_event()
            if ev is None:
                raise StopAsyncIteration
            if ev[0] == self._item:
                self.received += 1
                return ev[1]

    async def close(self) -> None:
        await self._sub.cancel()

    async def __aenter__(self) -> "ItemSubscription":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class Listener:
    """Streams to one virtual port: ``async for reader, writer in listener``, accept(), or serve(handler)."""

    def __init__(self, node: "Node", port: int, sub: Subscription) -> None:
        self._node = node
        self.port = port
        self._sub = sub
        self._tasks: set[asyncio.Task] = set()

    async def accept(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        while True:
            ev = await self._sub.next_event()
            if ev is None:
                raise PilotError("CONNECTION_RESET", "the listener was closed")
            if ev[0] != "connection":
                continue
            c = ev[1]
            try:
                return await self._node._accept(c, self.port)
            except PilotError:
                continue  # expired or reset before we took it

    def __aiter__(self) -> "Listener":
        return self

    async def __anext__(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            return await self.accept()
        except PilotError:
            if self._sub.ended:
                raise StopAsyncIteration from None
            raise

    async def serve(self, handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]) -> None:
        """Run ``handler(reader, writer)`` as a task per stream until close() (like asyncio.start_server's callback)."""

        async def run(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            try:
                await handler(r, w)
            finally:
                _close(w)

        async for r, w in self:
            t = asyncio.ensure_future(run(r, w))
            self._tasks.add(t)
            t.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Stop accepting; returns once the port is free again. Open streams stay."""
        await self._sub.cancel()

    async def __aenter__(self) -> "Listener":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class DatagramSocket:
    """Datagrams on one virtual port: ``await recvfrom()``, and sendto() with this port as the source."""

    def __init__(self, node: "Node", port: int, sub: Subscription) -> None:
        self._node = node
        self.port = port
        self._sub = sub

    async def recvfrom(self) -> tuple[bytes, tuple[str, int]]:
        while True:
            ev = await self._sub.next_event()
            if ev is None:
                raise PilotError("CONNECTION_RESET", "the datagram port was closed")
            if ev[0] == "datagram":
                d = ev[1]
                return base64.b64decode(d["dataBase64"]), (d["from"], d["srcPort"])

    async def sendto(self, data: bytes | str, address: tuple[str, int]) -> None:
        await self._node.send(address[0], address[1], data, src_port=self.port)

    async def close(self) -> None:
        await self._sub.cancel()

    async def __aenter__(self) -> "DatagramSocket":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class Node:
    """The local daemon, asyncio flavour. Made by ``await pilot.aio.connect()``."""

    def __init__(self, socket: str | None = None) -> None:
        self.socket = socket_path(socket)
        self.address = ""
        self.hostname: str | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._connecting: asyncio.Lock | None = None
        self._pump: asyncio.Task | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, tuple[asyncio.Future, Callable[[str, Any], None] | None]] = {}
        self.messages = Messages(self)
        self.files = Files(self)
        self.pubsub = PubSub(self)
        self.tasks = Tasks(self)
        self.webhooks = Webhooks(self)
        self.networks = Networks(self)

    # ---- transport ----
    async def _ensure(self) -> asyncio.StreamWriter:
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._writer is None or self._writer.is_closing():
                self._reader, self._writer = await _open(self.socket)
                self._pump = asyncio.ensure_future(self._dispatch(self._reader))
            return self._writer

    async def _dispatch(self, reader: asyncio.StreamReader) -> None:
        err: PilotError = PilotError("NO_DAEMON", "the daemon closed the IPC connection", "check the daemon log")
        try:
            while (msg := await _read_message(reader)) is not None:
                p = self._pending.get(msg["id"]) if isinstance(msg["id"], int) else None
                if p is None:
                    continue
                fut, on_event = p
                if "event" in msg:
                    if on_event and msg["event"] not in _QUIET_EVENTS:
                        on_event(msg["event"], msg.get("data"))
                    continue
                del self._pending[msg["id"]]
                if fut.done():
                    continue
                e = reply_error(msg)
                if e:
                    fut.set_exception(e)
                else:
                    fut.set_result(msg.get("result"))
        except PilotError as e:
            err = e
        finally:
            if self._writer is not None:
                _close(self._writer)
                self._writer = None
            for fut, _ in self._pending.values():
                if not fut.done():
                    fut.set_exception(err)
            self._pending.clear()

    async def call(self, method: str, _on_event: Callable[[str, Any], None] | None = None, **params: Any) -> Any:
        """One request of the daemon's contract (pilot._contract.METHODS); events go to ``_on_event`` first."""
        req = next(self._ids)
        line = encode(req, method, params)
        writer = await self._ensure()
        fut = asyncio.get_running_loop().create_future()
        self._pending[req] = (fut, _on_event)
        writer.write(line)
        return await fut

    async def _run(self, c: ops.Call) -> Any:
        r = await self.call(c.method, **c.params)
        return c.post(r) if c.post else r

    async def _subscription(self, c: ops.Call, item_event: str, ready_event: str) -> ItemSubscription:
        sub = await Subscription.open(self, c.method, c.params)
        it = ItemSubscription(sub, item_event)
        # Return only once the daemon reports it live: an event published after that arrives.
        while True:
            ev = await sub.next_event()
            if ev is None or ev[0] == ready_event:
                return it
            if ev[0] == item_event:
                it._queued.append(ev[1])

    async def _send_file(self, c: ops.Call, on_progress: Callable[[dict], None] | None) -> Any:
        sub = await Subscription.open(self, c.method, c.params)
        try:
            while (ev := await sub.next_event()) is not None:
                if ev[0] == "progress" and on_progress:
                    on_progress(ev[1])
            return sub.result
        finally:
            await sub.cancel()

    async def _pipe(self, method: str, params: dict) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, dict]:
        line = encode(1, method, params)
        reader, writer = await _open(self.socket)
        try:
            writer.write(line)
            try:
                first = await reader.readuntil(b"\n")
            except asyncio.IncompleteReadError:
                raise PilotError("NO_DAEMON", "the daemon closed the connection before answering", "check the daemon log") from None
            except asyncio.LimitOverrunError:
                raise too_large() from None
            msg = parse_message(first)
            if msg is None or "event" in msg:
                raise PilotError("INTERNAL", "malformed reply from the daemon")
            err = reply_error(msg)
            if err:
                raise err
        except BaseException:
            _close(writer)
            raise
        # the bytes after the reply line stay in the reader: they are the stream's
        return reader, writer, msg["result"]

    async def _accept(self, c: dict, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer, r = await self._pipe("sdk_accept", {"id": c["id"]})
        writer.pilot = StreamInfo(r["pipe"], c["from"], None, c["remotePort"], self.address, port)  # type: ignore[attr-defined]
        return reader, writer

    async def pipe_error(self, writer: asyncio.StreamWriter) -> PilotError | None:
        """Why a stream ended: a raw pipe ends alike whether the peer finished or the stream failed (None: it finished)."""
        e = await self.call("sdk_pipe_error", pipe=writer.pilot.pipe)  # type: ignore[attr-defined]
        return PilotError.from_json(e) if isinstance(e, dict) else None

    async def reset(self, writer: asyncio.StreamWriter, code: str = "CONNECTION_RESET", message: str = "reset by the application") -> None:
        """Abort a stream: the peer's reads fail with ``code`` (closing the pipe alone would read as a clean end)."""
        try:
            await self.call("sdk_reset", pipe=writer.pilot.pipe, code=code, message=message)  # type: ignore[attr-defined]
        except PilotError:
            pass
        _close(writer)

    # ---- this node and its peers ----
    async def info(self) -> dict:
        return await self._run(ops.info())

    async def peers(self) -> list[dict]:
        return await self._run(ops.peers())

    async def find(self, target: str | None = None, *, tag: str | None = None, network: str | int | None = None, online: bool = False) -> dict:
        return await self._run(ops.find(target, tag, network, online))

    lookup = find

    async def discover(self, tag: str, network: str | int, online: bool = True) -> list[dict]:
        return (await self.find(tag=tag, network=network, online=online))["nodes"]

    async def set_tags(self, tags: list[str]) -> list[str]:
        return await self._run(ops.set_tags(tags))

    async def clear_tags(self) -> None:
        await self._run(ops.clear_tags())

    # ---- streams and paths (pilotctl connections / disconnect / traceroute / broadcast) ----
    async def connections(self) -> list[dict]:
        """Open streams: id, peer, ports, direction, bytes in/out, age, path."""
        return await self._run(ops.connections())

    async def disconnect(self, stream_id: int) -> dict:
        """Reset one stream (both ends see CONNECTION_RESET); NOT_FOUND if it is not open."""
        return await self._run(ops.disconnect(stream_id))

    async def traceroute(self, target: str, count: int = 3, timeout_ms: int = 3000) -> dict:
        """The path to ``target``: direct or relay (which uplink, which rendezvous) and the RTT of each leg."""
        return await self._run(ops.traceroute(target, count, timeout_ms))

    async def broadcast(self, network: str | int, port: int, data: bytes | str) -> dict:
        """One datagram to every online member of ``network`` the policy lets us reach on ``port``; counts per outcome."""
        return await self._run(ops.broadcast(network, port, data))

    async def ping(self, target: str, count: int = 1, interval_ms: int = 200, timeout_ms: int = 3000, on_probe: Callable[[dict], None] | None = None) -> dict:
        c = ops.ping(target, count, interval_ms, timeout_ms)
        return await self.call(c.method, (lambda e, d: on_probe(d)) if on_probe else None, **c.params)

    # ---- trust ----
    async def handshake(self, target: str, reason: str | None = None) -> dict:
        return await self._run(ops.handshake(target, reason))

    async def pending(self) -> dict:
        return await self._run(ops.pending())

    async def approve(self, node: str) -> dict:
        return await self._run(ops.approve(node))

    async def reject(self, node: str, reason: str | None = None) -> dict:
        return await self._run(ops.reject(node, reason))

    async def trusted(self) -> list[dict]:
        return await self._run(ops.trusted())

    async def untrust(self, node: str) -> dict:
        return await self._run(ops.untrust(node))

    # ---- streams and datagrams ----
    async def dial(self, target: str, port: int, timeout: float = 10.0) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A stream to ``port`` on ``target`` as (reader, writer) once the peer took it; ``writer.pilot`` is a StreamInfo.
        PilotError NOT_TRUSTED, CONNECTION_REFUSED, NOT_FOUND, TIMEOUT, ... otherwise."""
        c = ops.dial(target, port, timeout)
        reader, writer, r = await self._pipe(c.method, c.params)
        writer.pilot = StreamInfo(r["pipe"], r["remoteAddress"], r.get("remoteHostname"), r["remotePort"], self.address, r["localPort"])  # type: ignore[attr-defined]
        return reader, writer

    async def listen(self, port: int) -> Listener:
        sub = await Subscription.open(self, "sdk_listen", {"port": ops.check_port(port)})
        await sub.wait_for("listening")
        return Listener(self, port, sub)

    async def bind(self, port: int) -> DatagramSocket:
        sub = await Subscription.open(self, "sdk_recv", {"port": ops.check_port(port)})
        await sub.wait_for("listening")
        return DatagramSocket(self, port, sub)

    async def send(self, target: str, port: int, data: bytes | str, src_port: int | None = None) -> None:
        await self._run(ops.send(target, port, data, src_port))

    async def close(self) -> None:
        if self._writer is not None:
            _close(self._writer)
        if self._pump is not None:
            try:
                await self._pump
            except Exception:  # noqa: BLE001 - closing
                pass

    async def __aenter__(self) -> "Node":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"<pilot.aio.Node {self.address} ({self.hostname}) via {self.socket}>"


async def connect(socket: str | None = None) -> Node:
    """The local daemon: ``socket``, else $PILOT_SOCKET, else pilotctl's default. PilotError NO_DAEMON if it is not there."""
    node = Node(socket)
    try:
        me = await node.info()
    except BaseException:
        await node.close()
        raise
    node.address = me["address"]
    node.hostname = me.get("hostname")
    return node


__all__ = ["connect", "Node", "Listener", "DatagramSocket", "ItemSubscription", "StreamInfo", "PilotError"]
