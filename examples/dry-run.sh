#!/usr/bin/env bash
# Try a check without ExaBGP: exaprobe --dry-run prints the exact lines it would
# send (stdout) and its state transitions with reasons (stderr).
# A small HTTP service on 127.0.0.1:18081 is started, stopped and started again.
# Usage: examples/dry-run.sh [path/to/exaprobe]
set -euo pipefail
cd "$(dirname "$0")/.."
exe=${1:-target/debug/exaprobe}
[ -x "$exe" ] || cargo build --quiet
svc() { python3 -m http.server 18081 --bind 127.0.0.1 >/dev/null 2>&1 & echo $!; }
http=$(svc); sleep 0.5
probe=""
cleanup() { kill "$http" ${probe:+"$probe"} 2>/dev/null || true; }
trap cleanup EXIT
"$exe" --dry-run --tcp 127.0.0.1:18081 --cmd 'curl -sf -o /dev/null http://127.0.0.1:18081/' \
    --ip 198.51.100.80/32 --ip 2001:db8::80/128 --next-hop6 2001:db8:ffff::1 \
    --interval 1 --fast-interval 0.5 --rise 2 --fall 2 --withdraw-on-down &
probe=$!
sleep 3; echo "--- stopping the service" >&2; kill "$http"
sleep 3; echo "--- starting the service again" >&2; http=$(svc)
sleep 4; echo "--- Ctrl-C (SIGINT): exaprobe withdraws and exits" >&2; kill -INT "$probe"; wait "$probe"
