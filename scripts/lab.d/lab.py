#!/usr/bin/env python3
"""The game-day lab: a small anycast internet in network namespaces.

Started by scripts/lab (which owns the trap that always cleans up); this
script builds the namespaces, starts the servers, runs the scenarios
(scripts/lab.d/scenarios/*.json) against exaprobe and against the bundled
healthcheck, tears everything down, and writes the report.

    client ── router (BIRD, kernel protocol in its own namespace) ──┬── site a (best, MED 100)
                                                                    ├── site b (MED 200)
                                                                    └── site c (MED 300, ExaBGP 4.2)

Every namespace name and every PID it starts is written to RUN/netns and
RUN/pids before use, so scripts/lab's trap can remove what this script
could not (a SIGKILL of this script, say).
"""

import argparse
import copy
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import report  # noqa: E402

ANYCAST = "198.51.100.53"
ANYCAST6 = "2001:db8::53"
SITES = {
    # name: (router address, site address, v6 link /64 index, MED, ExaBGP major)
    "a": ("203.0.113.1", "203.0.113.2", 1, 100, 5),
    "b": ("203.0.113.5", "203.0.113.6", 2, 200, 5),
    "c": ("203.0.113.9", "203.0.113.10", 3, 300, 4),
}
CLIENT = ("203.0.113.13", "203.0.113.14")
# The timing every program gets: the detection bound of a crash is
# interval + (fall - 1) * fast_interval (+ BGP, a few ms here).
TIMING = {"interval": 1.0, "fast_interval": 0.25, "timeout": 0.5, "rise": 2, "fall": 2}
DRAIN_STAGE = "1s"  # exaprobe's GRACEFUL_SHUTDOWN stage before the withdraw
QPS = 200


def log(msg):
    print(f"lab: {msg}", file=sys.stderr, flush=True)


class Lab:
    def __init__(self, a):
        self.a = a
        self.run = a.run
        self.prefix = a.prefix
        self.procs = {}  # name -> Popen
        self.ns = {}
        self.events = []  # (time, kind, site, detail) from BIRD
        self.events_lock = threading.Lock()
        self.watch_stop = threading.Event()
        self.watcher = None
        self.etcd = False

    # ---- bookkeeping -------------------------------------------------
    def nsname(self, role):
        return f"{self.prefix}-{role}"

    def sh(self, *argv, check=True, ns=None):
        cmd = (["ip", "netns", "exec", self.ns[ns]] if ns else []) + list(argv)
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if check and r.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)}: {r.stderr.strip()}")
        return r

    def start(self, name, argv, ns=None, logfile=None, env=None):
        cmd = (["ip", "netns", "exec", self.ns[ns]] if ns else []) + list(argv)
        out = open(logfile or os.path.join(self.run, f"{name}.log"), "ab")
        e = dict(os.environ)
        e.update(env or {})
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=e,
                             start_new_session=True)
        out.close()
        # `ip netns exec` execs the program: p.pid is the program's PID.
        with open(os.path.join(self.run, "pids"), "a") as f:
            f.write(f"{p.pid} {os.path.basename(argv[0])}\n")
        self.procs[name] = p
        return p

    def alive(self, name):
        p = self.procs.get(name)
        return p is not None and p.poll() is None

    def signal(self, name, sig):
        p = self.procs.get(name)
        if p is not None and p.poll() is None:
            os.kill(p.pid, sig)

    def stop(self, name, timeout=5.0):
        p = self.procs.pop(name, None)
        if p is None or p.poll() is not None:
            return
        try:
            os.kill(p.pid, signal.SIGCONT)
            os.kill(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(p.pid, signal.SIGKILL)
            p.wait(5)

    # ---- topology ----------------------------------------------------
    def build(self):
        roles = ["r", "cl"] + list(SITES)
        with open(os.path.join(self.run, "netns"), "a") as f:
            for r in roles:
                self.ns[r] = self.nsname(r)
                f.write(self.ns[r] + "\n")
        for r in roles:
            self.sh("ip", "netns", "add", self.ns[r])
            self.sh("ip", "-n", self.ns[r], "link", "set", "lo", "up")
        # Each veth pair is created with both ends inside namespaces: nothing
        # ever exists in the root namespace.
        for s, (ra, sa, v6, _, _) in SITES.items():
            self.sh("ip", "link", "add", f"s{s}", "netns", self.ns["r"], "type", "veth", "peer", "name", "uplink",
                    "netns", self.ns[s])
            self.sh("ip", "-n", self.ns["r"], "addr", "add", f"{ra}/30", "dev", f"s{s}")
            self.sh("ip", "-n", self.ns["r"], "addr", "add", f"2001:db8:ffff:{v6}::1/64", "dev", f"s{s}", "nodad")
            self.sh("ip", "-n", self.ns[s], "addr", "add", f"{sa}/30", "dev", "uplink")
            self.sh("ip", "-n", self.ns[s], "addr", "add", f"2001:db8:ffff:{v6}::2/64", "dev", "uplink", "nodad")
            self.sh("ip", "-n", self.ns[s], "addr", "add", f"{ANYCAST}/32", "dev", "lo")
            self.sh("ip", "-n", self.ns[s], "addr", "add", f"{ANYCAST6}/128", "dev", "lo")
            self.sh("ip", "-n", self.ns["r"], "link", "set", f"s{s}", "up")
            self.sh("ip", "-n", self.ns[s], "link", "set", "uplink", "up")
            self.sh("ip", "-n", self.ns[s], "route", "add", "default", "via", ra)
            self.sh("ip", "-n", self.ns[s], "-6", "route", "add", "default", "via", f"2001:db8:ffff:{v6}::1")
        self.sh("ip", "link", "add", "cl", "netns", self.ns["r"], "type", "veth", "peer", "name", "uplink",
                "netns", self.ns["cl"])
        self.sh("ip", "-n", self.ns["r"], "addr", "add", f"{CLIENT[0]}/30", "dev", "cl")
        self.sh("ip", "-n", self.ns["cl"], "addr", "add", f"{CLIENT[1]}/30", "dev", "uplink")
        self.sh("ip", "-n", self.ns["r"], "link", "set", "cl", "up")
        self.sh("ip", "-n", self.ns["cl"], "link", "set", "uplink", "up")
        self.sh("ip", "-n", self.ns["cl"], "route", "add", "default", "via", CLIENT[0])
        self.sh("sysctl", "-qw", "net.ipv4.ip_forward=1", ns="r")
        self.sh("sysctl", "-qw", "net.ipv6.conf.all.forwarding=1", ns="r")
        for s in SITES:
            self.start_dns(s)
            self.start_http(s)
        self.start_bird()
        for s in SITES:
            wait(lambda s=s: self.dns_answers(s), 10, f"knotd at site {s}")

    def teardown(self):
        self.watch_stop.set()
        if self.watcher:
            self.watcher.join(2)
        for name in list(self.procs):
            self.stop(name)
        for r in list(self.ns.values()):
            subprocess.run(["ip", "netns", "del", r], stderr=subprocess.DEVNULL)

    # ---- the sites' services -----------------------------------------
    def site_dir(self, s):
        d = os.path.join(self.run, f"site-{s}")
        os.makedirs(d, exist_ok=True)
        return d

    def start_dns(self, s):
        d = self.site_dir(s)
        with open(f"{d}/lab.zone", "w") as f:
            f.write(f"$ORIGIN lab.\n$TTL 0\n@ SOA ns hostmaster 1 3600 600 86400 0\n@ NS ns\nns A {ANYCAST}\n"
                    f'site TXT "site-{s}"\n')
        with open(f"{d}/knot.conf", "w") as f:
            f.write(f"""server:
    rundir: "{d}"
    listen: [ {ANYCAST}@53, {ANYCAST6}@53 ]
    identity: "site-{s}"
    nsid: "site-{s}"
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
database:
    storage: "{d}"
template:
  - id: default
    storage: "{d}"
    file: "%s.zone"
    semantic-checks: off
zone:
  - domain: lab
log:
  - target: stderr
    any: warning
""")
        for stale in ("knot.pid",):
            try:
                os.unlink(f"{d}/{stale}")
            except FileNotFoundError:
                pass
        self.start(f"knot-{s}", ["knotd", "-c", f"{d}/knot.conf"], ns=s, logfile=f"{d}/knot.log")

    def dns_answers(self, s):
        r = self.sh("kdig", "+short", "+retry=0", "+timeout=1", f"@{ANYCAST}", "site.lab", "TXT", check=False, ns=s)
        return r.returncode == 0 and f"site-{s}" in r.stdout

    def start_http(self, s):
        d = self.site_dir(s)
        with open(f"{d}/nginx.conf", "w") as f:
            f.write(f"""daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/nginx.err warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {d}/ngx-body;
    proxy_temp_path {d}/ngx-proxy;
    fastcgi_temp_path {d}/ngx-fcgi;
    uwsgi_temp_path {d}/ngx-uwsgi;
    scgi_temp_path {d}/ngx-scgi;
    default_type text/plain;
    server {{
        listen {ANYCAST}:80;
        location / {{ return 200 "site-{s}\\n"; }}
    }}
}}
""")
        self.start(f"nginx-{s}", ["nginx", "-p", d, "-c", f"{d}/nginx.conf"], ns=s, logfile=f"{d}/nginx.log")

    # ---- the router ----------------------------------------------------
    def start_bird(self):
        conf = os.path.join(self.run, "bird.conf")
        sites = "\n".join(
            f"protocol bgp s{s} from site {{ local {ra} as 65000; neighbor {sa} as 65001; }}"
            for s, (ra, sa, _, _, _) in SITES.items())
        with open(conf, "w") as f:
            f.write(f"""# Runs only inside {self.ns['r']}: its kernel protocol installs the best
# anycast route into that namespace's own table, so the client's packets
# really follow BGP.
router id {CLIENT[0]};
log "{self.run}/bird.events" all;
protocol device {{ scan time 10; }}
# RFC 8326: GRACEFUL_SHUTDOWN (65535:0) means local-pref 0.
filter site_in {{
    if (65535, 0) ~ bgp_community then bgp_local_pref = 0;
    accept;
}}
protocol kernel k4 {{ learn off; ipv4 {{ export filter {{ if net = {ANYCAST}/32 then accept; reject; }}; }}; }}
protocol kernel k6 {{ learn off; ipv6 {{ export filter {{ if net = {ANYCAST6}/128 then accept; reject; }}; }}; }}
template bgp site {{
    passive on;
    hold time 30;
    error wait time 1, 5;
    ipv4 {{ import filter site_in; export none; }};
    ipv6 {{ import filter site_in; export none; }};
}}
{sites}
""")
        self.bird_sock = os.path.join(self.run, "bird.ctl")
        self.start("bird", ["bird", "-f", "-c", conf, "-s", self.bird_sock, "-P", os.path.join(self.run, "bird.pid")],
                   ns="r")
        wait(lambda: os.path.exists(self.bird_sock) and self.bird_connect(), 10, "BIRD")
        self.watcher = threading.Thread(target=self.watch_routes, daemon=True)
        self.watcher.start()

    def bird_connect(self):
        try:
            s = socket.socket(socket.AF_UNIX)
            s.connect(self.bird_sock)
            f = s.makefile("rwb")
            f.readline()
            return (s, f)
        except OSError:
            return None

    def bird(self, conn, cmd):
        """One command over BIRD's control socket (no birdc fork: cheap enough to poll at 10 ms)."""
        _, f = conn
        f.write(cmd.encode() + b"\n")
        f.flush()
        lines = []
        while True:
            raw = f.readline()
            if not raw:
                raise OSError("BIRD closed its socket")
            line = raw.decode(errors="replace").rstrip("\n")
            if line[:4].isdigit() and line[4:5] in ("-", " "):
                lines.append(line[5:])
                if line[4] == " ":
                    return lines
            else:
                lines.append(line[1:])

    def paths(self, conn):
        """{site: {"med": N, "gs": bool, "best": bool}} for the anycast /32."""
        out = {}
        cur = None
        for line in self.bird(conn, f"show route {ANYCAST}/32 all"):
            if "[s" in line and " unicast " in line or line.strip().startswith("unicast ["):
                i = line.index("[s")
                site = line[i + 2:i + 3]
                cur = out[site] = {"med": None, "gs": False, "best": "] * " in line}
            elif cur is not None and "BGP.med:" in line:
                cur["med"] = int(line.split(":")[1])
            elif cur is not None and "BGP.community:" in line:
                cur["gs"] = "(65535,0)" in line
        return out

    def watch_routes(self):
        conn = self.bird_connect()
        prev = {}
        while not self.watch_stop.is_set():
            try:
                now_paths = self.paths(conn)
            except OSError:
                time.sleep(0.05)
                conn = self.bird_connect()
                continue
            t = time.time()
            evs = []
            for s in SITES:
                a, b = prev.get(s), now_paths.get(s)
                if a and not b:
                    evs.append((t, "withdraw", s, ""))
                elif b and (not a or (a["gs"] and not b["gs"])):
                    evs.append((t, "announce", s, f"med {b['med']}"))
                elif b and a:
                    if b["gs"] and not a["gs"]:
                        evs.append((t, "GRACEFUL_SHUTDOWN", s, ""))
                    elif b["med"] != a["med"]:
                        evs.append((t, "med", s, f"med {b['med']}"))
            pb = next((s for s, p in prev.items() if p["best"]), None)
            nb = next((s for s, p in now_paths.items() if p["best"]), None)
            if pb != nb:
                evs.append((t, "best", nb or "-", ""))
            if evs:
                with self.events_lock:
                    self.events.extend(evs)
            prev = now_paths
            self.last_paths = now_paths
            time.sleep(0.01)

    def start_etcd(self):
        if self.etcd:
            return True
        members = [(f"m{s}", SITES[s][0]) for s in SITES]
        cluster = ",".join(f"{n}=http://{ip}:2380" for n, ip in members)
        for n, ip in members:
            self.start(f"etcd-{n}", [
                "etcd", "--name", n, "--data-dir", os.path.join(self.run, f"etcd-{n}"),
                "--listen-client-urls", f"http://{ip}:2379", "--advertise-client-urls", f"http://{ip}:2379",
                "--listen-peer-urls", f"http://{ip}:2380", "--initial-advertise-peer-urls", f"http://{ip}:2380",
                "--initial-cluster", cluster, "--initial-cluster-state", "new",
                "--initial-cluster-token", self.prefix, "--log-level", "warn"], ns="r")
        eps = ",".join(f"http://{ip}:2379" for _, ip in members)
        ok = wait(lambda: self.sh("etcdctl", "--endpoints", eps, "endpoint", "health", check=False,
                                  ns="r").returncode == 0, 20, "etcd", fatal=False)
        self.etcd = ok
        return ok

    # ---- the programs under test ---------------------------------------
    def exaprobe_config(self, s, scen):
        d = self.site_dir(s)
        med = SITES[s][3]
        svc = {
            "name": "dns",
            "prefixes": [f"{ANYCAST}/32", f"{ANYCAST6}/128"],
            "next_hop": "self",
            "next_hop6": f"2001:db8:ffff:{SITES[s][2]}::2",
            "interval": f"{int(TIMING['interval'] * 1000)}ms",
            "fast_interval": f"{int(TIMING['fast_interval'] * 1000)}ms",
            "timeout": f"{int(TIMING['timeout'] * 1000)}ms",
            "rise": TIMING["rise"],
            "fall": TIMING["fall"],
            "checks": [{"type": "dns", "server": f"{ANYCAST}:53", "query": "site.lab", "qtype": "TXT",
                        "answer": f"site-{s}"}],
            "attributes": {"med": med},
            "on_down": "withdraw",
            "drain": {"duration": DRAIN_STAGE},
        }
        top = {"control": {"socket": f"{d}/ctl.sock", "state_file": f"{d}/state.json"}, "services": [svc]}
        ex = subst(copy.deepcopy(scen.get("exaprobe", {})), self.vars(s))
        svc["checks"] += ex.get("extra_checks", [])
        svc.update(ex.get("service", {}))
        top.update(ex.get("top", {}))
        return top

    def vars(self, s):
        return {"site": f"site-{s}", "site_dir": self.site_dir(s), "run": self.run,
                "etcd": [f"http://{SITES[x][0]}:2379" for x in SITES]}

    def healthcheck_args(self, s, scen):
        d = self.site_dir(s)
        hc = subst(copy.deepcopy(scen.get("healthcheck", {})), self.vars(s))
        check = (f"timeout {TIMING['timeout']} kdig +short +retry=0 +timeout=1 @{ANYCAST} site.lab TXT"
                 f" | grep -qx '\"site-{s}\"'" + hc.get("cmd_extra", ""))
        args = ["--cmd", check, "--interval", str(TIMING["interval"]), "--fast-interval",
                str(TIMING["fast_interval"]), "--timeout", "1", "--rise", str(TIMING["rise"]),
                "--fall", str(TIMING["fall"]), "--ip", f"{ANYCAST}/32", "--up-metric", str(SITES[s][3]),
                "--disable", f"{d}/maintenance", "--no-ip-setup", "--no-syslog"]
        if hc.get("withdraw_on_down", True):
            args.append("--withdraw-on-down")
        return args

    def write_program(self, s, prog, scen):
        d = self.site_dir(s)
        for f in ("state.json", "state.json.lock", "maintenance", "degraded", "api.pid"):
            try:
                os.unlink(f"{d}/{f}")
            except FileNotFoundError:
                pass
        if prog == "exaprobe":
            with open(f"{d}/exaprobe.json", "w") as f:
                json.dump(self.exaprobe_config(s, scen), f, indent=1)
            run = f"exec {shlex.quote(self.a.bin)} --config {d}/exaprobe.json 2>>{d}/exaprobe.log"
        else:
            py = os.path.join(os.path.dirname(self.a.exabgp5), "python3")
            args = " ".join(shlex.quote(x) for x in self.healthcheck_args(s, scen))
            run = f"exec {shlex.quote(py)} -m exabgp healthcheck {args} 2>>{d}/healthcheck.log"
        with open(f"{d}/proc.sh", "w") as f:
            f.write(f"#!/bin/sh\n# ExaBGP's API process at site {s}: {prog}\necho $$ >{d}/api.pid\n{run}\n")
        os.chmod(f"{d}/proc.sh", 0o755)
        ra, sa, _, _, _ = SITES[s]
        with open(f"{d}/exabgp.conf", "w") as f:
            f.write(f"""process probe {{
    run {d}/proc.sh;
    encoder text;
}}
neighbor {ra} {{
    router-id {sa};
    local-address {sa};
    local-as 65001;
    peer-as 65000;
    hold-time 30;
    family {{ ipv4 unicast; ipv6 unicast; }}
    api {{ processes [ probe ]; }}
}}
""")

    def check_config(self, scen):
        """None when this exaprobe takes the scenario's config, else why not."""
        s = "a"
        path = os.path.join(self.site_dir(s), "check.json")
        with open(path, "w") as f:
            json.dump(self.exaprobe_config(s, scen), f)
        r = subprocess.run([self.a.bin, "check", "--config", path], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
        if r.returncode == 0:
            return None
        first = (r.stderr.strip().splitlines() or ["?"])[0]
        # "…: error: services[0].watch: unknown key `watch`; the keys here are: …" -> up to the ";"
        return first.replace(path + ": ", "").replace("error: ", "").split(";")[0][:120]

    def start_exabgp(self, s):
        d = self.site_dir(s)
        exe = self.a.exabgp5 if SITES[s][4] == 5 else self.a.exabgp4
        env = {"exabgp_daemon_daemonize": "false", "exabgp_daemon_user": "root", "exabgp_log_destination": "stdout",
               "exabgp_log_short": "false", "exabgp_api_cli": "false", "exabgp_api_ack": "true"}
        self.start(f"exabgp-{s}", [exe, f"{d}/exabgp.conf"], ns=s, logfile=f"{d}/exabgp.log", env=env)

    def api_pid(self, s):
        try:
            pid = int(open(os.path.join(self.site_dir(s), "api.pid")).read())
            cmd = open(f"/proc/{pid}/cmdline", "rb").read()
        except (OSError, ValueError):
            return None
        return pid if (b"exaprobe" in cmd or b"healthcheck" in cmd) else None

    def stop_exabgp(self, s):
        api = self.api_pid(s)
        self.stop(f"exabgp-{s}")
        if api and self.api_pid(s) == api:
            try:
                os.kill(api, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def all_up(self):
        p = getattr(self, "last_paths", {})
        return (set(p) == set(SITES) and p["a"]["best"] and not any(x["gs"] for x in p.values())
                and all(p[s]["med"] == SITES[s][3] for s in SITES))

    def restore_sites(self):
        for s in SITES:
            self.signal(f"knot-{s}", signal.SIGCONT)
            if not self.alive(f"knot-{s}"):
                self.start_dns(s)
        for f in ("global-broken",):
            try:
                os.unlink(os.path.join(self.run, f))
            except FileNotFoundError:
                pass
        for s in SITES:
            wait(lambda s=s: self.dns_answers(s), 10, f"knotd at site {s}")

    # ---- one scenario with one program ---------------------------------
    def run_one(self, scen, prog, out_dir):
        for s in SITES:
            self.write_program(s, prog, scen)
            self.start_exabgp(s)
        if not wait(self.all_up, 25, "all three sites announced, site a best", fatal=False):
            for s in SITES:
                self.stop_exabgp(s)
            return {"error": "the sites did not all come up", "paths": getattr(self, "last_paths", {})}
        time.sleep(0.3)  # let every session settle its first updates
        if prog == "exaprobe" and not hasattr(self, "v6_route"):
            # exaprobe announces the IPv6 anycast too (the bundled healthcheck's next-hop self
            # cannot carry it over an IPv4 session): is it in the router's kernel table?
            r = self.sh("ip", "-6", "route", "show", f"{ANYCAST6}/128", check=False, ns="r")
            self.v6_route = r.stdout.strip()
        dur = scen["duration"]
        t0 = time.time() + 0.5
        cout = os.path.join(self.run, f"client-{scen['name']}-{prog}.json")
        self.start("client", ["python3", os.path.join(HERE, "client.py"), "--start", str(t0), "--duration",
                              str(dur), "--rate", str(QPS), "--out", cout], ns="cl")
        steps = sorted(scen["steps"], key=lambda x: x["at"])
        marks, drill = [], None
        pending = []
        for st in steps:
            pending.append((st["at"], st))
            if st["do"] == "drain" and prog == "exaprobe":
                # the drill watches 1 s before the drain: start it that much earlier
                pending.append((st["at"] - 1.0, dict(st, do="drill")))
                pending.remove((st["at"], st))
            elif st["do"] == "drain":
                pending.append((st["at"] + st["for"], dict(st, do="maintenance-off")))
            elif st["do"] == "flap":
                for k in range(st["count"]):
                    t = st["at"] + k * st["every"]
                    pending.append((t, dict(st, do="kill", what="dns")))
                    pending.append((t + st.get("down", st["every"] / 2), dict(st, do="start", what="dns")))
                pending.remove((st["at"], st))
        pending.sort(key=lambda x: x[0])
        for at, st in pending:
            delay = t0 + at - time.time()
            if delay > 0:
                time.sleep(delay)
            label, drill = self.do(st, prog, drill)
            if label:
                marks.append((time.time(), label))
        self.procs["client"].wait(dur + 15)
        self.procs.pop("client", None)
        drill_report = None
        if drill is not None:
            try:
                drill.wait(15)
                drill_report = json.load(open(os.path.join(self.site_dir("a"), "drill.json")))
            except (subprocess.TimeoutExpired, OSError, ValueError) as e:
                drill_report = {"error": str(e)}
        data = json.load(open(cout))
        with self.events_lock:
            evs = [e for e in self.events if t0 - 0.2 <= e[0] <= t0 + dur + 0.5]
        for s in SITES:
            self.stop_exabgp(s)
        self.restore_sites()
        # The drain request is the drill's moment; every other scenario's is its first step.
        action = t0 + (steps[0]["at"] if steps else 0)
        if drill_report and drill_report.get("drained_at"):
            action = drill_report["drained_at"]
        res = report.measure(data, evs, action, t0, dur)
        if drill_report and drill_report.get("drained_at"):
            marks.append((drill_report["drained_at"], "drill: drain request"))
        if drill_report and drill_report.get("undrained_at"):
            marks.append((drill_report["undrained_at"], "drill: undrain request"))
        res["marks"] = [[round(t - t0, 3), m] for t, m in sorted(marks)]
        res["events"] = [[round(t - t0, 3), k, s, d] for t, k, s, d in evs]
        if drill_report is not None:
            res["drill"] = drill_report
        res["_data"] = data
        return res

    def do(self, st, prog, drill):
        s = st.get("site", "a")
        d = self.site_dir(s)
        what = st["do"]
        if what == "kill":
            self.signal(f"knot-{s}", signal.SIGKILL)
            return f"kill -9 knotd {s}", drill
        if what == "start":
            if not self.alive(f"knot-{s}"):
                self.start_dns(s)
            return f"knotd {s} started", drill
        if what == "stop":
            self.signal(f"knot-{s}", signal.SIGSTOP)
            return f"SIGSTOP knotd {s}", drill
        if what == "cont":
            self.signal(f"knot-{s}", signal.SIGCONT)
            return f"SIGCONT knotd {s}", drill
        if what == "degrade":
            open(f"{d}/degraded", "w").close()
            return f"degrade {s}", drill
        if what == "undegrade":
            os.unlink(f"{d}/degraded")
            return f"undegrade {s}", drill
        if what == "kill-api":
            pid = self.api_pid(s)
            if pid:
                os.kill(pid, signal.SIGKILL)
            return f"kill -9 {prog} {s}", drill
        if what == "exabgp-stop":
            self.stop(f"exabgp-{s}")
            return f"ExaBGP {s} stopped", drill
        if what == "exabgp-start":
            self.start_exabgp(s)
            return f"ExaBGP {s} started", drill
        if what == "global-fail":
            open(os.path.join(self.run, "global-broken"), "w").close()
            return "every site's check fails", drill
        if what == "global-ok":
            os.unlink(os.path.join(self.run, "global-broken"))
            return "checks pass again", drill
        if what == "drain":  # the bundled healthcheck's way: its maintenance file
            open(f"{d}/maintenance", "w").close()
            return f"maintenance file {s}", drill
        if what == "maintenance-off":
            os.unlink(f"{d}/maintenance")
            return f"maintenance file removed {s}", drill
        if what == "drill":
            witness = (f"ip netns exec {self.ns['cl']} kdig +short +retry=0 +timeout=1 @{ANYCAST} site.lab TXT")
            out = open(f"{d}/drill.json", "w")
            drill = subprocess.Popen(
                [self.a.bin, "drill", "dns", "--socket", f"{d}/ctl.sock", "--for", f"{st['for']}s", "--before", "1s",
                 "--after", "1s", "--rate", "10", "--witness", witness, "--json", "--reason", "lab"],
                stdin=subprocess.DEVNULL, stdout=out, stderr=open(f"{d}/drill.err", "w"))
            out.close()
            with open(os.path.join(self.run, "pids"), "a") as f:
                f.write(f"{drill.pid} exaprobe\n")
            return "drill starts (1 s baseline)", drill
        raise ValueError(f"unknown step {what!r}")


def subst(v, vars_):
    if isinstance(v, str):
        for k, x in vars_.items():
            if v == "{" + k + "}":
                return x
            if isinstance(x, str):
                v = v.replace("{" + k + "}", x)
        return v
    if isinstance(v, list):
        return [subst(x, vars_) for x in v]
    if isinstance(v, dict):
        return {k: subst(x, vars_) for k, x in v.items()}
    return v


def wait(cond, timeout, what, fatal=True):
    until = time.time() + timeout
    while time.time() < until:
        try:
            if cond():
                return True
        except OSError:
            pass
        time.sleep(0.05)
    if fatal:
        raise RuntimeError(f"timed out waiting for {what}")
    log(f"timed out waiting for {what}")
    return False


def load_scenarios(names, short):
    d = os.path.join(HERE, "scenarios")
    out = []
    for f in sorted(os.listdir(d)):
        if not f.endswith(".json"):
            continue
        sc = json.load(open(os.path.join(d, f)))
        if names and sc["name"] not in names:
            continue
        if short:
            if "short" not in sc:
                continue
            sc.update(sc["short"])
        out.append(sc)
    out.sort(key=lambda s: s.get("order", 99))
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--run", required=True)
    p.add_argument("--prefix", required=True)
    p.add_argument("--bin", required=True)
    p.add_argument("--exabgp5", required=True)
    p.add_argument("--exabgp4", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--short", action="store_true")
    p.add_argument("--programs", default="exaprobe,healthcheck")
    p.add_argument("scenarios", nargs="*")
    a = p.parse_args()
    progs = [x for x in a.programs.split(",") if x]
    scens = load_scenarios(set(a.scenarios), a.short)
    if not scens:
        log("no scenario to run")
        return 2
    os.makedirs(a.out, exist_ok=True)
    lab = Lab(a)
    stopping = []

    def on_signal(sig, _):
        stopping.append(sig)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    results = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "mode": "short" if a.short else "full",
               "timing": TIMING, "qps": QPS, "drain_stage": DRAIN_STAGE, "scenarios": []}
    t = time.time()
    try:
        lab.build()
        results["build_s"] = round(time.time() - t, 2)
        log(f"lab built in {results['build_s']} s ({', '.join(lab.ns.values())})")
        for sc in scens:
            entry = {"name": sc["name"], "title": sc["title"], "target": sc.get("target", {}), "runs": {}}
            results["scenarios"].append(entry)
            why = lab.check_config(sc) if sc.get("needs") else None
            if why is None and sc.get("etcd"):
                if not lab.start_etcd():
                    why = "etcd did not come up"
            for prog in progs:
                if prog not in sc.get("programs", ["exaprobe", "healthcheck"]):
                    entry["runs"][prog] = {"skipped": sc.get("not_for", {}).get(prog, "not for this program")}
                    continue
                if why is not None:
                    entry["runs"][prog] = {"skipped": f"needs {sc['needs']} ({why})"}
                    log(f"{sc['name']} / {prog}: skipped: needs {sc['needs']}")
                    continue
                ts = time.time()
                log(f"{sc['name']} / {prog} ...")
                r = lab.run_one(sc, prog, a.out)
                r["seconds"] = round(time.time() - ts, 1)
                entry["runs"][prog] = r
                log(f"{sc['name']} / {prog}: sent {r.get('sent')} lost {r.get('lost')} "
                    f"shift {r.get('time_to_shift_ms')} ms ({r['seconds']} s)")
    except KeyboardInterrupt:
        log("interrupted")
        results["interrupted"] = True
    except Exception as e:  # noqa: BLE001 - reported, then the lab is removed all the same
        log(f"failed: {e}")
        results["error"] = str(e)
    finally:
        t = time.time()
        lab.teardown()
        results["teardown_s"] = round(time.time() - t, 2)
        results["ipv6_route_at_router"] = getattr(lab, "v6_route", None)
        log(f"lab removed in {results['teardown_s']} s")
    report.write(results, a.out)
    if results.get("error") or results.get("interrupted"):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
