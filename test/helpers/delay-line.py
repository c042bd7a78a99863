#!/usr/bin/env python3
"""A userspace delay line: two TUN devices, each in its own network namespace,
joined by a wire that holds every packet DELAY_MS before handing it on (this
kernel has no sch_netem). Raw IP in, raw IP out, so it carries kernel TCP and
UDP alike. Exits (and the kernel deletes both TUN devices) when stdin closes,
so a parent that dies takes the wire with it.

usage: delay-line.py DELAY_MS NETNS_1 TUN_1 NETNS_2 TUN_2
Prints "ready" once both devices exist; a line "stats" on stdin answers with a
JSON line: packets carried, dropped (queue bound, write errors) and how late
packets left (max, count over 1 ms). Standard library only (Python 3.9+).
"""
import collections
import ctypes
import fcntl
import json
import os
import select
import struct
import sys
import time

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
CLONE_NEWNET = 0x40000000
# Far above a bandwidth-delay product of the links this emulates; a bound so a
# runaway sender cannot grow the process without limit (tail drop past it).
MAX_QUEUED = 20000
libc = ctypes.CDLL(None, use_errno=True)


def setns(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns {path}: {os.strerror(err)}")
    finally:
        os.close(fd)


def open_tun(netns, name):
    # The TUN device is created in the namespace this thread is in when
    # TUNSETIFF runs; the file descriptor keeps working from anywhere.
    setns(f"/run/netns/{netns}")
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    return fd


def main():
    delay = float(sys.argv[1]) / 1000.0
    home = os.open("/proc/self/ns/net", os.O_RDONLY)
    fd1 = open_tun(sys.argv[2], sys.argv[3])
    fd2 = open_tun(sys.argv[4], sys.argv[5])
    libc.setns(home, CLONE_NEWNET)
    other = {fd1: fd2, fd2: fd1}
    queues = {fd1: collections.deque(), fd2: collections.deque()}  # by destination fd
    ep = select.epoll()
    ep.register(fd1, select.EPOLLIN)
    ep.register(fd2, select.EPOLLIN)
    stdin = sys.stdin.fileno()
    ep.register(stdin, select.EPOLLIN | select.EPOLLHUP)
    # A wire on a shared box: real-time priority keeps busy neighbours from adding
    # their time slices to the delay (it sleeps in epoll, so it takes little CPU).
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
        stats_sched = "fifo"
    except OSError:
        stats_sched = "other"
    print("ready", flush=True)
    clock = time.monotonic
    stats = {"packets": 0, "dropped": 0, "lateMaxMs": 0.0, "lateOver1ms": 0, "sched": stats_sched}
    while True:
        due = min((q[0][0] for q in queues.values() if q), default=None)
        timeout = -1 if due is None else max(0.0, due - clock())
        # epoll rounds the timeout up to whole milliseconds: a packet leaves at
        # most ~1 ms late, the same for every packet (no reordering: FIFO per way).
        for fd, _ev in ep.poll(timeout):
            if fd == stdin:
                data = os.read(stdin, 4096)
                if not data:
                    return
                if b"stats" in data:
                    print(json.dumps(stats), flush=True)
                continue
            q = queues[other[fd]]
            for _ in range(512):
                try:
                    pkt = os.read(fd, 65536)
                except BlockingIOError:
                    break
                except OSError:
                    break  # the device went down (its namespace is being deleted)
                if len(q) < MAX_QUEUED:
                    q.append((clock() + delay, pkt))
                else:
                    stats["dropped"] += 1
        now = clock()
        for dst, q in queues.items():
            while q and q[0][0] <= now:
                deadline, pkt = q.popleft()
                late = (now - deadline) * 1000
                stats["packets"] += 1
                if late > stats["lateMaxMs"]:
                    stats["lateMaxMs"] = round(late, 3)
                if late > 1:
                    stats["lateOver1ms"] += 1
                try:
                    os.write(dst, pkt)
                except OSError:
                    stats["dropped"] += 1  # e.g. the device is down: lost, like on a wire


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
