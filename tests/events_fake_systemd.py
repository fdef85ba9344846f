#!/usr/bin/env python3
"""Stands in for systemd on a test bus: owns org.freedesktop.systemd1 and
emits one PropertiesChanged signal of a unit, as systemd does (a minimal
D-Bus client: no D-Bus module is needed).

Usage: events_fake_systemd.py SOCKET OBJECT_PATH PROPS_JSON
  PROPS_JSON: [["ActiveState", "s", "deactivating"], ["SubState", "s", "dead"], ...]
  (value types: s, u, b, t)
"""
import json
import os
import socket
import struct
import sys


class W:
    def __init__(self):
        self.b = bytearray()

    def align(self, n):
        self.b += b"\0" * (-len(self.b) % n)

    def u32(self, v):
        self.align(4)
        self.b += struct.pack("<I", v)

    def value(self, t, v):
        if t in "so":
            e = v.encode()
            self.u32(len(e))
            self.b += e + b"\0"
        elif t == "g":
            e = v.encode()
            self.b += bytes([len(e)]) + e + b"\0"
        elif t == "u":
            self.u32(v)
        elif t == "b":
            self.u32(1 if v else 0)
        elif t == "t":
            self.align(8)
            self.b += struct.pack("<Q", v)
        else:
            raise SystemExit("unsupported type " + t)


def message(kind, serial, fields, sig, body):
    f = W()
    if sig:
        fields = fields + [(8, "g", sig)]
    for code, t, v in fields:
        f.align(8)
        f.b += bytes([code])
        f.value("g", t)
        f.value(t, v)
    w = W()
    w.b += b"l" + bytes([kind, 0, 1])
    w.u32(len(body))
    w.u32(serial)
    w.u32(len(f.b))
    w.b += f.b
    w.align(8)
    return bytes(w.b) + bytes(body)


def call(serial, dest, path, iface, member, sig=None, body=b""):
    return message(1, serial, [(1, "o", path), (2, "s", iface), (3, "s", member), (6, "s", dest)], sig, body)


def main():
    sock_path, obj, props = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(5)
    s.connect(sock_path)
    s.sendall(b"\0AUTH EXTERNAL " + str(os.getuid()).encode().hex().encode() + b"\r\n")
    if not s.recv(4096).startswith(b"OK"):
        raise SystemExit("not authenticated")
    s.sendall(b"BEGIN\r\n")
    bus = ("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus")
    s.sendall(call(1, *bus, "Hello"))
    name = W()
    name.value("s", "org.freedesktop.systemd1")
    name.u32(0)
    s.sendall(call(2, *bus, "RequestName", "su", name.b))
    body = W()
    body.value("s", "org.freedesktop.systemd1.Unit")
    body.u32(0)
    at = len(body.b) - 4
    body.align(8)
    start = len(body.b)
    for key, t, v in props:
        body.align(8)
        body.value("s", key)
        body.value("g", t)
        body.value(t, v)
    body.b[at : at + 4] = struct.pack("<I", len(body.b) - start)
    body.u32(0)  # invalidated: as []
    fields = [(1, "o", obj), (2, "s", "org.freedesktop.DBus.Properties"), (3, "s", "PropertiesChanged")]
    s.sendall(message(4, 3, fields, "sa{sv}as", body.b))
    # A Ping last: once its reply is here, the bus has routed the signal.
    s.sendall(call(4, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus.Peer", "Ping"))
    buf, replies = b"", 0
    while replies < 3:
        chunk = s.recv(65536)
        if not chunk:
            raise SystemExit("the bus hung up")
        buf += chunk
        while len(buf) >= 16:
            body_len, fields_len = struct.unpack_from("<I", buf, 4)[0], struct.unpack_from("<I", buf, 12)[0]
            total = 16 + fields_len + (-(16 + fields_len) % 8) + body_len
            if len(buf) < total:
                break
            if buf[1] in (2, 3):  # a method return or an error
                replies += 1
            buf = buf[total:]


main()
