#!/usr/bin/env bash
# The project's whole check, as CI runs it: format, lints, then every test.
# Works on a fresh Debian/Ubuntu machine with a Rust toolchain; installs what the tests
# need when it runs as root (CI) and says what is missing otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests use: python3-venv for the API example test, redis-server for
# the replica tests of `aicut serve --redis`.
packages=(python3-venv redis-server)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "== installing ${missing[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "note: missing Debian packages ${missing[*]}; install them with: sudo apt-get install ${missing[*]}" >&2
  fi
fi

# Python with requests and Pillow, for the test that runs the API documentation's example.
if { [ -x .venv/bin/python ] || python3 -m venv .venv; } && .venv/bin/pip install -q requests pillow; then
  export AICUT_TEST_PYTHON="$PWD/.venv/bin/python"
elif [ "${CI:-}" = true ]; then
  echo "error: could not set up .venv with requests and pillow" >&2
  exit 1
else
  echo "note: could not set up .venv with requests; the Python example test will report itself skipped (in CI it fails)" >&2
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --locked --all-targets
