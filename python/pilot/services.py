"""The daemon's built-in services and fleets (src/sdk/services.ts, pubsub.ts, networks.ts), for both APIs.

Each method returns what ``node._run`` returns: the answer for pilot.Node, an awaitable for pilot.aio.Node.
Every call to a peer needs mutual trust with it; failures are PilotErrors with the daemon's codes.
"""

from __future__ import annotations

import os
from typing import Any, Callable

from . import _ops as ops


class Messages:
    """Messages into a peer's inbox (port 1001), and this node's inbox."""

    def __init__(self, node: Any) -> None:
        self._node = node

    def send(self, target: str, data: str | bytes, type: str | None = None) -> Any:
        """A str goes as text (or as JSON text with type='json'), bytes as binary; resolves once the peer stored it."""
        return self._node._run(ops.send_message(target, data, type))

    def send_json(self, target: str, value: Any) -> Any:
        return self._node._run(ops.send_json(target, value))

    def inbox(self) -> Any:
        """Messages received, oldest first; binary data is base64, json messages carry the parsed value in "json"."""
        return self._node._run(ops.inbox())

    def clear(self) -> Any:
        return self._node._run(ops.clear_inbox())


class Files:
    """Files of any size to a peer (port 1001; the peer checks the sha256), and the files peers sent this node."""

    def __init__(self, node: Any) -> None:
        self._node = node

    def send(self, target: str, path: str | os.PathLike, on_progress: Callable[[dict], None] | None = None) -> Any:
        """The daemon reads ``path`` (a path on its host); ``on_progress`` gets {"sent", "total", ...} about every 100 ms."""
        return self._node._send_file(ops.send_file(target, path), on_progress)

    def received(self) -> Any:
        """{"dir", "count", "files": [...]}: the files in $PILOT_HOME/received of this node."""
        return self._node._run(ops.received())

    def clear(self) -> Any:
        return self._node._run(ops.clear_received())


class PubSub:
    """Events on topics of a node's broker (port 1002); the target may be this node itself."""

    def __init__(self, node: Any) -> None:
        self._node = node

    def publish(self, target: str, topic: str, data: str = "") -> Any:
        return self._node._run(ops.publish(target, topic, data))

    def subscribe(self, target: str, topic: str, count: int = 0, timeout: float = 0) -> Any:
        """Returns once the broker registered the subscription: an iterator of events ({"topic", "data", ...})
        until ``count`` events, ``timeout`` seconds (0: none) or close()."""
        return self._node._subscription(ops.subscribe(target, topic, count, int(timeout * 1000)), "event", "subscribed")

    def status(self) -> Any:
        return self._node._run(ops.pubsub_status())


class Tasks:
    """Tasks between agents (port 1003): submit; the receiver accepts or declines, executes, sends results."""

    def __init__(self, node: Any) -> None:
        self._node = node

    def submit(self, target: str, description: str) -> Any:
        return self._node._run(ops.task_submit(target, description))

    def list(self, type: str | None = None) -> Any:
        """Tasks received and submitted, or only type='received' / 'submitted'."""
        return self._node._run(ops.task_list(type))

    def accept(self, id: str) -> Any:
        return self._node._run(ops.task_accept(id))

    def decline(self, id: str, reason: str | None = None) -> Any:
        return self._node._run(ops.task_decline(id, reason))

    def execute(self, id: str | None = None) -> Any:
        return self._node._run(ops.task_execute(id))

    def send_results(self, id: str, results: str) -> Any:
        return self._node._run(ops.task_send_results(id, results))


class Webhooks:
    """This node's webhook: every event POSTed as signed JSON to one URL."""

    def __init__(self, node: Any) -> None:
        self._node = node

    def set(self, url: str) -> Any:
        """Returns {"url", "secret"}; each POST carries X-Pilot-Signature = "sha256=" + hex HMAC-SHA256(secret, body)."""
        return self._node._run(ops.set_webhook(url))

    def clear(self) -> Any:
        return self._node._run(ops.clear_webhook())

    def status(self) -> Any:
        return self._node._run(ops.webhook_status())


class Networks:
    """Fleets: networks this node administers or belongs to, invites, policy, audit (src/sdk/networks.ts)."""

    def __init__(self, node: Any) -> None:
        self._node = node

    def create(self, name: str) -> Any:
        return self._node._run(ops.network_create(name))

    def list(self) -> Any:
        return self._node._run(ops.network_list())

    def members(self, net: str | int) -> Any:
        return self._node._run(ops.network_members(net))

    def invite(self, net: str | int, tags: list[str] | None = None, uses: int = 0, expires: str | int | None = None, ephemeral: bool = False) -> Any:
        return self._node._run(ops.network_invite(net, tags, uses, expires, ephemeral))

    def invites(self, net: str | int) -> Any:
        return self._node._run(ops.network_invites(net))

    def revoke_invite(self, net: str | int, invite_id: str) -> Any:
        return self._node._run(ops.network_revoke_invite(net, invite_id))

    def join(self, token: str) -> Any:
        return self._node._run(ops.network_join(token))

    def leave(self, net: str | int) -> Any:
        return self._node._run(ops.network_leave(net))

    def kick(self, net: str | int, node: str) -> Any:
        return self._node._run(ops.network_kick(net, node))

    def delete(self, net: str | int) -> Any:
        return self._node._run(ops.network_delete(net))

    def policy(self, net: str | int) -> Any:
        return self._node._run(ops.network_policy(net, None, None))

    def set_policy(self, net: str | int, text: str, source: str | None = None) -> Any:
        return self._node._run(ops.network_policy(net, text, source))

    def audit(self, net: str | int, statements: bool = False) -> Any:
        return self._node._run(ops.network_audit(net, statements))
