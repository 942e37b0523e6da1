#!/usr/bin/env bash
# Build the demo dataset if it is absent, scan it (fast when unchanged), open the app on it.
# Usage: scripts/run.sh [DATASET_DIR]   (default data/demo; any other folder is scanned as is)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
dataset=${1:-data/demo}
if [ "$dataset" = "data/demo" ] && [ ! -f "$dataset/listings.csv" ]; then
    echo "[run] building the demo dataset in $dataset (one to three minutes, once)" >&2
    "$PY" -m cli.main demo --out "$dataset"
fi
"$PY" -m cli.main scan "$dataset"
export LISTING_AUDIT_DATASET="$(cd "$dataset" && pwd)"
exec "$PY" -m streamlit run app.py
