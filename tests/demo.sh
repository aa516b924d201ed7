#!/usr/bin/env bash
# The demo behind ./dev demo (argument: the build folder). Filled in as the programs land.
set -euo pipefail
echo "shoredaq demo: nothing to run yet (build in ${1:-build})"
