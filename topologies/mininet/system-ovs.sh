#!/bin/sh
# The system Open vSwitch for Mininet, without systemd: ovsdb-server and ovs-vswitchd (userspace
# datapath only, no kernel module needed) on the default socket /var/run/openvswitch/db.sock that
# mn and ovs-vsctl use, each with a pidfile, stopped by those pidfiles. With OVS_RUNDIR set, a
# private one instead: database, sockets, pidfiles and logs all in that directory (mn, ovs-vsctl
# and ovs-ofctl reach it when they run with the same OVS_RUNDIR).
#
#   topologies/mininet/system-ovs.sh start     # idempotent
#   topologies/mininet/system-ovs.sh status    # exit 0 when both run
#   topologies/mininet/system-ovs.sh stop      # leave Mininet (or run mn -c) first
set -eu

if [ -n "${OVS_RUNDIR:-}" ]; then
  RUN=$OVS_RUNDIR DB=$OVS_RUNDIR/conf.db LOGDIR=$OVS_RUNDIR
else
  RUN=/var/run/openvswitch DB=/etc/openvswitch/conf.db LOGDIR=/var/log/openvswitch
fi
SCHEMA=/usr/share/openvswitch/vswitch.ovsschema

running() {   # running PROG: its pidfile names a live process
  [ -f "$RUN/$1.pid" ] && kill -0 "$(cat "$RUN/$1.pid")" 2>/dev/null
}

stop_one() {  # stop_one PROG: SIGTERM by pidfile, wait up to 10 s, then SIGKILL
  running "$1" || return 0
  pid=$(cat "$RUN/$1.pid")
  kill "$pid"
  i=0
  while kill -0 "$pid" 2>/dev/null; do
    i=$((i + 1))
    if [ "$i" -gt 100 ]; then kill -9 "$pid" 2>/dev/null || true; break; fi
    sleep 0.1
  done
  rm -f "$RUN/$1.pid"
  echo "system-ovs: $1 (pid $pid) stopped"
}

case "${1:-}" in
  start)
    mkdir -p "$RUN" "$LOGDIR" "$(dirname "$DB")"
    [ -f "$DB" ] || ovsdb-tool create "$DB" "$SCHEMA"
    if ! running ovsdb-server; then
      ovsdb-server "$DB" --remote="punix:$RUN/db.sock" \
        --remote=db:Open_vSwitch,Open_vSwitch,manager_options \
        -vconsole:off --pidfile="$RUN/ovsdb-server.pid" --log-file="$LOGDIR/ovsdb-server.log" \
        --detach --no-chdir
      ovs-vsctl --no-wait init
    fi
    if ! running ovs-vswitchd; then
      ovs-vswitchd "unix:$RUN/db.sock" \
        -vconsole:off --pidfile="$RUN/ovs-vswitchd.pid" --log-file="$LOGDIR/ovs-vswitchd.log" \
        --detach --no-chdir
    fi
    echo "system-ovs: ovsdb-server pid $(cat "$RUN/ovsdb-server.pid"), ovs-vswitchd pid $(cat "$RUN/ovs-vswitchd.pid"), $RUN/db.sock"
    ;;
  stop)
    stop_one ovs-vswitchd
    stop_one ovsdb-server
    # the userspace datapath's own tap outlives ovs-vswitchd
    if ip link show ovs-netdev >/dev/null 2>&1; then ip tuntap del dev ovs-netdev mode tap; fi
    ;;
  status)
    rc=0
    for p in ovsdb-server ovs-vswitchd; do
      if running "$p"; then echo "$p: running (pid $(cat "$RUN/$p.pid"))"; else echo "$p: stopped"; rc=1; fi
    done
    exit "$rc"
    ;;
  *)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
