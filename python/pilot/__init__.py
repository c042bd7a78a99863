"""Pilot for Python agents: the local daemon's streams, datagrams, trust and services over its IPC socket.

    import pilot
    node = pilot.connect()
    with node.dial("alpha", 7) as s:
        s.sendall(b"hello")

The asyncio API is pilot.aio (same names, awaitable).
"""

from ._contract import ERROR_CODES, EVENTS, METHODS
from ._wire import socket_path
from . import aio
from .errors import PilotError
from .node import DatagramSocket, ItemSubscription, Listener, Node, PilotSocket, connect

__version__ = "0.1.0"
__all__ = [
    "aio",
    "connect",
    "Node",
    "PilotSocket",
    "Listener",
    "DatagramSocket",
    "ItemSubscription",
    "PilotError",
    "socket_path",
    "METHODS",
    "EVENTS",
    "ERROR_CODES",
]
