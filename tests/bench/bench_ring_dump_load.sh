#!/usr/bin/env bash
# Issue 12 acceptance, measured: data taking at the demo load while the raw-data ring takes every
# slice and a dump is written. Two runs of the demo setup (4 DUs of detector 133, du-sim in real
# time with 20 muons/s, over ZeroMQ on loopback), same seed:
#   baseline  [ring] off
#   dump      [ring] on (RING_SECONDS of detector time), and RING_DUMP_AT s into the feed
#             `shorectl dump` of [now - 15 s, now + 5 s]: it is written while data keep coming.
# Prints per run: slices built and written, every non-zero drop counter, commit latency p50/p99,
# and for the dump run the ring's skipped slices by cause and the dump's state, slices, missing
# slices and writing time; then the p99 ratio dump/baseline (same machine, same run of this script).
# A measurement, never pass/fail.
#   tests/bench/bench_ring_dump_load.sh [build]    (env: SECONDS_TO_RUN=40 RING_SECONDS=30 RING_DUMP_AT=25 DUS=first:4)
set -euo pipefail
BUILD=$(readlink -f "${1:-build}")
SECONDS_TO_RUN=${SECONDS_TO_RUN:-40}
RING_SECONDS=${RING_SECONDS:-30}
RING_DUMP_AT=${RING_DUMP_AT:-25}
DUS=${DUS:-first:4}
TESTDATA=$(sed -n 's/^SHOREDAQ_TESTDATA_DIR:INTERNAL=//p' "$BUILD/CMakeCache.txt")
DETX="$TESTDATA/detx/KM3NeT_00000133_20221025.detx"
SHOREDAQ="$BUILD/firmware/shoredaq" SHORECTL="$BUILD/firmware/shorectl" DUSIM="$BUILD/drivers/du-sim"

WORK=$(mktemp -d -t shoredaq-ringload.XXXXXX)
DAEMON_PID="" SIM_PID=""
cleanup() {
  [ -n "$SIM_PID" ] && kill "$SIM_PID" 2>/dev/null || true
  [ -n "$DAEMON_PID" ] && kill -KILL "$DAEMON_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM
"$SHOREDAQ" detx --detx "$DETX" --dus "$DUS" --out "$WORK/detector.detx" >/dev/null

# run NAME RING(true|false): one run; leaves its status JSON in $WORK/NAME.json.
run() {
  local name=$1 ring=$2 dir="$WORK/$1"
  mkdir -p "$dir/run"
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  local ctl=("$SHORECTL" --endpoint "ipc://$dir/run/control.sock")
  cat > "$dir/shoredaq.toml" <<TOML
[node]
state_dir = "$dir/state"
runtime_dir = "$dir/run"
workers = 1
[ingest]
endpoints = ["tcp://127.0.0.1:$port"]
[control]
endpoint = "ipc://$dir/run/control.sock"
[store]
disk_reserve_mb = 64
[metrics]
port = 0
[ring]
enabled = $ring
seconds = $RING_SECONDS
max_mb = $((RING_SECONDS * 100 + 256))
sn_dump = false
TOML
  "$SHOREDAQ" --config "$dir/shoredaq.toml" 2> "$dir/shoredaq.log" &
  DAEMON_PID=$!
  for _ in $(seq 100); do "${ctl[@]}" --timeout 500 status >/dev/null 2>&1 && break; sleep 0.1; done
  "${ctl[@]}" init >/dev/null
  "${ctl[@]}" configure --detx "$WORK/detector.detx" >/dev/null
  "${ctl[@]}" start --run 1 >/dev/null
  "$DUSIM" --detx "$WORK/detector.detx" --seconds "$SECONDS_TO_RUN" --realtime --run 1 --seed 1 \
    --muon-rate-hz 20 --endpoint "tcp://127.0.0.1:$port" 2>/dev/null &
  SIM_PID=$!
  if [ "$ring" = true ]; then
    sleep "$RING_DUMP_AT"
    local now
    now=$(date +%s)
    "${ctl[@]}" dump --from $((now - 15)) --to $((now + 5)) --reason "bench: dump at the demo load"
  fi
  wait "$SIM_PID"
  SIM_PID=""
  # The dump waits for its window's end; let it finish before the run stops.
  for _ in $(seq 600); do
    "${ctl[@]}" --json status > "$dir/status.json"
    python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); r=s.get("ring") or {}; sys.exit(any(d["state"]=="STARTED" for d in r.get("dumps",[])))' "$dir/status.json" && break
    sleep 0.1
  done
  "${ctl[@]}" --timeout 60000 stop >/dev/null
  "${ctl[@]}" --json status > "$WORK/$name.json"
  "${ctl[@]}" quit >/dev/null
  wait "$DAEMON_PID" || true
  DAEMON_PID=""
}

run baseline false
run dump true

python3 - "$WORK/baseline.json" "$WORK/dump.json" <<'PY'
import json, sys
runs = {name: json.load(open(path)) for name, path in zip(("baseline", "dump"), sys.argv[1:])}
def counter(s, key):
    return s.get("counters", {}).get(key, 0)
for name, s in runs.items():
    drops = {k: v for k, v in s.get("drops", {}).items() if v}
    print(f"{name}: slices {counter(s, 'slices')}, written {counter(s, 'slices_written')}, commit latency "
          f"p50 {counter(s, 'commit_latency_ms.p50'):.1f} ms p99 {counter(s, 'commit_latency_ms.p99'):.1f} ms, "
          f"drops {drops or 'none'}")
r = runs["dump"].get("ring") or {}
print(f"ring: stored {r.get('stored')}, skipped {r.get('skipped')}")
for d in r.get("dumps", []):
    print(f"dump {d['id']}: {d['state']}, {d['slices']} slices, {d['missing_slices']} missing, "
          f"{d['bytes'] / 1e6:.0f} MB in {d['seconds']:.2f} s {d.get('error', '')}")
b, d = (counter(runs[n], "commit_latency_ms.p99") for n in ("baseline", "dump"))
if b and d:
    print(f"commit latency p99 ratio dump/baseline: {d / b:.2f}")
PY
