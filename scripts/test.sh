#!/usr/bin/env bash
# The project's whole check, as CI runs it: format, lints, then every test.
# Works on a fresh Debian/Ubuntu machine with a Rust toolchain; installs what the tests
# need when it runs as root (CI) and says what is missing otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
# The validators of the desktop entry and the AppStream data in dist/ (checked below).
dist_packages=(desktop-file-utils appstream)

# Debian packages the tests use: python3-venv for the API example test, redis-server for
# the replica tests of `aicut serve --redis`.
packages=(python3-venv redis-server)
missing=()
for p in "${packages[@]}" "${dist_packages[@]}"; do
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

echo "== dist/: desktop entry and AppStream data"
if command -v desktop-file-validate >/dev/null && command -v appstreamcli >/dev/null; then
  desktop-file-validate dist/aicut.desktop
  grep -q '^MimeType=.*image/jpeg;.*image/png;' dist/aicut.desktop
  appstreamcli validate --no-net dist/io.github.aicut.metainfo.xml
elif [ "${CI:-}" = true ]; then
  echo "error: desktop-file-validate or appstreamcli is missing" >&2
  exit 1
else
  echo "note: install desktop-file-utils and appstream to validate dist/" >&2
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --locked --all-targets

# The Debian package from dist/ (`cargo deb`). CI packs the binary the tests just built
# (installing cargo-deb costs a few minutes once); AICUT_CI_DEB=1 packs a release build, as
# shipped, which takes much longer on a 2-core machine.
if [ "${AICUT_CI_DEB:-}" = 1 ]; then
  bash scripts/deb.sh
elif [ "${CI:-}" = true ]; then
  bash scripts/deb.sh --profile dev --no-build
fi
