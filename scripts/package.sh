#!/usr/bin/env bash
# Builds the Debian package of mxmesh: mxmesh, mxctl, mxload in /usr/bin, a hardened systemd
# unit, /etc/mxmesh/mxmesh.toml as a conffile (README, "Install as a service").
#
#   scripts/package.sh                     release build, then the package in target/debian/
#   scripts/package.sh --bin-dir DIR       package the binaries already built in DIR
#   scripts/package.sh --out DIR           where the .deb goes (default: $CARGO_TARGET_DIR/debian)
#   scripts/package.sh --version V         the package version (default: the workspace's)
#
# Plain dpkg-deb of a staged tree (no cargo-deb): nothing to install beyond dpkg, and the
# same script packages a release build or the debug binaries the test suite built.
# Prints the path of the .deb on its last line.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

bin_dir=""
out=""
version=""
while [ $# -gt 0 ]; do
  case "$1" in
    --bin-dir) bin_dir="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --version) version="$2"; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "package.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

[ -n "$version" ] || version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
case "$version" in
  *[!A-Za-z0-9.+~-]*) echo "package.sh: --version $version: only letters, digits and . + ~ - (Debian)" >&2; exit 2 ;;
  [0-9]*) ;;
  *) echo "package.sh: --version $version: a Debian version starts with a digit" >&2; exit 2 ;;
esac
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mxmesh/target}"
if [ -z "$bin_dir" ]; then
  cargo build --release --locked -p mxmesh-node -p mxmesh-tools --bins >&2
  bin_dir="$CARGO_TARGET_DIR/release"
fi
out="${out:-$CARGO_TARGET_DIR/debian}"
for b in mxmesh mxctl mxload; do
  [ -x "$bin_dir/$b" ] || { echo "package.sh: $bin_dir/$b missing (build it first)" >&2; exit 1; }
done
command -v dpkg-deb >/dev/null || { echo "package.sh: dpkg-deb not found" >&2; exit 1; }

arch=$(dpkg --print-architecture)
stage=$(mktemp -d)
chmod 0755 "$stage"
trap 'rm -rf "$stage"' EXIT

install -d -m 0755 "$stage/DEBIAN" "$stage/usr/bin" "$stage/usr/lib/systemd/system" \
  "$stage/etc/mxmesh" "$stage/usr/share/doc/mxmesh"
for b in mxmesh mxctl mxload; do
  # A stripped copy: the symbols stay in the build tree.
  strip --strip-unneeded -o "$stage/usr/bin/$b" "$bin_dir/$b"
  chmod 0755 "$stage/usr/bin/$b"
done
install -m 0644 packaging/mxmesh.service "$stage/usr/lib/systemd/system/mxmesh.service"
install -m 0644 packaging/mxmesh.toml "$stage/etc/mxmesh/mxmesh.toml"
install -m 0644 README.md "$stage/usr/share/doc/mxmesh/README.md"
cat > "$stage/usr/share/doc/mxmesh/copyright" <<COPYRIGHT
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: mxmesh

Files: *
Copyright: the mxmesh developers
License: Apache-2.0
 On Debian systems the full text is in /usr/share/common-licenses/Apache-2.0.
COPYRIGHT
install -m 0755 packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm "$stage/DEBIAN/"
install -m 0644 packaging/debian/conffiles "$stage/DEBIAN/conffiles"
size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" \
  packaging/debian/control.in > "$stage/DEBIAN/control"

mkdir -p "$out"
deb="$out/mxmesh_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >&2
cd "$root"
echo "$deb"
