#!/usr/bin/env bash
# The one install path of xdplab (used by ./lab start, ./lab test, CI and the Vagrant VM).
# Idempotent: a second run installs nothing and prints what it checked.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${XDPLAB_VENV:-/opt/xdplab-venv}
say() { printf '\033[1m[xdplab setup]\033[0m %s\n' "$*"; }

[ "$(id -u)" = 0 ] || { echo "xdplab setup: run as root (XDP needs CAP_BPF + CAP_NET_ADMIN)" >&2; exit 1; }

# 1. Debian packages ---------------------------------------------------------------------
PKGS=(python3-bpfcc bpfcc-tools bpftool clang llvm libbpf-dev iproute2 iputils-ping ethtool
      tcpdump tshark python3-venv python3-dev ca-certificates kmod
      qemu-system-x86 busybox-static
      libc6-dev-i386 make   # gnu/stubs-32.h for glibc headers under clang -target bpf; make: tests/corpus/Makefile
      nftables iptables     # xdplab bench: nftables netdev-ingress and iptables raw/conntrack drop paths
      ${XDPLAB_EXTRA_PKGS:-})
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
KREL=$(uname -r)
# Debian 12's BCC (0.26) cannot compile against the headers of kernels >= 6.10 (their
# linux/bpf.h uses types its clang front end rejects), and a custom kernel may have none:
# in both cases BCC is pointed at Debian 12's own 6.1 headers. XDP programs only need the
# stable UAPI, so that is safe; `xdplab doctor` reports it.
kver=$(echo "$KREL" | awk -F. '{printf "%d%03d", $1, $2}')
use_61=0
if [ ! -e "/lib/modules/$KREL/build" ] && ! apt-cache show "linux-headers-$KREL" >/dev/null 2>&1; then
  use_61=1
elif [ "$kver" -ge 6010 ]; then
  use_61=1
fi
if [ $use_61 = 1 ] && ! ls -d /usr/src/linux-headers-6.1.*-amd64 >/dev/null 2>&1; then
  missing+=(linux-headers-amd64)
elif [ $use_61 = 0 ] && [ ! -e "/lib/modules/$KREL/build" ]; then
  missing+=("linux-headers-$KREL")
fi
if [ ${#missing[@]} -gt 0 ]; then
  say "apt-get update; installing: ${missing[*]}"
  apt-get update -qq
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
else
  say "Debian packages: all ${#PKGS[@]} present"
fi

# 2. Kernel headers for BCC ----------------------------------------------------------------
if [ $use_61 = 1 ]; then
  build=$(ls -d /usr/src/linux-headers-6.1.*-amd64 | sort -V | tail -n1)
  common=${build%-amd64}-common
  if [ "$(readlink "/lib/modules/$KREL/build")" != "$build" ]; then
    mkdir -p "/lib/modules/$KREL"
    ln -sfn "$build" "/lib/modules/$KREL/build"
    ln -sfn "$common" "/lib/modules/$KREL/source"
    say "BCC will compile against $(basename "$build") for $KREL (linked under /lib/modules/$KREL)"
  else
    say "kernel headers: $(basename "$build") for $KREL (Debian 12's BCC needs 6.1 headers here)"
  fi
else
  say "kernel headers: $(readlink -f "/lib/modules/$KREL/build")"
fi

# 3. bpffs and tracefs --------------------------------------------------------------------
if [ "${XDPLAB_SKIP_MOUNTS:-0}" != 1 ]; then     # an image build (deploy/k8s/Dockerfile) mounts at run time
grep -qs ' /sys/fs/bpf bpf ' /proc/mounts || { mount -t bpf bpf /sys/fs/bpf; say "mounted bpffs"; }
grep -qs ' /sys/kernel/tracing tracefs ' /proc/mounts || { mount -t tracefs tracefs /sys/kernel/tracing; say "mounted tracefs"; }
fi

# 4. Python: a venv that sees Debian's BCC ------------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
  say "creating $VENV (from /usr/bin/python3, with system site-packages for BCC)"
  /usr/bin/python3 -m venv --system-site-packages "$VENV"
fi
stamp="$VENV/.xdplab-requirements.sha256"
want=$(sha256sum "$REPO/requirements.txt" | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  say "pip install -r requirements.txt (into $VENV)"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r "$REPO/requirements.txt"
  echo "$want" > "$stamp"
else
  say "Python packages: up to date in $VENV"
fi
"$VENV/bin/python" -c "import bcc, pyroute2, scapy, bokeh, jupyter_bokeh" \
  || { echo "xdplab setup: the venv cannot import its packages" >&2; exit 1; }

# 5. The Jupyter kernel the lab notebooks name ("Python 3 (xdplab)": this venv + this checkout)
PYTHONPATH="$REPO" "$VENV/bin/python" -c \
  "from xdplab.ui.workspace import install_kernelspec as i; print('[xdplab setup] Jupyter kernel xdplab:', i())"

# 6. Workshops (./lab workshop, issue 18): JupyterHub + its proxy, only when asked for
if [ "${XDPLAB_WORKSHOP:-0}" = 1 ]; then
  CHP_PREFIX=${XDPLAB_CHP_PREFIX:-/opt/xdplab-chp}
  CHP_VERSION=5.3.0
  if ! command -v npm >/dev/null || ! command -v node >/dev/null; then
    say "apt-get install nodejs npm (for JupyterHub's configurable-http-proxy)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends nodejs npm >/dev/null
  fi
  wstamp="$VENV/.xdplab-workshop.sha256"
  wwant=$(sha256sum "$REPO/requirements-workshop.txt" | cut -d' ' -f1)
  if [ "$(cat "$wstamp" 2>/dev/null)" != "$wwant" ]; then
    say "pip install -r requirements-workshop.txt (JupyterHub)"
    "$VENV/bin/pip" install -q --disable-pip-version-check -r "$REPO/requirements-workshop.txt"
    echo "$wwant" > "$wstamp"
  else
    say "workshop Python packages: up to date"
  fi
  if [ "$(cat "$CHP_PREFIX/.version" 2>/dev/null)" != "$CHP_VERSION" ] || [ ! -x "$CHP_PREFIX/node_modules/.bin/configurable-http-proxy" ]; then
    say "npm install configurable-http-proxy@$CHP_VERSION (into $CHP_PREFIX)"
    mkdir -p "$CHP_PREFIX"
    npm install --prefix "$CHP_PREFIX" --no-fund --no-audit --loglevel=error "configurable-http-proxy@$CHP_VERSION" >/dev/null
    echo "$CHP_VERSION" > "$CHP_PREFIX/.version"
  else
    say "configurable-http-proxy $CHP_VERSION: $CHP_PREFIX"
  fi
fi
