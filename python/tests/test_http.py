"""HTTP between Python and TypeScript agents over Pilot streams, both ways, with the standard library."""

from __future__ import annotations

import http.server
import json
import unittest

import pilot
from pilot import PilotError
from pilot.http import HTTPConnection, get, serve_http, serve_wsgi, target_from_host

from . import env
from .env import needs_daemons, ts_peer


class Hello(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = json.dumps({"path": self.path, "from": self.client_address[0]}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@needs_daemons
class HttpTest(env.ThreeNodes):
    def test_python_server_fetched_by_typescript(self):
        with serve_http(self.a, 8200, Hello):
            r = ts_peer("fetch", env.B_SOCKET, "http://py-alpha:8200/status?x=1")
        self.assertEqual(r["status"], 200)
        self.assertEqual(r["type"], "application/json")
        self.assertEqual(json.loads(r["body"]), {"path": "/status?x=1", "from": env.B})

    def test_python_fetches_typescript_server(self):
        status, headers, body = get(self.b, f"http://py-alpha:{env.TS_HTTP_PORT}/hello")
        self.assertEqual((status, body), (200, b"ts says hi to /hello"))
        dashed = env.A.replace(":", "-").replace(".", "-").lower()
        self.assertEqual(target_from_host(dashed + ".pilot"), env.A)
        status, _, body = get(self.b, f"http://{dashed}:{env.TS_HTTP_PORT}/by-address")
        self.assertEqual((status, body), (200, b"ts says hi to /by-address"))

    def test_keep_alive_and_wsgi(self):
        def app(environ, start_response):
            start_response("200 OK", [("content-type", "text/plain")])
            return [f"wsgi {environ['PATH_INFO']} from {environ['REMOTE_ADDR']}".encode()]

        with serve_wsgi(self.a, 8201, app):
            conn = HTTPConnection(self.b, "py-alpha", 8201)
            for p in ("/one", "/two"):
                conn.request("GET", p)
                res = conn.getresponse()
                self.assertEqual(res.read(), f"wsgi {p} from {env.B}".encode())
            conn.close()

    def test_https_refused(self):
        with self.assertRaises(PilotError) as cm:
            get(self.b, "https://py-alpha/")
        self.assertEqual(cm.exception.code, "BAD_ARGUMENT")


if __name__ == "__main__":
    unittest.main()
