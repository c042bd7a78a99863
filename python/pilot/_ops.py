"""Each request of the public API as (method, params, post-processing), shared by the sync and asyncio nodes.

Keeping these in one place means pilot.Node and pilot.aio.Node cannot send different requests for the same call.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from typing import Any, Callable

from .errors import PilotError


@dataclass(frozen=True)
class Call:
    method: str
    params: dict
    post: Callable[[Any], Any] | None = None


def key(k: str) -> Callable[[Any], Any]:
    return lambda r: r[k]


def check_port(port: int) -> int:
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
        raise PilotError("BAD_ARGUMENT", f"virtual port must be 0..65535, got {port!r}")
    return port


def answer_with(k: str) -> Callable[[Any], Any]:
    def post(r: Any) -> Any:
        if not isinstance(r, dict) or k not in r:
            raise PilotError("INTERNAL", f'unexpected answer from the daemon (no "{k}")')
        return r
    return post


def as_bytes(data: bytes | bytearray | memoryview | str) -> bytes:
    return data.encode() if isinstance(data, str) else bytes(data)


# ---- this node and its peers ----
def info() -> Call:
    return Call("info", {})


def peers() -> Call:
    return Call("peers", {}, key("peers"))


def find(target: str | None, tag: str | None, network: str | int | None, online: bool) -> Call:
    if tag is not None:
        return Call("network_find", {"tag": tag, "online": online, "net": None if network is None else str(network)})
    if target is None:
        raise PilotError("BAD_ARGUMENT", "find needs a target (address or hostname) or tag=", "e.g. node.find('alpha') or node.find(tag='gpu', network='lab')")
    return Call("find", {"target": target})


def ping(target: str, count: int, interval_ms: int, timeout_ms: int) -> Call:
    return Call("ping", {"target": target, "count": count, "intervalMs": interval_ms, "timeoutMs": timeout_ms})


def connections() -> Call:
    return Call("connections", {}, key("connections"))


def disconnect(stream_id: int) -> Call:
    return Call("disconnect", {"id": stream_id})


def traceroute(target: str, count: int, timeout_ms: int) -> Call:
    return Call("traceroute", {"target": target, "count": count, "timeoutMs": timeout_ms})


def broadcast(network: str | int, port: int, data: bytes | str) -> Call:
    if isinstance(data, str):
        return Call("broadcast", {"net": str(network), "port": port, "data": data, "encoding": "utf8"})
    return Call("broadcast", {"net": str(network), "port": port, "data": base64.b64encode(data).decode("ascii"), "encoding": "base64"})


def set_tags(tags: list[str]) -> Call:
    return Call("set_tags", {"tags": list(tags)}, key("tags"))


def clear_tags() -> Call:
    return Call("clear_tags", {}, lambda r: None)


# ---- trust ----
def handshake(target: str, reason: str | None) -> Call:
    return Call("handshake", {"target": target, "reason": reason})


def pending() -> Call:
    return Call("pending", {})


def approve(node: str) -> Call:
    return Call("approve", {"node": node})


def reject(node: str, reason: str | None) -> Call:
    return Call("reject", {"node": node, "reason": reason})


def trusted() -> Call:
    return Call("trust", {}, key("trusted"))


def untrust(node: str) -> Call:
    return Call("untrust", {"node": node})


# ---- datagrams ----
def send(target: str, port: int, data: bytes | str, src_port: int | None) -> Call:
    return Call(
        "send",
        {
            "target": target,
            "port": check_port(port),
            "data": base64.b64encode(as_bytes(data)).decode(),
            "encoding": "base64",
            "srcPort": None if src_port is None else check_port(src_port),
        },
        lambda r: None,
    )


def dial(target: str, port: int, timeout: float) -> Call:
    return Call("sdk_dial", {"target": target, "port": check_port(port), "timeoutMs": int(timeout * 1000)})


# ---- messages (port 1001) ----
def send_message(target: str, data: str | bytes, type: str | None) -> Call:
    is_bytes = not isinstance(data, str)
    t = type or ("binary" if is_bytes else "text")
    if is_bytes and t != "binary":
        raise PilotError("BAD_ARGUMENT", f"bytes are sent as type binary, not {t}", "pass a str for text or json")
    payload = data if t != "binary" else base64.b64encode(as_bytes(data)).decode()
    return Call("send_message", {"target": target, "data": payload, "type": t})


def send_json(target: str, value: Any) -> Call:
    return send_message(target, json.dumps(value), "json")


def inbox() -> Call:
    return Call("inbox", {}, lambda r: answer_with("messages")(r)["messages"])


def clear_inbox() -> Call:
    return Call("inbox", {"clear": True}, lambda r: answer_with("cleared")(r)["cleared"])


# ---- files (port 1001) ----
def send_file(target: str, path: str | os.PathLike) -> Call:
    return Call("send_file", {"target": target, "path": os.path.abspath(os.fspath(path))})


def received() -> Call:
    return Call("received", {}, answer_with("files"))


def clear_received() -> Call:
    return Call("received", {"clear": True}, lambda r: answer_with("cleared")(r)["cleared"])


# ---- pub/sub (port 1002) ----
def publish(target: str, topic: str, data: str) -> Call:
    return Call("publish", {"target": target, "topic": topic, "data": data})


def subscribe(target: str, topic: str, count: int, timeout_ms: int) -> Call:
    return Call("subscribe", {"target": target, "topic": topic, "count": count, "timeoutMs": timeout_ms})


def pubsub_status() -> Call:
    return Call("pubsub_status", {})


# ---- tasks (port 1003) ----
def task_submit(target: str, description: str) -> Call:
    return Call("task_submit", {"target": target, "description": description}, key("task"))


def task_list(type: str | None) -> Call:
    return Call("task_list", {"type": type}, key("tasks"))


def task_accept(id: str) -> Call:
    return Call("task_accept", {"id": id})


def task_decline(id: str, reason: str | None) -> Call:
    return Call("task_decline", {"id": id, "reason": reason})


def task_execute(id: str | None) -> Call:
    return Call("task_execute", {"id": id})


def task_send_results(id: str, results: str) -> Call:
    return Call("task_send_results", {"id": id, "results": results})


# ---- webhooks ----
def set_webhook(url: str) -> Call:
    return Call("set_webhook", {"url": url})


def clear_webhook() -> Call:
    return Call("clear_webhook", {}, lambda r: None)


def webhook_status() -> Call:
    return Call("webhook_status", {})


# ---- fleets (networks) ----
def ref(net: str | int) -> str:
    return str(net)


def network_create(name: str) -> Call:
    return Call("network_create", {"name": name})


def network_list() -> Call:
    return Call("network_list", {}, key("networks"))


def network_members(net: str | int) -> Call:
    return Call("network_members", {"net": ref(net)})


def network_invite(net: str | int, tags: list[str] | None, uses: int, expires: str | int | None, ephemeral: bool) -> Call:
    return Call(
        "network_invite",
        {"net": ref(net), "tags": list(tags or []), "uses": uses, "expires": None if expires is None else str(expires), "ephemeral": ephemeral},
    )


def network_invites(net: str | int) -> Call:
    return Call("network_invites", {"net": ref(net)}, key("invites"))


def network_revoke_invite(net: str | int, invite_id: str) -> Call:
    return Call("network_revoke_invite", {"net": ref(net), "inviteId": invite_id})


def network_join(token: str) -> Call:
    return Call("network_join", {"token": token})


def network_leave(net: str | int) -> Call:
    return Call("network_leave", {"net": ref(net)})


def network_kick(net: str | int, node: str) -> Call:
    return Call("network_kick", {"net": ref(net), "node": node})


def network_delete(net: str | int) -> Call:
    return Call("network_delete", {"net": ref(net)})


def network_policy(net: str | int, text: str | None, source: str | None) -> Call:
    return Call("network_policy", {"net": ref(net), "text": text, "source": source})


def network_audit(net: str | int, statements: bool) -> Call:
    return Call("network_audit", {"net": ref(net), "statements": statements}, key("entries"))
