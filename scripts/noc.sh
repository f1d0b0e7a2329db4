#!/usr/bin/env bash
# The click benchmark: ../shared/tools/noc_eval.py against `aicut serve` (built-in engine).
# Usage: bash scripts/noc.sh [DATASET_DIR] [extra noc_eval.py options, e.g. --limit 10]
set -euo pipefail
cd "$(dirname "$0")/.."
dataset=${1:-../shared/datasets/grabcut}
shift || true
tool=../shared/tools/noc_eval.py
[ -f "$tool" ] || { echo "error: $tool not found (it ships in the project's shared folder)" >&2; exit 1; }
kind=binary
case "$dataset" in *grabcut*) kind=grabcut ;; esac

{ [ -x .venv/bin/python ] || python3 -m venv .venv; } && .venv/bin/pip install -q numpy opencv-python-headless pillow requests
cargo build --release --quiet
log=$(mktemp)
./target/release/aicut serve --bind 127.0.0.1:0 2>"$log" &
server=$!
trap 'kill $server 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 100); do grep -q "AI Cut API on" "$log" && break; sleep 0.1; done
url=$(grep -o "AI Cut API on [^ ]*" "$log" | awk '{print $5}')
[ -n "$url" ] || { cat "$log" >&2; exit 1; }
.venv/bin/python "$tool" --api "$url" --dataset "$dataset" --kind "$kind" "$@"
