#!/usr/bin/env python3
"""The lab's client: what a user of the anycast service sees.

Runs inside the client namespace. Sends DNS queries over UDP at a fixed rate
(each with its own ID and send time) for `site.lab. TXT`, whose answer names
the site that served it, and short HTTP requests (GET /, the body names the
site). Records per query: send time, answer time (or none: lost after
--timeout), the site. Writes one JSON file:

  {"start": T0, "period": P, "dns": [[sent, latency_ms|null, site|null], ...],
   "http": [[sent, latency_ms|null, site|null], ...]}

Standard library only, so it runs anywhere the lab runs.
"""

import argparse
import json
import os
import random
import select
import socket
import struct
import threading
import time


def query(qid, name):
    """A DNS query for NAME TXT IN, recursion not desired."""
    head = struct.pack("!HHHHHH", qid, 0, 1, 0, 0, 0)
    q = b"".join(bytes([len(p)]) + p.encode() for p in name.strip(".").split(".")) + b"\0"
    return head + q + struct.pack("!HH", 16, 1)


def skip_name(msg, i):
    """The offset after the (possibly compressed) name at I."""
    while i < len(msg):
        n = msg[i]
        if n == 0:
            return i + 1
        if n & 0xC0 == 0xC0:
            return i + 2
        i += 1 + n
    raise ValueError("name runs past the message")


def first_txt(msg):
    """The first TXT string of the answer section, or None."""
    if len(msg) < 12:
        return None
    _, flags, qd, an, _, _ = struct.unpack("!HHHHHH", msg[:12])
    if flags & 0x000F:  # an rcode other than NOERROR
        return None
    i = 12
    for _ in range(qd):
        i = skip_name(msg, i) + 4
    for _ in range(an):
        i = skip_name(msg, i)
        rtype, _, _, rdlen = struct.unpack("!HHIH", msg[i : i + 10])
        i += 10
        if rtype == 16 and rdlen > 0:
            n = msg[i]
            return msg[i + 1 : i + 1 + n].decode("ascii", "replace")
        i += rdlen
    return None


def dns_loop(args, start, end, out):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    period = 1.0 / args.rate
    pending = {}  # id -> index in out
    qid = random.randrange(65536)
    n = 0
    stop_recv = end + args.timeout
    while True:
        now = time.time()
        next_send = start + n * period
        if next_send < end and now >= next_send:
            qid = (qid + 1) & 0xFFFF
            stale = pending.pop(qid, None)  # never happens below 65536 queries in flight
            if stale is not None:
                out[stale][1] = None
            t = time.time()
            try:
                sock.sendto(query(qid, args.qname), (args.target, 53))
            except OSError:
                pass  # no route: counted as lost
            out.append([t, None, None])
            pending[qid] = len(out) - 1
            n += 1
            continue
        if now >= stop_recv:
            break
        wait = (next_send if next_send < end else stop_recv) - now
        r, _, _ = select.select([sock], [], [], max(0.0, min(wait, 0.05)))
        if not r:
            continue
        while True:
            try:
                msg, _ = sock.recvfrom(4096)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                continue  # an ICMP error reported on the socket
            t = time.time()
            if len(msg) < 2:
                continue
            (rid,) = struct.unpack("!H", msg[:2])
            idx = pending.pop(rid, None)
            if idx is None:
                continue
            rec = out[idx]
            if t - rec[0] > args.timeout:
                continue  # too late: lost
            try:
                site = first_txt(msg)
            except (ValueError, struct.error):
                site = None
            rec[1] = round((t - rec[0]) * 1000, 3)
            rec[2] = site


def http_loop(args, start, end, out):
    period = 1.0 / args.http_rate
    n = 0
    while True:
        t = start + n * period
        if t >= end:
            return
        now = time.time()
        if now < t:
            time.sleep(t - now)
        n += 1
        sent = time.time()
        rec = [sent, None, None]
        out.append(rec)
        try:
            with socket.create_connection((args.target, 80), timeout=args.http_timeout) as s:
                s.settimeout(args.http_timeout)
                s.sendall(b"GET / HTTP/1.0\r\nHost: lab\r\n\r\n")
                data = b""
                while len(data) < 4096:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            if head.startswith(b"HTTP/1.") and b" 200 " in head.split(b"\r\n")[0]:
                rec[1] = round((time.time() - sent) * 1000, 3)
                rec[2] = body.decode("ascii", "replace").strip()
        except OSError:
            pass


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--target", default="198.51.100.53")
    p.add_argument("--qname", default="site.lab")
    p.add_argument("--rate", type=float, default=200.0, help="DNS queries per second")
    p.add_argument("--http-rate", type=float, default=10.0, help="HTTP requests per second")
    p.add_argument("--timeout", type=float, default=1.0, help="a DNS answer later than this is lost")
    p.add_argument("--http-timeout", type=float, default=0.5)
    p.add_argument("--start", type=float, required=True, help="wall-clock time of the first query")
    p.add_argument("--duration", type=float, required=True)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    if not (1 <= args.rate <= 2000) or not (0 < args.duration <= 120):
        p.error("--rate 1..2000, --duration up to 120 s")
    start, end = args.start, args.start + args.duration
    dns, http = [], []
    h = threading.Thread(target=http_loop, args=(args, start, end, http), daemon=True)
    now = time.time()
    if now < start:
        time.sleep(start - now)
    h.start()
    dns_loop(args, start, end, dns)
    h.join(timeout=args.http_timeout + 1)
    tmp = args.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"start": start, "period": 1.0 / args.rate, "dns": dns, "http": list(http)}, f)
    os.replace(tmp, args.out)


if __name__ == "__main__":
    main()
