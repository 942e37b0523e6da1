#!/usr/bin/env bash
# One end-to-end check of the training and embedding paths on a GPU machine, in under 5 minutes: the loop
# comparison at 224 px, a train job on the demo with its phase times, a 5-fold run and the photo-embedding
# throughput, printed as one table and written as JSON (bench/gpu_check.py has the details).
#
#   bash bench/gpu_check.sh --out results.json     # on the GPU machine
#   bash bench/gpu_check.sh --small --out /tmp/x   # tiny sizes on the CPU, well under a minute
#
# Uses the repository's .venv when there is one, else python3; needs no network.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="$repo/.venv/bin/python"
if [ ! -x "$python" ]; then
    python="$(command -v python3)"
fi
cd "$repo"
exec "$python" bench/gpu_check.py "$@"
