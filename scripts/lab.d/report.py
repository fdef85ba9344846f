"""The lab's figures and pictures: what the client lost, per scenario and
program (report.json), a summary table (stdout and report.md) with the
issue's targets beside the figures, and per scenario an SVG a post-mortem
could use: time on x, which site answered each DNS query (one lane per
site), lost queries, the routes' BGP events at the upstream router and the
lab's own actions as vertical lines. Pure SVG, written by hand."""

import json
import os
import sys

SITE_COLOURS = {"site-a": "#1f77b4", "site-b": "#2ca02c", "site-c": "#ff7f0e"}
LOST = "#d62728"
EVENT_COLOURS = {"withdraw": "#000000", "announce": "#7f7f7f", "GRACEFUL_SHUTDOWN": "#9467bd", "med": "#8c564b"}


def measure(data, events, action, t0, dur):
    """The figures of one run: DNS and HTTP, from the client's records."""
    period = data["period"]
    dns = data["dns"]
    answered = [q for q in dns if q[1] is not None]
    lost = len(dns) - len(answered)
    sends = [t0] + [q[0] for q in answered] + [t0 + dur]
    gap = max((b - a for a, b in zip(sends, sends[1:])), default=0.0) - period
    shift = None
    for q in answered:
        if q[0] >= action and q[2] != "site-a":
            shift = round((q[0] + q[1] / 1000 - action) * 1000, 1)
            break
    per_site = {}
    for q in answered:
        per_site[q[2] or "?"] = per_site.get(q[2] or "?", 0) + 1
    lat = sorted(q[1] for q in answered)
    http = data.get("http", [])
    http_ok = [h for h in http if h[1] is not None]
    http_sites = {}
    for h in http_ok:
        http_sites[h[2]] = http_sites.get(h[2], 0) + 1
    return {
        "sent": len(dns),
        "lost": lost,
        "lost_ms": round(lost * period * 1000, 1),
        "longest_gap_ms": round(max(gap, 0.0) * 1000, 1),
        "time_to_shift_ms": shift,
        "answers_per_site": per_site,
        "latency_ms_p50": lat[len(lat) // 2] if lat else None,
        "latency_ms_max": lat[-1] if lat else None,
        "http": {"sent": len(http), "lost": len(http) - len(http_ok), "answers_per_site": http_sites},
        "route_changes": sum(1 for e in events if e[1] != "best"),
        "best_path_changes": sum(1 for e in events if e[1] == "best"),
    }


def verdict(run, target):
    """'met', 'MISSED' or '' (a figure to report, no target)."""
    keys = ("lost_max", "lost_ms_max", "longest_gap_ms_max")
    if not any(k in target for k in keys) or "sent" not in run:
        return ""
    ok = True
    for key, field in (("lost_max", "lost"), ("lost_ms_max", "lost_ms"), ("longest_gap_ms_max", "longest_gap_ms")):
        if key in target:
            ok = ok and run[field] <= target[key]
    return "met" if ok else "MISSED"


def fmt_sites(d):
    return "/".join(str(d.get(f"site-{s}", 0)) for s in "abc")


def table(results):
    rows = []
    head = ("scenario", "program", "sent", "lost", "lost ms", "longest gap ms", "shift ms", "answers a/b/c",
            "BGP changes", "target", "verdict")
    for sc in results["scenarios"]:
        for prog, run in sc["runs"].items():
            target = sc.get("target", {}).get(prog, {})
            if "skipped" in run or "error" in run:
                rows.append((sc["name"], prog, "", "", "", "", "", "", "", target.get("text", ""),
                             "skipped: " + run["skipped"] if "skipped" in run else "error: " + run["error"]))
                continue
            rows.append((sc["name"], prog, str(run["sent"]), str(run["lost"]), f"{run['lost_ms']:.0f}",
                         f"{run['longest_gap_ms']:.0f}",
                         "-" if run["time_to_shift_ms"] is None else f"{run['time_to_shift_ms']:.0f}",
                         fmt_sites(run["answers_per_site"]), str(run["route_changes"]), target.get("text", ""),
                         verdict(run, target)))
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def lab_targets(results):
    out = []
    b, t = results.get("build_s"), results.get("teardown_s")
    if b is not None and t is not None:
        out.append(f"- lab build {b} s + teardown {t} s = {b + t:.1f} s (target: under 30 s): "
                   f"{'met' if b + t < 30 else 'MISSED'}")
    longest = max((r.get("seconds", 0) for sc in results["scenarios"] for r in sc["runs"].values()), default=0)
    if longest:
        out.append(f"- longest scenario run (with the sites' start and stop) {longest} s (target: under 20 s): "
                   f"{'met' if longest < 20 else 'MISSED'}")
    return "\n".join(out)


def runs(sc, prog):
    return sc["runs"].get(prog, {})


def panel(run, title, width, x0, y0, dur):
    """One run as SVG elements: lanes site-a/b/c and lost; events as lines."""
    el = []
    lanes = ["site-a", "site-b", "site-c", "lost"]
    lane_h, top = 16, 44
    plot_w = width - x0 - 20

    def x(t):
        return x0 + max(0.0, min(dur, t)) / dur * plot_w

    el.append(f'<text x="{x0}" y="{y0 + 12}" font-size="13" font-weight="bold">{esc(title)}</text>')
    for i, lane in enumerate(lanes):
        y = y0 + top + i * lane_h
        el.append(f'<text x="{x0 - 6}" y="{y + 11}" font-size="11" text-anchor="end">{lane}</text>')
        el.append(f'<line x1="{x0}" y1="{y + 8}" x2="{x0 + plot_w}" y2="{y + 8}" stroke="#eee"/>')
    data = run.get("_data")
    if data:
        t0, period = data["start"], data["period"]
        # consecutive queries in the same lane become one bar: small files, same picture
        bars = []
        for q in data["dns"]:
            lane = "lost" if q[1] is None else (q[2] if q[2] in SITE_COLOURS else "lost")
            t = q[0] - t0
            if bars and bars[-1][0] == lane and t - bars[-1][2] < 10 * period:
                bars[-1][2] = t
            else:
                bars.append([lane, t, t])
        for lane, a, b in bars:
            i = lanes.index(lane)
            y = y0 + top + i * lane_h + 3
            w = max(x(b + period) - x(a), 1.2)
            colour = LOST if lane == "lost" else SITE_COLOURS[lane]
            el.append(f'<rect x="{x(a):.1f}" y="{y}" width="{w:.1f}" height="10" fill="{colour}"/>')
    bottom = y0 + top + len(lanes) * lane_h
    stagger = 0
    row_end = [float("-inf")] * 6
    rows_used = 1
    for t, kind, site, detail in run.get("events", []):
        if kind == "best":
            continue
        colour = EVENT_COLOURS.get(kind, "#000")
        el.append(f'<line x1="{x(t):.1f}" y1="{y0 + top - 2}" x2="{x(t):.1f}" y2="{bottom + 2}" stroke="{colour}" '
                  f'stroke-width="1.2"/>')
        label = {"GRACEFUL_SHUTDOWN": "GRACEFUL_SHUTDOWN"}.get(kind, kind) + f" {site}"
        # the first row where the label clears the one before it
        row = next((r for r, end in enumerate(row_end) if end < x(t)), stagger % len(row_end))
        row_end[row] = x(t) + 2 + 5.2 * len(label)
        rows_used = max(rows_used, row + 1)
        el.append(f'<text x="{x(t) + 2:.1f}" y="{bottom + 12 + 10 * row}" font-size="9" '
                  f'fill="{colour}">{esc(label)}</text>')
        stagger += 1
    for k, (t, label) in enumerate(run.get("marks", [])):
        el.append(f'<line x1="{x(t):.1f}" y1="{y0 + top - 2}" x2="{x(t):.1f}" y2="{bottom + 2}" stroke="{LOST}" '
                  f'stroke-dasharray="3,2"/>')
        el.append(f'<text x="{x(t) + 2:.1f}" y="{y0 + top - 16 + 10 * (k % 2)}" font-size="9" '
                  f'fill="{LOST}">{esc(label)}</text>')
    # time axis
    ay = bottom + 24 + 10 * rows_used
    el.append(f'<line x1="{x0}" y1="{ay}" x2="{x0 + plot_w}" y2="{ay}" stroke="#999"/>')
    step = 1 if dur <= 12 else 2
    s = 0
    while s <= dur + 1e-9:
        el.append(f'<line x1="{x(s):.1f}" y1="{ay}" x2="{x(s):.1f}" y2="{ay + 4}" stroke="#999"/>')
        el.append(f'<text x="{x(s):.1f}" y="{ay + 14}" font-size="9" text-anchor="middle">{s} s</text>')
        s += step
    if "sent" in run:
        sub = (f"sent {run['sent']}, lost {run['lost']} ({run['lost_ms']:.0f} ms), longest gap "
               f"{run['longest_gap_ms']:.0f} ms, shift "
               f"{'-' if run['time_to_shift_ms'] is None else str(round(run['time_to_shift_ms'])) + ' ms'}")
        el.append(f'<text x="{x0 + plot_w}" y="{y0 + 12}" font-size="10" text-anchor="end">{esc(sub)}</text>')
    return el, ay + 24 - y0


def svg(panels, path, title):
    width = 960
    x0 = 60
    y = 30
    body = [f'<text x="10" y="18" font-size="14" font-weight="bold">{esc(title)}</text>']
    for run, ptitle, dur in panels:
        el, h = panel(run, ptitle, width, x0, y, dur)
        body += el
        y += h + 8
    legend = " ".join(
        f'<rect x="{10 + i * 120}" y="{y}" width="10" height="10" fill="{c}"/>'
        f'<text x="{24 + i * 120}" y="{y + 9}" font-size="10">{esc(n)}</text>'
        for i, (n, c) in enumerate(list(SITE_COLOURS.items()) + [("lost query", LOST)]))
    body.append(legend)
    body.append(f'<line x1="{10 + 4 * 120}" y1="{y}" x2="{10 + 4 * 120}" y2="{y + 10}" stroke="{LOST}" '
                f'stroke-dasharray="3,2"/><text x="{16 + 4 * 120}" y="{y + 9}" font-size="10">lab action</text>'
                f'<line x1="{10 + 5 * 120}" y1="{y}" x2="{10 + 5 * 120}" y2="{y + 10}" stroke="#000"/>'
                f'<text x="{16 + 5 * 120}" y="{y + 9}" font-size="10">BGP event at the router (BIRD)</text>')
    y += 20
    with open(path, "w") as f:
        f.write(f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{y}" '
                f'viewBox="0 0 {width} {y}" font-family="sans-serif">\n'
                f'<rect width="100%" height="100%" fill="white"/>\n' + "\n".join(body) + "\n</svg>\n")


def esc(s):
    return str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def write(results, out):
    # pictures first: they need the raw client records, which report.json leaves out
    for sc in results["scenarios"]:
        panels = []
        for prog, run in sc["runs"].items():
            if "_data" in run:
                panels.append((run, prog, sc_duration(run)))
        if panels:
            svg(panels, os.path.join(out, f"{sc['name']}.svg"), f"{sc['title']} (DNS queries from the client)")
    by = {sc["name"]: sc for sc in results["scenarios"]}
    names = {"drain": "planned drain (exaprobe drill / maintenance file)", "crash": "crash (kill -9 of knotd)"}
    combo = [(runs(by[n], p), f"{names[n]}: {p}", sc_duration(runs(by[n], p)))
             for n in ("drain", "crash") if n in by for p in ("exaprobe", "healthcheck") if "_data" in runs(by[n], p)]
    if combo:
        svg(combo, os.path.join(out, "gameday.svg"),
            f"Planned drain vs crash, exaprobe vs the bundled healthcheck ({results['date']})")
    # the client's records, so the pictures can be drawn again (python3 report.py OUT)
    os.makedirs(os.path.join(out, "data"), exist_ok=True)
    for sc in results["scenarios"]:
        for prog, run in sc["runs"].items():
            data = run.pop("_data", None)
            if data is not None:
                with open(os.path.join(out, "data", f"{sc['name']}-{prog}.json"), "w") as f:
                    json.dump(data, f)
    with open(os.path.join(out, "report.json"), "w") as f:
        json.dump(results, f, indent=1)
    tab = table(results)
    t = results["timing"]
    md = (f"# Game day lab: {results['date']} ({results['mode']} run)\n\n"
          f"Client: {results['qps']} DNS queries/s over UDP (an answer later than 1 s is lost). Every program: "
          f"interval {t['interval']} s, fast interval {t['fast_interval']} s, timeout {t['timeout']} s, "
          f"rise {t['rise']}, fall {t['fall']}; exaprobe's drain stage {results['drain_stage']}. "
          f"Detection bound of a crash: interval + (fall - 1) x fast interval = "
          f"{(t['interval'] + (t['fall'] - 1) * t['fast_interval']) * 1000:.0f} ms.\n\n"
          f"{tab}\n\n{lab_targets(results)}\n")
    if results.get("error"):
        md += f"\n**The lab failed: {results['error']}**\n"
    with open(os.path.join(out, "report.md"), "w") as f:
        f.write(md)
    sys.stdout.write(md)


def sc_duration(run):
    d = run.get("_data")
    if not d or not d["dns"]:
        return 1.0
    return max(1.0, round(d["dns"][-1][0] - d["start"] + d["period"], 1))


if __name__ == "__main__":
    # Draws the pictures and the table again from OUT/report.json and OUT/data/.
    out_dir = sys.argv[1]
    res = json.load(open(os.path.join(out_dir, "report.json")))
    for sc in res["scenarios"]:
        for prog, run in sc["runs"].items():
            path = os.path.join(out_dir, "data", f"{sc['name']}-{prog}.json")
            if os.path.exists(path):
                run["_data"] = json.load(open(path))
    write(res, out_dir)
