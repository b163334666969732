#!/bin/bash
# Bring up (or stop) a one-node Slurm cluster on this machine for the real-Slurm tests (FACTS §11):
# Debian slurm-wlm + munge, localhost with 2 CPUs and 4 placeholder GPUs (gres on /dev/null-like devices, so that
# the Perlmutter directive --gpus-per-task=4 of slurm/screen.sh is schedulable), feature "gpu" and "cpu".
# Needs root. State lives in $DMG_SLURM_DIR (default /tmp/dmg-slurm); daemons' pids in pids.txt.
#
#   tests/slurm_local.sh start     # munged, slurmctld, slurmd; waits until `sinfo` shows the node idle
#   tests/slurm_local.sh stop      # stops the daemons it started (by pid)
set -euo pipefail
DIR="${DMG_SLURM_DIR:-/tmp/dmg-slurm}"
CONF_DIR=/etc/slurm
cmd="${1:?usage: slurm_local.sh start|stop}"

stop() {
    if [ -f "$DIR/pids.txt" ]; then
        while read -r pid; do kill "$pid" 2>/dev/null || true; done < "$DIR/pids.txt"
        rm -f "$DIR/pids.txt"
    fi
}

if [ "$cmd" = "stop" ]; then stop; exit 0; fi
[ "$(id -u)" = "0" ] || { echo "needs root" >&2; exit 3; }
command -v slurmctld >/dev/null || { echo "slurm-wlm is not installed (apt-get install -y slurm-wlm munge)" >&2; exit 3; }
rm -rf "$DIR/log" "$DIR/state"
mkdir -p "$DIR/state" "$DIR/spool" "$DIR/log" /etc/munge /var/run/munge /var/log/munge /var/lib/munge "$CONF_DIR"
: > "$DIR/pids.txt"
if [ ! -s /etc/munge/munge.key ]; then
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown -R munge:munge /etc/munge /var/run/munge /var/log/munge /var/lib/munge 2>/dev/null || true
chmod 400 /etc/munge/munge.key
munged --force --foreground > "$DIR/log/munged.log" 2>&1 &
echo $! >> "$DIR/pids.txt"
sleep 1
cat > "$CONF_DIR/slurm.conf" <<CONF
ClusterName=local
SlurmctldHost=localhost
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmUser=root
SlurmdUser=root
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
GresTypes=gpu
NodeName=localhost CPUs=2 RealMemory=16000 Gres=gpu:4 Feature=gpu,cpu State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
CONF
# four placeholder "GPU devices" (Slurm needs character devices; nothing ever opens them as GPUs)
cat > "$CONF_DIR/gres.conf" <<GRES
AutoDetect=off
NodeName=localhost Name=gpu File=/dev/null
NodeName=localhost Name=gpu File=/dev/zero
NodeName=localhost Name=gpu File=/dev/full
NodeName=localhost Name=gpu File=/dev/urandom
GRES
slurmctld -D -i > "$DIR/log/slurmctld.out" 2>&1 &
echo $! >> "$DIR/pids.txt"
sleep 2
slurmd -D -N localhost > "$DIR/log/slurmd.out" 2>&1 &
echo $! >> "$DIR/pids.txt"
for _ in $(seq 60); do
    if sinfo -h -o "%T" 2>/dev/null | grep -q idle; then echo "slurm up"; exit 0; fi
    sleep 1
done
echo "slurm did not come up; logs in $DIR/log" >&2
sinfo >&2 || true
tail -n 15 "$DIR"/log/*.log >&2 || true
stop
exit 1
