#!/usr/bin/env bash
# Builds the Debian package (`cargo deb`, from [package.metadata.deb] and dist/) and checks
# that it holds what the desktop needs: the program, the desktop entry with image MIME types,
# the AppStream data and the icons. Arguments go to cargo deb: CI passes `--profile dev
# --no-build` to pack the binary its tests built; with none it makes a release build.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo deb --version >/dev/null 2>&1; then
  echo "== installing cargo-deb"
  cargo install cargo-deb --locked
fi
echo "== cargo deb"
deb=$(cargo deb --locked "$@" | tail -n 1)
echo "$deb"
listing=$(dpkg-deb -c "$deb")
for f in ./usr/bin/aicut ./usr/share/applications/aicut.desktop \
  ./usr/share/metainfo/io.github.aicut.metainfo.xml \
  ./usr/share/icons/hicolor/256x256/apps/io.github.aicut.png \
  ./usr/share/icons/hicolor/scalable/apps/io.github.aicut.svg; do
  grep -q " $f\$" <<<"$listing" || { echo "error: $f is missing from $deb" >&2; exit 1; }
done
echo "== the package holds the program, desktop entry, AppStream data and icons"
