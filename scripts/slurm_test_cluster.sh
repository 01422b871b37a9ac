#!/usr/bin/env bash
# A single-node SLURM cluster for tests and CI, without systemd.
#
#   scripts/slurm_test_cluster.sh install   # apt-get slurm-wlm + munge (root, Debian/Ubuntu)
#   scripts/slurm_test_cluster.sh start     # munged, slurmctld, slurmd; waits until the node is idle
#   scripts/slurm_test_cluster.sh stop      # stops what `start` started, by pid file
#   scripts/slurm_test_cluster.sh env       # prints `export SLURM_CONF=...` for clients
#
# State, logs and slurm.conf live in $SLURM_TEST_DIR (default /tmp/llm-slurm). Clients (sbatch,
# squeue, the tests) find the cluster through SLURM_CONF=$SLURM_TEST_DIR/slurm.conf.
set -euo pipefail

DIR=${SLURM_TEST_DIR:-/tmp/llm-slurm}
CONF=$DIR/slurm.conf
HOST=$(hostname -s)
CPUS=$(nproc)

install() {
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y --no-install-recommends slurm-wlm munge >/dev/null \
    || { apt-get update >/dev/null && apt-get install -y --no-install-recommends slurm-wlm munge >/dev/null; }
  # Seen in containers: a package script left /dev/null a regular file, which munged then
  # cannot open. Restore the device node if so.
  if [ ! -c /dev/null ]; then rm -f /dev/null && mknod -m 666 /dev/null c 1 3; fi
}

write_conf() {
  mkdir -p "$DIR/state" "$DIR/spool"
  # proctrack/linuxproc and task/none: no cgroups, which containers often lack. No accounting.
  # OverSubscribe=FORCE:4 lets up to 4 jobs share a CPU, so array tasks fit on small machines.
  cat >"$CONF" <<CONF
ClusterName=llmtest
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
ReturnToService=2
SlurmdTimeout=60
InactiveLimit=0
KillWait=5
NodeName=$HOST CPUs=$CPUS State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
CONF
}

start() {
  command -v slurmctld >/dev/null || { echo "slurm-wlm is not installed; run '$0 install'" >&2; exit 1; }
  write_conf
  export SLURM_CONF=$CONF
  if ! pgrep -u munge -x munged >/dev/null; then
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge
    runuser -u munge -- /usr/sbin/munged
    touch "$DIR/munged.ours"  # stop only a munged that we started
  fi
  /usr/sbin/slurmctld -f "$CONF"
  /usr/sbin/slurmd -f "$CONF"
  for _ in $(seq 1 60); do
    if sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed)'; then
      echo "SLURM test cluster up: node $HOST, $CPUS CPUs; export SLURM_CONF=$CONF"
      return 0
    fi
    sleep 0.5
  done
  echo "SLURM test cluster did not become idle; logs in $DIR" >&2
  sinfo -N -l >&2 || true
  tail -n 20 "$DIR/slurmctld.log" "$DIR/slurmd.log" >&2 || true
  exit 1
}

stop_pid() {
  local file=$1
  [ -f "$file" ] || return 0
  local pid
  pid=$(cat "$file")
  if kill "$pid" 2>/dev/null; then
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  fi
  rm -f "$file"
}

stop() {
  stop_pid "$DIR/slurmd.pid"
  stop_pid "$DIR/slurmctld.pid"
  if [ -f "$DIR/munged.ours" ]; then
    stop_pid /run/munge/munged.pid
    rm -f "$DIR/munged.ours"
  fi
  echo "SLURM test cluster stopped"
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  env) echo "export SLURM_CONF=$CONF" ;;
  *) echo "usage: $0 install|start|stop|env" >&2; exit 2 ;;
esac
