#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for the Slurm executor's tests (and for trying sweeps).
#   scripts/slurm-test-cluster.sh start   install slurm-wlm + munge if needed, start munged, slurmctld, slurmd
#   scripts/slurm-test-cluster.sh stop    stop the daemons this script started
#   scripts/slurm-test-cluster.sh status  exit 0 when the cluster answers
# Its configuration and state live in $LETHE_SLURM_DIR (default /tmp/lethe-slurm), never in /etc/slurm, so
# it does not touch a real installation; clients find it through SLURM_CONF=$LETHE_SLURM_DIR/slurm.conf.
# It needs root (to install packages and run slurmd); without it, or without the packages, it says why
# and exits 3, and the tests that need a cluster say they were skipped.
set -euo pipefail
DIR="${LETHE_SLURM_DIR:-/tmp/lethe-slurm}"
CONF="$DIR/slurm.conf"
export SLURM_CONF="$CONF"
cmd="${1:-start}"

unavailable() { echo "slurm-test-cluster: $*" >&2; exit 3; }

status() { [ -f "$CONF" ] && timeout 10 scontrol ping 2>/dev/null | grep -q "is UP"; }

start() {
  if status && timeout 10 sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
    echo "slurm-test-cluster: already up (SLURM_CONF=$CONF)"; return 0
  fi
  [ "$(id -u)" = 0 ] || unavailable "needs root to run slurmd; start a cluster yourself and set SLURM_CONF"
  if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    command -v apt-get >/dev/null || unavailable "slurm-wlm and munge are not installed and there is no apt-get"
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      slurm-wlm munge >/dev/null || unavailable "could not install slurm-wlm and munge"
  fi
  mkdir -p "$DIR"/{state,spool,log,run} /run/munge /var/log/munge /var/lib/munge
  [ -s /etc/munge/munge.key ] || { dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none; }
  chown -R munge:munge /etc/munge /run/munge /var/log/munge /var/lib/munge 2>/dev/null || true
  chmod 0400 /etc/munge/munge.key
  pgrep -x munged >/dev/null || munged --force 2>/dev/null || su -s /bin/sh munge -c "munged --force" \
    || unavailable "munged did not start"
  local cpus mem host
  cpus=$(nproc)
  mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
  host=$(hostname -s)
  cat > "$CONF" <<CONF
# Written by scripts/slurm-test-cluster.sh: a one-node cluster for Lethe's tests.
ClusterName=lethe-test
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
KillWait=30
MinJobAge=300
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
  slurmctld -f "$CONF" || unavailable "slurmctld did not start; see $DIR/log/slurmctld.log"
  slurmd -f "$CONF" || unavailable "slurmd did not start; see $DIR/log/slurmd.log"
  for _ in $(seq 1 30); do
    if status && timeout 10 sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
      echo "slurm-test-cluster: up (SLURM_CONF=$CONF, node $host, $cpus CPUs)"; return 0
    fi
    scontrol update NodeName="$host" State=RESUME >/dev/null 2>&1 || true
    sleep 1
  done
  unavailable "the node did not become idle; see $DIR/log/"
}

stop() {
  for f in slurmd slurmctld; do
    [ -f "$DIR/run/$f.pid" ] && kill "$(cat "$DIR/run/$f.pid")" 2>/dev/null || true
  done
  echo "slurm-test-cluster: stopped"
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  status) status && echo "slurm-test-cluster: up (SLURM_CONF=$CONF)" || { echo "slurm-test-cluster: down"; exit 1; } ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
