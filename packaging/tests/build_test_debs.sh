#!/bin/sh
# ctest fixture packaging.build_test_debs: the packages every packaging test reads, built from the
# programs of this build tree (nothing is compiled), into OUT_DIR (emptied first):
#   release.deb  the package as `./dev package` makes it (version from git describe)
#   rebuild.deb  the same files with a higher version (<release>+rebuild1): the upgrade test's v2
# Exit 77 (ctest: skipped) where Debian's package tools are missing.
set -eu
build_dir=${1:?usage: build_test_debs.sh BUILD_DIR OUT_DIR}
out_dir=${2:?usage: build_test_debs.sh BUILD_DIR OUT_DIR}
here=$(dirname "$(readlink -f "$0")")

for tool in dpkg-deb dpkg-shlibdeps help2man; do
  if ! command -v "$tool" >/dev/null; then
    echo "SKIPPED: $tool is not installed (Debian: dpkg-dev, help2man; ./dev deps)"
    exit 77
  fi
done

rm -rf "$out_dir"
mkdir -p "$out_dir/release" "$out_dir/rebuild"
release=$("$here/../build-deb" "$build_dir" "$out_dir/release")
version=$(dpkg-deb --field "$release" Version)
rebuild=$("$here/../build-deb" "$build_dir" "$out_dir/rebuild" --version "$version+rebuild1")
ln -s "$release" "$out_dir/release.deb"
ln -s "$rebuild" "$out_dir/rebuild.deb"
echo "built $release and $rebuild"
