#!/usr/bin/env bash
# The demo behind ./dev demo (argument: the build folder): the node end to end.
#   shoredaq (the daemon) <-- ZeroMQ PUSH/PULL on loopback TCP -- du-sim: 4 DUs of detector 133, real time, 20 s
#   run control through shorectl (init, configure, start, stop, quit), then the run summary from
#   shore-events (slices, hits, events per trigger, reduction factor, stored bytes, spool files), and
#   the run's figures from shore-events plot when gnuplot is installed (DEMO_PLOTS=DIR keeps them).
# Every process started here is stopped on exit (trap), and the work folder removed.
set -euo pipefail
BUILD=$(readlink -f "${1:-build}")
SECONDS_TO_RUN=${DEMO_SECONDS:-20}
DUS=${DEMO_DUS:-first:4}

# The reference data as the configure step staged it into the build folder (tests/data/km3net-testdata).
TESTDATA=$(sed -n 's/^SHOREDAQ_TESTDATA_DIR:INTERNAL=//p' "$BUILD/CMakeCache.txt" 2>/dev/null || true)
TESTDATA=${TESTDATA:-$BUILD/testdata/km3net-testdata}
DETX="$TESTDATA/detx/KM3NeT_00000133_20221025.detx"
if [ ! -f "$DETX" ]; then
  echo "demo: $DETX is missing: configure and build first (./dev demo does both)" >&2
  exit 1
fi
SHOREDAQ="$BUILD/firmware/shoredaq"
SHORECTL="$BUILD/firmware/shorectl"
DUSIM="$BUILD/drivers/du-sim"
EVENTS="$BUILD/storage/shore-events"

WORK=$(mktemp -d -t shoredaq-demo.XXXXXX)
DAEMON_PID=""
SIM_PID=""
cleanup() {
  [ -n "$SIM_PID" ] && kill "$SIM_PID" 2>/dev/null || true
  if [ -n "$DAEMON_PID" ] && kill -0 "$DAEMON_PID" 2>/dev/null; then
    kill -TERM "$DAEMON_PID" 2>/dev/null || true  # SIGTERM = stop + quit
    for _ in $(seq 50); do kill -0 "$DAEMON_PID" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$DAEMON_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# A free loopback port for the DU stream (the kernel picks it; we release it just before the node binds).
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null ||
       echo $((20000 + RANDOM % 20000)))
INGEST="tcp://127.0.0.1:$PORT"
CONTROL="ipc://$WORK/run/control.sock"
CTL=("$SHORECTL" --endpoint "$CONTROL")

say "detector: the $DUS DUs of detector 133 (ARCA)"
"$SHOREDAQ" detx --detx "$DETX" --dus "$DUS" --out "$WORK/detector.detx"

cat > "$WORK/shoredaq.toml" <<TOML
[node]
state_dir = "$WORK/state"
runtime_dir = "$WORK/run"
workers = 1
[ingest]
endpoints = ["$INGEST"]
[control]
endpoint = "$CONTROL"
[store]
disk_reserve_mb = 64
[metrics]
port = 0
TOML
"$SHOREDAQ" --check-config "$WORK/shoredaq.toml"

say "starting shoredaq (DU stream on $INGEST, control on $CONTROL)"
mkdir -p "$WORK/run"
"$SHOREDAQ" --config "$WORK/shoredaq.toml" 2> "$WORK/shoredaq.log" &
DAEMON_PID=$!
for _ in $(seq 100); do "${CTL[@]}" --timeout 500 status >/dev/null 2>&1 && break; sleep 0.1; done
"${CTL[@]}" status | head -1
grep -o 'metrics on .*' "$WORK/shoredaq.log" || true

say "run control: init, configure, start run 1"
"${CTL[@]}" init
"${CTL[@]}" configure --detx "$WORK/detector.detx"
"${CTL[@]}" start --run 1

say "du-sim: $SECONDS_TO_RUN s in real time, 20 muons/s, into the node over ZeroMQ"
"$DUSIM" --detx "$WORK/detector.detx" --seconds "$SECONDS_TO_RUN" --realtime --run 1 --seed 1 \
  --muon-rate-hz 20 --endpoint "$INGEST" --progress &
SIM_PID=$!
wait "$SIM_PID"
SIM_PID=""

say "stop (drains: everything received is filtered, committed, the run file sealed)"
"${CTL[@]}" --timeout 60000 stop
STATUS=$("${CTL[@]}" status)
get() { printf '%s\n' "$STATUS" | awk -v k="$1" '$1 == k { print $3; exit }'; }
HITS=$(get filter.hits_in); EVENT_BYTES=$(get event_bytes_online)
echo "  slices $(get slices) (complete $(get builder.slices_complete), expired $(get builder.slices_expired)), written $(get slices_written)"
echo "  hits $HITS, L1 hits $(get filter.l1_hits)"
echo "  events $(get events): 3D shower $(get events.3d_shower), MX shower $(get events.mx_shower), 3D muon $(get events.3d_muon)"
echo "  commit latency (slice complete -> committed) p50 $(get commit_latency_ms.p50) ms, p99 $(get commit_latency_ms.p99) ms"
if [ "${EVENT_BYTES:-0}" -gt 0 ]; then
  awk -v h="$HITS" -v b="$EVENT_BYTES" 'BEGIN { printf "  reduction factor %.0f (input hit bytes %d / event bytes %d)\n", h * 6 / b, h * 6, b }'
fi
DROPS=$(printf '%s\n' "$STATUS" | awk '/^drops:/ { d = 1; next } /^[a-z]/ { d = 0 } d && $3 != 0 { print "   " $1 " = " $3 }')
echo "  drops (non-zero): ${DROPS:- none}"

say "shore-events: the run as stored"
"$EVENTS" --store "$WORK/state/store" runs
"$EVENTS" --store "$WORK/state/store" summary --run 1
"$EVENTS" --store "$WORK/state/store" verify
echo "  stored bytes: $(du -sb "$WORK/state/store" | cut -f1) (LMDB files)"

say "Tier-0 spool: sealed run files"
ls -l "$WORK/state/spool/ready" | awk 'NR > 1 { print "  " $5 "\t" $9 }'

say "quit"
"${CTL[@]}" quit
wait "$DAEMON_PID" && echo "  shoredaq exited cleanly"
DAEMON_PID=""

# Figures of the run (gnuplot, svg); DEMO_PLOTS=DIR keeps them (the work folder is removed on exit).
if command -v gnuplot >/dev/null 2>&1; then
  PLOTS=${DEMO_PLOTS:-$WORK/plots}
  say "shore-events plot: figures of run 1 in $PLOTS"
  "$EVENTS" --store "$WORK/state/store" plot --run 1 --out "$PLOTS"
  ls -l "$PLOTS" | awk 'NR > 1 { print "  " $5 "\t" $9 }'
else
  say "shore-events plot: skipped (gnuplot is not installed; Debian: gnuplot-nox)"
fi
