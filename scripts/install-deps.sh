#!/usr/bin/env bash
# Install what XenoFlow-OVS needs on a Debian 12 machine, as root. Idempotent:
# apt runs (update once, then install) only when a package is missing, and the
# tools venv (tox) is built only when it does not work yet, so reruns take ~1 s.
#   XF_TOOLS_VENV  where tox lives (default: <repo>/.venv-tools)
#   XF_SKIP_APT=1  do not touch apt (for machines set up by other means)
#   XF_RUNTIMES    the Pythons to insist on: "3.11 3.9" (default: make test, both
#                  tox runtimes) or "3.11" (make demo, make test-osken: no Ryu env)
#   XF_NO_TOX=1    do not build the tools venv (make demo does not use tox)
#   XF_PY311 / XF_PY39  an interpreter to use instead of scripts/find-python.sh's pick
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
  frr nftables                            # BGP/BFD speaker and router of the fleet lab; nft for the silent-failure test
  mininet                                 # topologies/mininet: XenoFlow in Mininet (docs/mininet.md)
  chromium chromium-driver                # headless browser and its WebDriver: the dashboard tests load the real page
  build-essential python3-venv python3-dev git make curl ca-certificates   # -dev: the glue's cffi build
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

# Interpreters: 3.11 for the product and tools; 3.9 only for the Ryu 4.34 env (tox -e ryu).
runtimes="${XF_RUNTIMES:-3.11 3.9}"
py311="${XF_PY311:-}"
[ -n "$py311" ] || py311=$(scripts/find-python.sh 3.11) || {
  log "Python 3.11 missing: Debian 12's python3 is 3.11 (apt-get install python3 python3-venv python3-dev)"
  exit 1
}
log "python3.11: $py311"
case " $runtimes " in
  *" 3.9 "*)
    py39="${XF_PY39:-}"
    [ -n "$py39" ] || py39=$(scripts/find-python.sh 3.9 2>/dev/null) || {
      log "Python 3.9 missing: the Ryu 4.34 runtime (tox env ryu) needs it, and Debian 12 has no"
      log "  python3.9 package. Install one (pyenv install 3.9, or from python.org sources) so that"
      log "  scripts/find-python.sh 3.9 finds it, or point XF_PY39 at it. Without it:"
      log "  make test XF_TOXENVS=lint,osken (os-ken only), make demo (needs 3.11 only)"
      exit 1
    }
    log "python3.9:  $py39"
    ;;
esac

[ "${XF_NO_TOX:-0}" = 1 ] && exit 0
tools="${XF_TOOLS_VENV:-$here/.venv-tools}"
if ! "$tools/bin/tox" --version >/dev/null 2>&1; then
  log "building tools venv $tools (tox)"
  rm -rf "$tools"
  "$py311" -m venv "$tools"
  "$tools/bin/pip" install -q --disable-pip-version-check --upgrade pip
  "$tools/bin/pip" install -q --disable-pip-version-check 'tox>=4.11,<5'
fi
log "tox: $("$tools/bin/tox" --version | head -n1)"
