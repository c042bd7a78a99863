"""The daemon's IPC wire format (src/ipc/protocol.ts), shared by the sync and asyncio APIs.

request  {"id":1,"method":"info","params":{}}
reply    {"id":1,"ok":true,"result":{...}} | {"id":1,"ok":false,"error":{code,message,hint}}
event    {"id":1,"event":"datagram","data":{...}} (zero or more before the reply)
"""

from __future__ import annotations

import json
import os
import socket
import stat

from ._contract import METHODS
from .errors import PilotError

#: A line longer than this is hostile or broken (src/ipc/protocol.ts MAX_LINE).
MAX_LINE = 1 << 20

CONNECT_HINT = "start it with: pilotctl daemon start (or pass pilot.connect(socket=...) / set PILOT_SOCKET)"


def default_home(env: os._Environ | dict | None = None) -> str:
    env = os.environ if env is None else env
    return env.get("PILOT_HOME") or os.path.join(os.path.expanduser("~"), ".pilot")


def socket_path(explicit: str | None = None, env: os._Environ | dict | None = None) -> str:
    """The socket pilotctl would use: ``socket``, else $PILOT_SOCKET, else the default (src/ipc/socket-path.ts)."""
    env = os.environ if env is None else env
    if explicit:
        return explicit
    if env.get("PILOT_SOCKET"):
        return env["PILOT_SOCKET"]
    home = default_home(env)
    home_sock = os.path.join(os.path.abspath(home), "pilot.sock")
    xdg = env.get("XDG_RUNTIME_DIR")
    # The runtime directory serves the default home only (two daemons with their own homes must not share a socket).
    if xdg and os.path.isabs(xdg) and os.path.abspath(home) == os.path.join(os.path.expanduser("~"), ".pilot"):
        first = os.path.join(xdg, "pilot", "pilot.sock")
    else:
        first = home_sock
    # The daemon may run without the session's runtime directory (a system unit, sudo): then it listens in the home.
    if os.path.exists(first) or not os.path.exists(home_sock):
        return first
    return home_sock


def _client_owners() -> list[int]:
    me = os.geteuid()
    sudo = os.environ.get("SUDO_UID", "")
    if me == 0 and sudo.isdigit() and len(sudo) <= 10:
        return [me, int(sudo)]
    return [me]


def check_socket(path: str) -> None:
    """Refuse a socket that is not this user's daemon's (src/ipc/socket-guard.ts): a planted one would get our traffic."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    fix = (
        f"if no daemon of yours runs, remove it (rm {path}) and start yours: pilotctl daemon start; "
        "or point at your daemon with --socket / PILOT_SOCKET"
    )
    if stat.S_ISLNK(st.st_mode):
        raise PilotError("UNSAFE_SOCKET", f"{path} is a symlink (to {os.readlink(path)}); a symlinked IPC socket is refused", fix)
    if not stat.S_ISSOCK(st.st_mode):
        raise PilotError("UNSAFE_SOCKET", f"{path} is not a unix socket", fix)
    if st.st_uid not in _client_owners():
        raise PilotError(
            "UNSAFE_SOCKET",
            f"{path} belongs to uid {st.st_uid}, not to us (uid {os.geteuid()}): another local user may have planted it",
            fix,
        )


def no_daemon(path: str, why: str) -> PilotError:
    return PilotError("NO_DAEMON", f"cannot reach the daemon at {path} ({why})", CONNECT_HINT)


def errno_name(err: OSError) -> str:
    import errno

    return errno.errorcode.get(err.errno or 0, str(err)) if err.errno else str(err)


def encode(req_id: int, method: str, params: dict | None) -> bytes:
    """One request line; the method and parameter names are checked against the contract first."""
    if method not in METHODS:
        raise PilotError("BAD_ARGUMENT", f"unknown IPC method {method!r}", "see pilot._contract.METHODS")
    params = {k: v for k, v in (params or {}).items() if v is not None}
    unknown = [k for k in params if k not in METHODS[method]]
    if unknown:
        raise PilotError("BAD_ARGUMENT", f"{method} takes no parameter {unknown[0]!r}", f"its parameters: {', '.join(METHODS[method]) or 'none'}")
    return (json.dumps({"id": req_id, "method": method, "params": params}, separators=(",", ":")) + "\n").encode()


def parse_message(line: bytes | str) -> dict | None:
    """One line from the daemon, checked for shape (untrusted input); None if malformed."""
    try:
        m = json.loads(line)
    except ValueError:
        return None
    if not isinstance(m, dict):
        return None
    if not isinstance(m.get("id"), (int, str)) or isinstance(m.get("id"), bool):
        return None
    if isinstance(m.get("event"), str):
        return m
    if m.get("ok") is True:
        return m
    if m.get("ok") is not False:
        return None
    e = m.get("error")
    if not isinstance(e, dict) or not isinstance(e.get("code"), str) or not isinstance(e.get("message"), str):
        return None
    if e.get("hint") is not None and not isinstance(e.get("hint"), str):
        return None
    return m


def reply_error(msg: dict) -> PilotError | None:
    if "event" in msg or msg.get("ok"):
        return None
    return PilotError.from_json(msg["error"])


def too_large() -> PilotError:
    return PilotError("FRAME_TOO_LARGE", f"IPC line longer than {MAX_LINE} bytes")


def unix_connect(path: str) -> socket.socket:
    """A blocking connection to the daemon's socket; NO_DAEMON (with the fix) if nothing answers there."""
    check_socket(path)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
    except OSError as err:
        s.close()
        raise no_daemon(path, errno_name(err)) from None
    return s


class LineSocket:
    """A blocking unix socket read as lines, whose remaining bytes can be handed on (a pipe after its reply line)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_line(self) -> bytes | None:
        """The next non-empty line, or None at the end of the connection."""
        while True:
            nl = self.buf.find(b"\n")
            if nl != -1:
                line, self.buf = self.buf[:nl], self.buf[nl + 1 :]
                if line.strip():
                    return line
                continue
            if len(self.buf) > MAX_LINE:
                raise too_large()
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buf += chunk

    def read_message(self) -> dict | None:
        """The next well-formed message (malformed lines are skipped, as the TypeScript client does), None at the end."""
        while True:
            line = self.read_line()
            if line is None:
                return None
            msg = parse_message(line)
            if msg is not None:
                return msg

    def take_rest(self) -> bytes:
        rest, self.buf = self.buf, b""
        return rest

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass
