#!/usr/bin/env python3
"""The test suite's check of a short lab run (scripts/test): the report
exists, both scenarios ran with exaprobe, and the figures are within
generous bounds: a planned drain loses nothing, a crash loses less than the
detection bound plus 1 s. Usage: assert_short.py REPORT.json"""

import json
import sys

r = json.load(open(sys.argv[1]))
t = r["timing"]
bound_ms = (t["interval"] + (t["fall"] - 1) * t["fast_interval"]) * 1000
errors = []
if r.get("error") or r.get("interrupted"):
    errors.append(f"the lab failed: {r.get('error', 'interrupted')}")
by = {s["name"]: s for s in r["scenarios"]}
for name in ("drain", "crash"):
    run = by.get(name, {}).get("runs", {}).get("exaprobe", {})
    if "sent" not in run:
        errors.append(f"{name}/exaprobe did not run: {run}")
        continue
    if run["sent"] < 500:
        errors.append(f"{name}/exaprobe: only {run['sent']} queries sent")
    if name == "drain" and run["lost"] != 0:
        errors.append(f"drain/exaprobe lost {run['lost']} queries (want 0)")
    if name == "crash" and not 0 < run["lost_ms"] < bound_ms + 1000:
        errors.append(f"crash/exaprobe lost {run['lost_ms']} ms (want above 0 and under {bound_ms + 1000:.0f})")
    if name == "crash" and run["time_to_shift_ms"] is None:
        errors.append("crash/exaprobe: the client never got an answer from another site")
for e in errors:
    print(f"assert_short: {e}", file=sys.stderr)
sys.exit(1 if errors else 0)
