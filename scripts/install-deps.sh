#!/usr/bin/env bash
# Install what XenoFlow-OVS needs on a Debian 12 machine, as root. Idempotent:
# apt runs (update once, then install) only when a package is missing, and the
# tools venv (tox) is built only when it does not work yet, so reruns take ~1 s.
#   XF_TOOLS_VENV  where tox lives (default: <repo>/.venv-tools)
#   XF_SKIP_APT=1  do not touch apt (for machines set up by other means)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"

APT_PACKAGES=(
  openvswitch-switch python3-openvswitch  # private userspace OVS (ovsdb-server, ovs-vswitchd, ovs-*ctl)
  iproute2 iputils-ping ethtool procps tcpdump        # namespaces, veths, offloads, sysctl, captures
  bind9 dnsutils dnsperf dnsdist          # DNS backends and load tools
  dpdk libdpdk-dev pkg-config             # softdoca / dpdk_glue build (DPDK 22.11)
  clang llvm libbpf-dev bpftool libclang-rt-14-dev   # XDP and sanitizers
  netsniff-ng                             # trafgen
  build-essential python3-venv git make curl ca-certificates
)

log() { echo "install-deps: $*" >&2; }

if [ "${XF_SKIP_APT:-0}" != 1 ]; then
  missing=()
  for p in "${APT_PACKAGES[@]}"; do
    st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
    [ "$st" = installed ] || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    [ "$(id -u)" = 0 ] || { log "need root to install: ${missing[*]}"; exit 1; }
    log "apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null
  else
    log "apt packages: all present"
  fi
fi

# Interpreters: 3.11 for the product and tools, 3.9 for the Ryu 4.34 env.
py311=$(scripts/find-python.sh 3.11)
py39=$(scripts/find-python.sh 3.9) || { log "Python 3.9 missing (pyenv install 3.9 first)"; exit 1; }
log "python3.11: $py311"
log "python3.9:  $py39"

tools="${XF_TOOLS_VENV:-$here/.venv-tools}"
if ! "$tools/bin/tox" --version >/dev/null 2>&1; then
  log "building tools venv $tools (tox)"
  rm -rf "$tools"
  "$py311" -m venv "$tools"
  "$tools/bin/pip" install -q --disable-pip-version-check --upgrade pip
  "$tools/bin/pip" install -q --disable-pip-version-check 'tox>=4.11,<5'
fi
log "tox: $("$tools/bin/tox" --version | head -n1)"
