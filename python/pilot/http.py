"""HTTP over Pilot streams with the standard library (model: src/sdk/http.ts).

Serve:  ``serve_http(node, 8080, MyHandler)`` with any http.server.BaseHTTPRequestHandler subclass, or
        ``serve_wsgi(node, 8080, app)`` with a WSGI application.
Fetch:  ``HTTPConnection(node, "alpha", 8080)`` is http.client.HTTPConnection over an overlay stream, and
        ``get(node, "http://alpha:8080/status")`` does one request.

No TLS: the overlay already encrypts and authenticates every peer (Noise IK), so URLs are http://.
An address in a URL is written with dashes (0-0000-0000-002a, optionally with .pilot), as in the TypeScript SDK.
"""

from __future__ import annotations

import http.client
import re
import threading
import urllib.parse
from typing import Any, Callable

from .errors import PilotError
from .node import Listener, Node, PilotSocket

_DASHED = re.compile(r"^(\d{1,5})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{4})$", re.I)


def target_from_host(host: str) -> str:
    """The Pilot target a URL's host names (hostname, node id, or a dashed address)."""
    h = host.strip()
    if h.startswith("[") and h.endswith("]"):
        h = h[1:-1]
    h = re.sub(r"\.pilot\.?$", "", h, flags=re.I)
    m = _DASHED.match(h)
    return f"{m[1]}:{m[2].upper()}.{m[3].upper()}.{m[4].upper()}" if m else h


class HTTPConnection(http.client.HTTPConnection):
    """http.client.HTTPConnection whose socket is a stream to ``target``:``port`` (keep-alive works as usual)."""

    def __init__(self, node: Node, target: str, port: int = 80, timeout: float = 10.0) -> None:
        super().__init__(target_from_host(target), port, timeout=timeout)
        self._node = node

    def connect(self) -> None:
        self.sock = self._node.dial(self.host, self.port, timeout=self.timeout if isinstance(self.timeout, (int, float)) else 10.0)


def request(node: Node, method: str, url: str, body: bytes | str | None = None, headers: dict | None = None, timeout: float = 10.0) -> tuple[int, dict, bytes]:
    """One request to an http:// URL whose host is a Pilot target; returns (status, headers, body)."""
    u = urllib.parse.urlsplit(url)
    if u.scheme != "http":
        raise PilotError("BAD_ARGUMENT", f"{u.scheme}:// is not used over Pilot", "use http://: the overlay already encrypts and authenticates every peer (Noise IK)")
    conn = HTTPConnection(node, u.hostname or "", u.port or 80, timeout)
    try:
        conn.request(method, (u.path or "/") + (f"?{u.query}" if u.query else ""), body=body, headers=headers or {})
        res = conn.getresponse()
        return res.status, dict(res.getheaders()), res.read()
    finally:
        conn.close()


def get(node: Node, url: str, timeout: float = 10.0) -> tuple[int, dict, bytes]:
    return request(node, "GET", url, timeout=timeout)


class _Server:
    """What a BaseHTTPRequestHandler asks of its server (names only: nothing here is a TCP server)."""

    def __init__(self, node: Node, port: int) -> None:
        self.server_name = node.hostname or node.address
        self.server_port = port
        self.server_address = (node.address, port)


class HTTPService:
    """An HTTP server on a virtual port: a thread accepts, a thread per connection runs the handler."""

    def __init__(self, listener: Listener, handle: Callable[[PilotSocket], None]) -> None:
        self.listener = listener
        self.port = listener.port
        self._thread = threading.Thread(target=listener.serve_forever, args=(handle,), daemon=True, name=f"pilot-http-{listener.port}")
        self._thread.start()

    def close(self) -> None:
        """Stop accepting (requests under way finish); returns once the port is free."""
        self.listener.close()
        self._thread.join(5)

    def __enter__(self) -> "HTTPService":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve_http(node: Node, port: int, handler_class: Any) -> HTTPService:
    """Serve ``handler_class`` (an http.server.BaseHTTPRequestHandler subclass) on virtual ``port`` of ``node``."""
    server = _Server(node, port)

    def handle(sock: PilotSocket) -> None:
        try:
            handler_class(sock, sock.getpeername(), server)
        except (PilotError, OSError):
            pass  # the peer went away mid-request: nothing to answer
        sock.shutdown()

    return HTTPService(node.listen(port), handle)


def serve_wsgi(node: Node, port: int, app: Callable) -> HTTPService:
    """Serve a WSGI application on virtual ``port`` (wsgiref's handler over each stream)."""
    from wsgiref.simple_server import WSGIRequestHandler

    server = _Server(node, port)
    server.get_app = lambda: app  # type: ignore[attr-defined]
    server.base_environ = {  # type: ignore[attr-defined]
        "SERVER_NAME": server.server_name,
        "GATEWAY_INTERFACE": "CGI/1.1",
        "SERVER_PORT": str(port),
        "REMOTE_HOST": "",
        "CONTENT_LENGTH": "",
        "SCRIPT_NAME": "",
    }

    class Handler(WSGIRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    def handle(sock: PilotSocket) -> None:
        try:
            Handler(sock, sock.getpeername(), server)
        except (PilotError, OSError):
            pass
        sock.shutdown()

    return HTTPService(node.listen(port), handle)


__all__ = ["HTTPConnection", "HTTPService", "get", "request", "serve_http", "serve_wsgi", "target_from_host"]
