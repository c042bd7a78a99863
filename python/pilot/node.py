"""The blocking API: pilot.connect() -> Node, its sockets, listeners and subscriptions (model: src/sdk/node.ts).

Requests share one connection to the daemon (one at a time, under a lock); each subscription (listen, datagrams,
pub/sub, file progress) and each stream gets a connection of its own, as the TypeScript SDK does.
"""

from __future__ import annotations

import base64
import io
import socket
import threading
from typing import Any, Callable, Iterator

from . import _ops as ops
from ._wire import LineSocket, encode, parse_message, reply_error, socket_path, unix_connect
from .errors import PilotError, reset_error
from .services import Files, Messages, Networks, PubSub, Tasks, Webhooks

_QUIET_EVENTS = ("alive", "keepalive")


def _closed_early() -> PilotError:
    return PilotError("NO_DAEMON", "the daemon closed the connection", "is the daemon still running? see its log")


class Subscription:
    """A long-running request on its own connection: events until the final answer, or cancel()."""

    def __init__(self, node: "Node", method: str, params: dict) -> None:
        self._node = node
        self._conn = LineSocket(unix_connect(node.socket))
        self._conn.send(encode(1, method, params))
        self.token: str | None = None
        self.result: Any = None
        self.ended = False
        self._cancelled = False
        # one reader at a time: an accept loop may read while another thread cancels
        self._reading = threading.Lock()

    def next_event(self, timeout: float | None = None) -> tuple[str, Any] | None:
        """The next event as (name, data); None once the request answered (``result``); PilotError if it failed.
        ``timeout`` seconds without an event raise PilotError TIMEOUT (the subscription stays usable)."""
        with self._reading:
            return self._next_event(timeout)

    def _next_event(self, timeout: float | None) -> tuple[str, Any] | None:
        if self.ended:
            return None
        try:
            self._conn.sock.settimeout(timeout)
        except OSError:
            pass
        while True:
            try:
                msg = self._conn.read_message()
            except socket.timeout:
                raise PilotError("TIMEOUT", f"nothing arrived within {timeout} s") from None
            except OSError:
                msg = None
            if msg is None:
                cancelled = self._cancelled
                self._finish()
                if cancelled:
                    return None
                raise _closed_early()
            if "event" in msg:
                data = msg.get("data")
                if isinstance(data, dict) and isinstance(data.get("cancel"), str):
                    self.token = data["cancel"]
                if msg["event"] in _QUIET_EVENTS:
                    continue
                if self._cancelled:
                    continue
                return msg["event"], data
            self._finish()
            err = reply_error(msg)
            if err:
                raise err
            self.result = msg.get("result")
            return None

    def _finish(self) -> None:
        self.ended = True
        self._conn.close()

    def cancel(self) -> None:
        """End it on the daemon side too: with its token (the daemon lets go, e.g. frees the port) or by leaving.

        Another thread blocked in next_event() (an accept loop) sees the final answer and ends; otherwise this
        thread reads it. Either way this returns once the daemon let go (or after 2 s)."""
        if self.ended or self._cancelled:
            return
        self._cancelled = True
        if self.token is not None:
            try:
                self._node.call("sdk_cancel", token=self.token)
            except PilotError:
                pass
            if self._reading.acquire(timeout=2.0):
                try:
                    while not self.ended:
                        self._next_event(2.0)
                except (PilotError, OSError):
                    pass
                finally:
                    self._reading.release()
        self._finish()


class ItemSubscription:
    """A service subscription (pub/sub events) as an iterator, until its count, timeout, close() or an error."""

    def __init__(self, sub: Subscription, item_event: str, ready_event: str) -> None:
        self._sub = sub
        self._item = item_event
        self._queued: list[Any] = []
        self.received = 0
        # Return only once the daemon reports it live: an event published after that arrives.
        while True:
            ev = sub.next_event()
            if ev is None or ev[0] == ready_event:
                break
            if ev[0] == item_event:
                self._queued.append(ev[1])

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        if self._queued:
            self.received += 1
            return self._queued.pop(0)
        while True:
            ev = self._sub.next_event()
            if ev is None:
                raise StopIteration
            if ev[0] == self._item:
                self.received += 1
                return ev[1]

    def next(self, timeout: float | None = None) -> Any:
        """The next item within ``timeout`` seconds (PilotError TIMEOUT otherwise); StopIteration at the end."""
        if self._queued:
            return self.__next__()
        while True:
            ev = self._sub.next_event(timeout)
            if ev is None:
                raise StopIteration
            if ev[0] == self._item:
                self.received += 1
                return ev[1]

    def close(self) -> None:
        self._sub.cancel()

    def __enter__(self) -> "ItemSubscription":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _PipeIO(io.RawIOBase):
    def __init__(self, s: "PilotSocket", mode: str) -> None:
        super().__init__()
        self._s = s
        self._mode = mode

    def readable(self) -> bool:
        return "r" in self._mode

    def writable(self) -> bool:
        return "w" in self._mode

    def readinto(self, b: Any) -> int:
        return self._s.recv_into(b)

    def write(self, b: Any) -> int:
        self._s.sendall(b)
        return len(b)

    def close(self) -> None:
        if not self.closed:
            super().close()
            self._s._decref_io()


class PilotSocket:
    """One overlay stream, used like a connected TCP socket: sendall/recv/makefile/shutdown/close, a context manager.

    Failures are PilotErrors with the daemon's codes (the stream's reason is asked of the daemon when the pipe ends).
    """

    def __init__(self, node: "Node", conn: LineSocket, result: dict, remote_address: str, remote_port: int) -> None:
        self._node = node
        self._sock = conn.sock
        self._prefix = conn.take_rest()
        self.pipe: str = result["pipe"]
        self.remote_address = remote_address
        self.remote_hostname: str | None = result.get("remoteHostname")
        self.remote_port = remote_port
        self.local_address = node.address
        self.local_port: int = result["localPort"]
        self._closed = False
        self._eof = False
        # files from makefile() keep the pipe open after close(), as with socket.socket (http.client relies on it)
        self._io_refs = 0

    # ---- reading ----
    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        if self._prefix:
            out, self._prefix = self._prefix[:bufsize], self._prefix[bufsize:]
            return out
        try:
            data = self._sock.recv(bufsize, flags)
        except (ConnectionResetError, BrokenPipeError):
            raise self._why() or reset_error() from None
        if not data and bufsize > 0 and not self._eof:
            # A raw pipe ends the same way whether the peer finished or the stream failed: ask (once).
            err = self._why()
            if err:
                raise err
            self._eof = True
        return data

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        view = memoryview(buffer).cast("B")
        n = nbytes or len(view)
        data = self.recv(n, flags)
        view[: len(data)] = data
        return len(data)

    # ---- writing ----
    def send(self, data: Any, flags: int = 0) -> int:
        try:
            return self._sock.send(data, flags)
        except (ConnectionResetError, BrokenPipeError):
            raise self._why() or reset_error() from None

    def sendall(self, data: Any, flags: int = 0) -> None:
        try:
            self._sock.sendall(data, flags)
        except (ConnectionResetError, BrokenPipeError):
            raise self._why() or reset_error() from None

    def _why(self) -> PilotError | None:
        try:
            e = self._node.call("sdk_pipe_error", pipe=self.pipe)
        except PilotError:
            return None
        return PilotError.from_json(e) if isinstance(e, dict) else None

    # ---- the rest of the socket surface ----
    def makefile(self, mode: str = "r", buffering: int | None = None, *, encoding: str | None = None, errors: str | None = None, newline: str | None = None) -> Any:
        """Like socket.makefile: 'rb', 'wb', 'rwb' or text modes ('r', 'w') with encoding."""
        rw = "".join(c for c in "rw" if c in mode)
        raw = _PipeIO(self, rw)
        self._io_refs += 1
        if buffering == 0:
            if "b" not in mode:
                raise ValueError("unbuffered streams must be binary")
            return raw
        size = io.DEFAULT_BUFFER_SIZE if buffering in (None, -1) else buffering
        if rw == "rw":
            buf: Any = io.BufferedRWPair(raw, raw, size)
        elif rw == "r":
            buf = io.BufferedReader(raw, size)
        else:
            buf = io.BufferedWriter(raw, size)
        if "b" in mode:
            return buf
        return io.TextIOWrapper(buf, encoding, errors, newline, write_through=rw == "w")

    def shutdown(self, how: int = socket.SHUT_WR) -> None:
        """SHUT_WR ends our direction only (the peer reads to its end and may still answer)."""
        try:
            self._sock.shutdown(how)
        except OSError:
            pass

    def reset(self, code: str = "CONNECTION_RESET", message: str = "reset by the application") -> None:
        """Abort the stream: the peer's reads fail with ``code`` (closing the pipe alone would read as a clean end)."""
        try:
            self._node.call("sdk_reset", pipe=self.pipe, code=code, message=message)
        except PilotError:
            pass
        self.close()

    def close(self) -> None:
        """Close the pipe, once the files made by makefile() are closed too (as socket.socket does)."""
        self._closed = True
        if self._io_refs <= 0:
            try:
                self._sock.close()
            except OSError:
                pass

    def _decref_io(self) -> None:
        self._io_refs -= 1
        if self._closed and self._io_refs <= 0:
            self.close()

    def settimeout(self, t: float | None) -> None:
        self._sock.settimeout(t)

    def gettimeout(self) -> float | None:
        return self._sock.gettimeout()

    def setblocking(self, flag: bool) -> None:
        self._sock.setblocking(flag)

    def fileno(self) -> int:
        return self._sock.fileno()

    def getpeername(self) -> tuple[str, int]:
        return (self.remote_address, self.remote_port)

    def getsockname(self) -> tuple[str, int]:
        return (self.local_address, self.local_port)

    def setsockopt(self, *args: Any) -> None:
        pass  # TCP options mean nothing here (the overlay sends at once)

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> "PilotSocket":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<PilotSocket {self.local_address}:{self.local_port} -> {self.remote_address}:{self.remote_port}>"


class Listener:
    """Streams to one virtual port of this node: accept() (blocking), iteration, or serve_forever(handler)."""

    def __init__(self, node: "Node", port: int) -> None:
        self._node = node
        self.port = port
        self._sub = node._subscribe("sdk_listen", {"port": port})
        self._lock = threading.Lock()
        # Return once the daemon routes the port's streams to us (a taken port is refused here).
        while True:
            ev = self._sub.next_event()
            if ev is None:
                raise PilotError("INTERNAL", "the listener ended before it started")
            if ev[0] == "listening":
                break

    def accept(self, timeout: float | None = None) -> PilotSocket:
        """The next stream, as a socket; PilotError TIMEOUT after ``timeout`` seconds without one."""
        with self._lock:
            while True:
                ev = self._sub.next_event(timeout)
                if ev is None:
                    raise PilotError("CONNECTION_RESET", "the listener was closed")
                if ev[0] != "connection":
                    continue
                c = ev[1]
                try:
                    return self._node._accept(c)
                except PilotError:
                    continue  # it expired or was reset before we took it: wait for the next

    def __iter__(self) -> Iterator[PilotSocket]:
        while not self._sub.ended:
            try:
                yield self.accept()
            except PilotError:
                if self._sub.ended:
                    return
                raise

    def serve_forever(self, handler: Callable[[PilotSocket], None]) -> None:
        """Run ``handler(sock)`` in a thread per stream (the socket is closed after it) until close()."""

        def run(s: PilotSocket) -> None:
            with s:
                handler(s)

        for s in self:
            threading.Thread(target=run, args=(s,), daemon=True).start()

    def close(self) -> None:
        """Stop accepting; returns once the port is free again. Open streams stay."""
        self._sub.cancel()

    def __enter__(self) -> "Listener":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class DatagramSocket:
    """Datagrams on one virtual port: recvfrom(), and sendto() with this port as the source (replies come back here)."""

    def __init__(self, node: "Node", port: int) -> None:
        self._node = node
        self.port = port
        self._sub = node._subscribe("sdk_recv", {"port": port})
        while True:
            ev = self._sub.next_event()
            if ev is None:
                raise PilotError("INTERNAL", "the datagram port closed before it opened")
            if ev[0] == "listening":
                break

    def recvfrom(self, timeout: float | None = None) -> tuple[bytes, tuple[str, int]]:
        """The next datagram and its sender (virtual address, source port)."""
        while True:
            ev = self._sub.next_event(timeout)
            if ev is None:
                raise PilotError("CONNECTION_RESET", "the datagram port was closed")
            if ev[0] == "datagram":
                d = ev[1]
                return base64.b64decode(d["dataBase64"]), (d["from"], d["srcPort"])

    def sendto(self, data: bytes | str, address: tuple[str, int]) -> None:
        self._node.send(address[0], address[1], data, src_port=self.port)

    def close(self) -> None:
        self._sub.cancel()

    def __enter__(self) -> "DatagramSocket":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Node:
    """The local daemon, as an agent uses it. Made by pilot.connect()."""

    def __init__(self, socket: str | None = None) -> None:
        self.socket = socket_path(socket)
        self._conn: LineSocket | None = None
        self._lock = threading.Lock()
        self._next_id = 1
        self.messages = Messages(self)
        self.files = Files(self)
        self.pubsub = PubSub(self)
        self.tasks = Tasks(self)
        self.webhooks = Webhooks(self)
        self.networks = Networks(self)
        me = self.info()
        self.address: str = me["address"]
        self.hostname: str | None = me.get("hostname")

    # ---- transport ----
    def call(self, method: str, _on_event: Callable[[str, Any], None] | None = None, **params: Any) -> Any:
        """One request of the daemon's contract (pilot._contract.METHODS); events go to ``_on_event`` first."""
        with self._lock:
            if self._conn is None:
                self._conn = LineSocket(unix_connect(self.socket))
            req = self._next_id
            self._next_id += 1
            try:
                self._conn.send(encode(req, method, params))
                while True:
                    msg = self._conn.read_message()
                    if msg is None:
                        raise PilotError("NO_DAEMON", "the daemon closed the IPC connection", "check the daemon log")
                    if msg["id"] != req:
                        continue
                    if "event" in msg:
                        if _on_event and msg["event"] not in _QUIET_EVENTS:
                            _on_event(msg["event"], msg.get("data"))
                        continue
                    err = reply_error(msg)
                    if err:
                        raise err
                    return msg.get("result")
            except (PilotError, OSError) as e:
                if not isinstance(e, PilotError) or e.code in ("NO_DAEMON", "FRAME_TOO_LARGE"):
                    self._conn.close()
                    self._conn = None
                if isinstance(e, OSError):
                    raise PilotError("NO_DAEMON", f"the IPC connection failed ({e})", "check the daemon log") from None
                raise

    def _run(self, c: ops.Call) -> Any:
        r = self.call(c.method, **c.params)
        return c.post(r) if c.post else r

    def _subscribe(self, method: str, params: dict) -> Subscription:
        return Subscription(self, method, params)

    def _subscription(self, c: ops.Call, item_event: str, ready_event: str) -> ItemSubscription:
        return ItemSubscription(self._subscribe(c.method, c.params), item_event, ready_event)

    def _send_file(self, c: ops.Call, on_progress: Callable[[dict], None] | None) -> Any:
        sub = self._subscribe(c.method, c.params)
        try:
            while (ev := sub.next_event()) is not None:
                if ev[0] == "progress" and on_progress:
                    on_progress(ev[1])
            return sub.result
        finally:
            sub.cancel()

    def _pipe(self, method: str, params: dict) -> tuple[LineSocket, dict]:
        conn = LineSocket(unix_connect(self.socket))
        try:
            conn.send(encode(1, method, params))
            line = conn.read_line()
        except BaseException:
            conn.close()
            raise
        msg = parse_message(line) if line is not None else None
        if msg is None or "event" in msg:
            conn.close()
            if line is None:
                raise PilotError("NO_DAEMON", "the daemon closed the connection before answering", "check the daemon log")
            raise PilotError("INTERNAL", "malformed reply from the daemon")
        err = reply_error(msg)
        if err:
            conn.close()
            raise err
        return conn, msg["result"]

    def _accept(self, c: dict) -> PilotSocket:
        conn, result = self._pipe("sdk_accept", {"id": c["id"]})
        return PilotSocket(self, conn, result, c["from"], c["remotePort"])

    # ---- this node and its peers ----
    def info(self) -> dict:
        return self._run(ops.info())

    def peers(self) -> list[dict]:
        return self._run(ops.peers())

    def find(self, target: str | None = None, *, tag: str | None = None, network: str | int | None = None, online: bool = False) -> dict:
        """Registry lookup of a hostname or address; with tag=: nodes with that tag (in ``network``, or public ones)."""
        return self._run(ops.find(target, tag, network, online))

    lookup = find

    def discover(self, tag: str, network: str | int, online: bool = True) -> list[dict]:
        """Members of ``network`` with ``tag`` (online ones unless online=False); addresses are N:…."""
        return self.find(tag=tag, network=network, online=online)["nodes"]

    def set_tags(self, tags: list[str]) -> list[str]:
        return self._run(ops.set_tags(tags))

    def clear_tags(self) -> None:
        self._run(ops.clear_tags())

    # ---- streams and paths (pilotctl connections / disconnect / traceroute / broadcast) ----
    def connections(self) -> list[dict]:
        """Open streams: id, peer, ports, direction, bytes in/out, age, path."""
        return self._run(ops.connections())

    def disconnect(self, stream_id: int) -> dict:
        """Reset one stream (both ends see CONNECTION_RESET); NOT_FOUND if it is not open."""
        return self._run(ops.disconnect(stream_id))

    def traceroute(self, target: str, count: int = 3, timeout_ms: int = 3000) -> dict:
        """The path to ``target``: direct or relay (which uplink, which rendezvous) and the RTT of each leg."""
        return self._run(ops.traceroute(target, count, timeout_ms))

    def broadcast(self, network: str | int, port: int, data: bytes | str) -> dict:
        """One datagram to every online member of ``network`` the policy lets us reach on ``port``; counts per outcome."""
        return self._run(ops.broadcast(network, port, data))

    def ping(self, target: str, count: int = 1, interval_ms: int = 200, timeout_ms: int = 3000, on_probe: Callable[[dict], None] | None = None) -> dict:
        c = ops.ping(target, count, interval_ms, timeout_ms)
        return self.call(c.method, (lambda e, d: on_probe(d)) if on_probe else None, **c.params)

    # ---- trust ----
    def handshake(self, target: str, reason: str | None = None) -> dict:
        """Ask ``target`` for mutual trust: status 'trusted' if it had asked us too, else 'pending'."""
        return self._run(ops.handshake(target, reason))

    def pending(self) -> dict:
        return self._run(ops.pending())

    def approve(self, node: str) -> dict:
        return self._run(ops.approve(node))

    def reject(self, node: str, reason: str | None = None) -> dict:
        return self._run(ops.reject(node, reason))

    def trusted(self) -> list[dict]:
        return self._run(ops.trusted())

    def untrust(self, node: str) -> dict:
        return self._run(ops.untrust(node))

    # ---- streams and datagrams ----
    def dial(self, target: str, port: int, timeout: float = 10.0) -> PilotSocket:
        """A stream to ``port`` on ``target`` once the peer took it; PilotError NOT_TRUSTED, CONNECTION_REFUSED,
        NOT_FOUND, TIMEOUT, ... otherwise."""
        c = ops.dial(target, port, timeout)
        conn, r = self._pipe(c.method, c.params)
        return PilotSocket(self, conn, r, r["remoteAddress"], r["remotePort"])

    def listen(self, port: int) -> Listener:
        return Listener(self, ops.check_port(port))

    def bind(self, port: int) -> DatagramSocket:
        return DatagramSocket(self, ops.check_port(port))

    def send(self, target: str, port: int, data: bytes | str, src_port: int | None = None) -> None:
        """One datagram (at most about 1180 bytes) to ``target``:``port``."""
        self._run(ops.send(target, port, data, src_port))

    def close(self) -> None:
        with self._lock:
            if self._conn:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> "Node":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<pilot.Node {self.address} ({self.hostname}) via {self.socket}>"


def connect(socket: str | None = None) -> Node:
    """The local daemon: ``socket``, else $PILOT_SOCKET, else pilotctl's default. PilotError NO_DAEMON if it is not there."""
    return Node(socket)
