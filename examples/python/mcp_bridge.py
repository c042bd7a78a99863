"""Bridge an MCP stdio server to a Pilot port, and back, so an MCP host can call tools on a remote agent.

On the agent with the tools:
    python3 mcp_bridge.py serve 3000 -- npx some-mcp-server --its-flags
        every stream to port 3000 gets its own server process; its stdin/stdout are the stream
On the host's side, in the MCP host's config, as the server command:
    python3 mcp_bridge.py connect agent-alpha 3000
        this process's stdin/stdout are a stream to agent-alpha:3000

MCP's stdio framing is newline-delimited JSON-RPC, so bytes are copied as they are, both ways; each end closes
its direction when its source ends. Only mutually trusted peers can reach the port (Pilot's handshake).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading

import pilot


def copy(src_read, dst_write, done) -> None:
    try:
        while chunk := src_read(65536):
            dst_write(chunk)
    except (OSError, pilot.PilotError):
        pass
    finally:
        done()


def serve(node: pilot.Node, port: int, command: list[str]) -> None:
    def handle(sock: pilot.PilotSocket) -> None:
        proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        # the stream's bytes into the server, the server's answers back
        up = threading.Thread(target=copy, args=(sock.recv, lambda b: (proc.stdin.write(b), proc.stdin.flush()), proc.stdin.close), daemon=True)
        up.start()
        copy(lambda n: os.read(proc.stdout.fileno(), n), sock.sendall, sock.shutdown)
        proc.wait()

    with node.listen(port) as listener:
        print(f"mcp bridge: {command[0]} on {node.address} port {port}", flush=True)
        listener.serve_forever(handle)


def connect(node: pilot.Node, target: str, port: int) -> None:
    sock = node.dial(target, port)
    down = threading.Thread(target=copy, args=(sock.recv, lambda b: (sys.stdout.buffer.write(b), sys.stdout.buffer.flush()), sys.stdout.close), daemon=True)
    down.start()
    copy(lambda n: os.read(sys.stdin.fileno(), n), sock.sendall, sock.shutdown)
    down.join()
    sock.close()


def main() -> int:
    args = sys.argv[1:]
    node = pilot.connect()
    if len(args) >= 4 and args[0] == "serve" and args[2] == "--" and shutil.which(args[3]):
        serve(node, int(args[1]), args[3:])
    elif len(args) == 3 and args[0] == "connect":
        connect(node, args[1], int(args[2]))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except pilot.PilotError as e:
        print(f"{e.code}: {e.message}" + (f"\nhint: {e.hint}" if e.hint else ""), file=sys.stderr)
        sys.exit(1)
