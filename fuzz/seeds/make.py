#!/usr/bin/env python3
"""Writes the seed corpus, fuzz/corpus/<target>/, from the project's own
examples and from replies as real servers send them (hand-assembled here:
the DNS messages follow what BIND/Unbound answer, the NTP ones what chrony
answers). Run from the repository root: python3 fuzz/seeds/make.py"""
import glob, json, os, re, struct

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")


def put(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


# ---- config: every JSON file the project ships
for p in sorted(glob.glob(os.path.join(ROOT, "examples", "*.json")) + [os.path.join(ROOT, "etc", "exaprobe.json")]):
    put("config", os.path.basename(p), open(p, "rb").read())
put("config", "syntax-error.json", '{"services": [ {"name": "x", } ]}')
put("config", "bad-values.json", '{"services": [{"name": "a b", "prefixes": ["198.51.100.1/24"], "rise": 0, "checks": [{"type": "tcp", "port": 99999}]}]}')

# ---- flags: run lines (argv joined by NUL; after \0\0\0 the -F file's text)
README = open(os.path.join(ROOT, "README.md")).read()
runs = re.findall(r"(?:run /usr/bin/exaprobe|\$ exaprobe) ([^;\n]*)", README)
runs += [
    "--dry-run --tcp 127.0.0.1:8080 --ip 198.51.100.1/32 --interval 1 --rise 2 --fall 2",
    "--ip 198.51.100.53/32 --ip 2001:db8::53/128 --next-hop6 2001:db8::1 --dns 127.0.0.1 example.com A answer=192.0.2.1 --ntp 127.0.0.1 max-stratum=3",
    "--ip 198.51.100.0/30 --deaggregate-networks --community 65000:1 --as-path 65001 --neighbor 127.0.0.1 --path-id 7 --withdraw-on-down",
    "--ip 198.51.100.80/32 --http http://127.0.0.1:80/health on-fail=degrade --degraded-community 65000:666 --require any",
]
for i, r in enumerate(runs):
    # A multi-word value of the seed lines above starts at a flag's second word.
    args, cur = [], None
    for w in r.split():
        if w.startswith("--") or cur is None:
            if cur is not None:
                args.extend(cur)
            cur = [w]
        elif len(cur) == 1:
            cur.append(w)
        else:
            cur[-1] += " " + w
    args.extend(cur or [])
    put("flags", f"run-{i}", "\0".join(args))
conf = open(os.path.join(ROOT, "examples", "healthcheck.conf")).read()
put("flags", "flag-file", "-F\0/etc/exabgp/web.conf\0--dry-run\0\0\0" + conf)
put("flags", "subcommand", "status\0--control-socket\0/run/x.sock")

# ---- stdin: what ExaBGP writes to a process
put("stdin", "acks", "done\nerror\ndone\n")
put("stdin", "events", "neighbor 127.0.0.1 up\n\nneighbor 127.0.0.1 down\n\nshutdown\n")
put("stdin", "json", '{ "exabgp": "5.0.0", "time": 1.0, "host" : "h", "pid" : 1, "ppid" : 1, "counter": 1, "type": "notification", "notification": "shutdown"}\n')
put("stdin", "crlf-binary", b"done\r\n\xff\xfe\x00error\r\nno newline")

# ---- DNS replies: byte 0 picks the probe (see DNS_PROBES), then the message, ID 0xbeef
ID = 0xBEEF


def name(n):
    return b"".join(bytes([len(l)]) + l.encode() for l in n.split(".")) + b"\0"


def msg(qname, qtype, answers=(), authority=(), rcode=0, flags=0x8180):
    h = struct.pack(">HHHHHH", ID, flags | rcode, 1, len(answers), len(authority), 0)
    q = name(qname) + struct.pack(">HH", qtype, 1)
    rr = lambda t, data: b"\xc0\x0c" + struct.pack(">HHIH", t, 1, 300, len(data)) + data
    return h + q + b"".join(rr(t, d) for t, d in answers) + b"".join(
        b"\xc0\x14" + struct.pack(">HHIH", t, 1, 300, len(d)) + d for t, d in authority)


soa = name("ns1.example.com") + name("hostmaster.example.com") + struct.pack(">IIIII", 2024010101, 7200, 3600, 1209600, 300)
put("dns_reply", "a", b"\0" + msg("example.com", 1, [(1, bytes([192, 0, 2, 1]))]))
put("dns_reply", "a-other", b"\0" + msg("example.com", 1, [(1, bytes([192, 0, 2, 9])), (5, name("x.example.net"))]))
put("dns_reply", "aaaa", b"\1" + msg("example.com", 28, [(28, bytes.fromhex("20010db8000000000000000000000001"))]))
put("dns_reply", "txt", b"\2" + msg("example.com", 16, [(16, b"\x0bv=spf1 -all")]))
put("dns_reply", "mx", b"\3" + msg("example.com", 15, [(15, struct.pack(">H", 10) + name("mail.example.com"))]))
put("dns_reply", "nxdomain", b"\4" + msg("nonexistent.example.com", 1, [], [(6, soa)], rcode=3))
put("dns_reply", "soa", b"\5" + msg("example.com", 6, [(6, soa)]))
put("dns_reply", "servfail", b"\0" + msg("example.com", 1, rcode=2))
put("dns_reply", "truncated", b"\0" + msg("example.com", 1, [(1, bytes([192, 0, 2, 1]))])[:40])
loop = bytearray(msg("example.com", 1))
loop[7] = 1  # one answer, whose name points at itself
put("dns_reply", "pointer-loop", b"\0" + bytes(loop) + b"\xc0\x1d\x00\x01\x00\x01\x00\x00\x00\x01\x00\x04\x01\x02\x03\x04")

# ---- NTP replies: byte 0 picks the probe, 8 bytes T1, 8 bytes T4, then the packet
ERA = 3_913_056_000 << 32  # 2024-01-01 as an NTP timestamp


def ntp(li=0, vn=4, mode=4, stratum=2, refid=bytes([127, 127, 1, 1]), disp=0x0000_0800, t1=ERA, off=0):
    t2, t3 = t1 + (1 << 28) + off, t1 + (1 << 28) + off + (1 << 20)
    t4 = t1 + (1 << 29)
    pkt = struct.pack(">BBbbII4sQQQQ", (li << 6) | (vn << 3) | mode, stratum, 6, -24, 0x0000_0100, disp, refid, t1 - (1 << 36), t1, t2, t3)
    return struct.pack(">QQ", t1, t4) + pkt


put("ntp_reply", "chrony", b"\0" + ntp())
put("ntp_reply", "bounded", b"\1" + ntp(stratum=3))
put("ntp_reply", "stratum1-gps", b"\2" + ntp(stratum=1, refid=b"GPS\0"))
put("ntp_reply", "kod-rate", b"\0" + ntp(stratum=0, refid=b"RATE"))
put("ntp_reply", "unsynchronised", b"\0" + ntp(li=3, stratum=16, refid=b"INIT"))
put("ntp_reply", "far-offset", b"\1" + ntp(off=1 << 40))
put("ntp_reply", "short", b"\0" + ntp()[:40])

# ---- control: the README's requests, one per line
put("control", "status", '{"command": "status"}\n')
put("control", "drain", '{"command": "drain", "service": "dns", "for": "30m", "reason": "kernel upgrade"}\n{"command": "status"}\n{"command": "undrain", "all": true}\n')
put("control", "drain-all", '{"command": "drain", "all": true}\n{"command": "recheck", "service": "web"}\n')
put("control", "bad", '{"command": "reboot"}\n{"command": "status", "x": 1}\nnot json\n{"command": "drain", "service": "nope", "for": "forever"}\n')

# ---- metrics: request heads
put("metrics_request", "get", "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:9100\r\nUser-Agent: Prometheus/2.53.0\r\nAccept: text/plain\r\n\r\n")
put("metrics_request", "head-lf", "HEAD /metrics?x=1 HTTP/1.0\n\n")
put("metrics_request", "post", "POST /metrics HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}")
put("metrics_request", "other", "GET / HTTP/1.1\r\n\r\n")
put("metrics_request", "bad", "GET /metrics HTTP/2.0\r\n folded: x\r\n\r\n")

# ---- dictionaries (fuzz/dict/<target>.dict): the keywords of the config and flags inputs
DICT = os.path.join(ROOT, "fuzz", "dict")
os.makedirs(DICT, exist_ok=True)


def dict_entry(s):
    return '"' + "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "\\x%02x" % ord(c) if ord(c) < 256 else c for c in s) + '"'


keys = set()


def walk(v):
    if isinstance(v, dict):
        for k, x in v.items():
            keys.add(k)
            walk(x)
    elif isinstance(v, list):
        for x in v:
            walk(x)


for p in glob.glob(os.path.join(ROOT, "examples", "*.json")) + [os.path.join(ROOT, "etc", "exaprobe.json")]:
    walk(json.load(open(p)))
src = open(os.path.join(ROOT, "src", "model", "config.rs")).read()
keys |= set(re.findall(r'rename = "([a-z_]+)"', src))
keys |= set(re.findall(r"^\s+(?:pub )?([a-z_][a-z0-9_]*): (?:Option<|Vec<|bool|u32|String|&)", src, re.M))
values = ["tcp", "http", "dns", "ntp", "command", "file", "withdraw", "degrade", "down", "self", "all", "any"]
with open(os.path.join(DICT, "config.dict"), "w") as f:
    f.write("# JSON keys and values of the config (fuzz/seeds/make.py, from examples/ and src/model/config.rs)\n")
    for k in sorted(keys) + values:
        f.write(dict_entry(json.dumps(k)) + "\n")
    for t in ["{", "}", "[", "]", ":", ",", '"198.51.100.1/32"', '"2001:db8::1/128"', '"127.0.0.1:53"', '"2s"', '"65000:1"']:
        f.write(dict_entry(t) + "\n")
flags = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]+", README))
cli = open(os.path.join(ROOT, "src", "cli", "mod.rs")).read()
for long, field in re.findall(r'long(?: = "([a-z0-9-]+)")?[^\n]*\n(?:\s*///[^\n]*\n)*\s*pub ([a-z_0-9]+):', cli):
    flags.add("--" + (long or field.replace("_", "-")))
flags |= {"-" + c for c in re.findall(r"short = '(.)'", cli)}
with open(os.path.join(DICT, "flags.dict"), "w") as f:
    f.write("# Flags (fuzz/seeds/make.py, from README.md and src/cli/mod.rs); arguments are NUL-separated\n")
    for t in sorted(flags) + ["\0", "\0\0\0", "198.51.100.1/32", "2001:db8::1/128", "127.0.0.1:53", "self", "timeout=",
                              "on-fail=degrade", "answer=", "65000:1", "status", "drain", "check"]:
        f.write(dict_entry(t) + "\n")
