#!/usr/bin/env bash
# The demo behind ./dev demo (argument: the build folder). Until the node daemon exists it shows
# the simulated DU feed: du-sim runs 2 DUs of detector 133 in real time for 3 s into a .dqd file
# plus a ground-truth file, then we show what it produced.
set -euo pipefail
BUILD=$(readlink -f "${1:-build}")
ROOT=$(dirname "$(dirname "$(readlink -f "$0")")")

# The reference data folder the build was configured with (default: ../shared next to the repo).
SHARED=$(sed -n 's/^SHOREDAQ_SHARED_DIR:PATH=//p' "$BUILD/CMakeCache.txt" 2>/dev/null || true)
SHARED=${SHARED:-$ROOT/../shared}
DETX="$SHARED/data/km3net-testdata/detx/KM3NeT_00000133_20221025.detx"

WORK=$(mktemp -d -t shoredaq-demo.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

echo "== du-sim: detector 133 (ARCA, 21 DUs), the first 2 DUs, 3 s in real time, 20 muons/s"
"$BUILD/drivers/du-sim" --detx "$DETX" --dus first:2 --seconds 3 --realtime --progress \
  --seed 1 --run 1 --muon-rate-hz 20 --out "$WORK/feed.dqd" --truth "$WORK/truth.jsonl"

echo
echo "== what it wrote"
ls -lh "$WORK/feed.dqd" "$WORK/truth.jsonl" | awk '{print "  " $5 "\t" $9}'
echo "  brightest muon (ground truth):"
# The muon with the most hits: its line, without the hit list.
awk -F'"n_hits":' '/"type":"muon"/ { split($2, a, ","); if (a[1] + 0 >= best) { best = a[1] + 0; line = $0 } }
  END { sub(/,"hits":.*/, "}", line); print "  " line }' "$WORK/truth.jsonl"
