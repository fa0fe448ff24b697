#!/usr/bin/env bash
# Bring up a single-node SLURM "cluster" on localhost, as root, without systemd.
# Usage: D=<dir> ACCT=0|1 bash .ci/slurm-up.sh   (ACCT=1 adds slurmdbd + MariaDB so sacct works)
# Everything lives under $D except the symlink /etc/slurm/slurm.conf (the jobstep plugin strips
# SLURM_CONF before its inner srun). Stop it with D=<dir> bash .ci/slurm-down.sh.
# Debian 12 / slurm-wlm 22.05; details and pitfalls: the project's notes on SLURM (shared/notes/slurm.md).
set -euo pipefail
D=${D:?set D to a scratch dir}; ACCT=${ACCT:-0}
export DEBIAN_FRONTEND=noninteractive SLURM_CONF=$D/etc/slurm.conf
pkgs="munge slurm-wlm"; [ "$ACCT" = 1 ] && pkgs="$pkgs slurmdbd mariadb-server"
for p in munged slurmctld slurmd slurmdbd; do
  if pgrep -x $p >/dev/null; then echo "slurm-up: a $p is already running (pid $(pgrep -x $p)); stop it first" >&2; exit 1; fi
done
if ! dpkg -s $pkgs >/dev/null 2>&1; then
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends $pkgs >/dev/null   # postinst "policy-rc.d denied" is fine
fi
mkdir -p $D/etc $D/state $D/spool/slurmd $D/run $D/log $D/munge
chmod 711 $D/munge                                                # socket must be reachable
[ -f $D/munge/munge.key ] || mungekey -c -k $D/munge/munge.key
munged --key-file=$D/munge/munge.key --socket=$D/munge/munge.socket \
       --pid-file=$D/run/munged.pid --log-file=$D/log/munged.log --seed-file=$D/munge/munged.seed
MEM=$(free -m | awk '/^Mem:/{print int($2*0.9)}')
if [ "$ACCT" = 1 ]; then
  ACCT_CONF="JobAcctGatherType=jobacct_gather/linux
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819
AccountingStoragePass=$D/munge/munge.socket
AccountingStoreFlags=job_comment"   # sacct shows the rule (the plugin's --comment)
else
  ACCT_CONF="JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none"
fi
cat > $D/etc/slurm.conf <<CONF
ClusterName=ci
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$D/munge/munge.socket
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool/slurmd
SlurmctldPidFile=$D/run/slurmctld.pid
SlurmdPidFile=$D/run/slurmd.pid
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
MpiDefault=none
SwitchType=switch/none
ReturnToService=2
JobCompType=jobcomp/none
MinJobAge=300
MailProg=/bin/true
DefMemPerCPU=1000
$ACCT_CONF
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$(nproc) RealMemory=$MEM State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
# The snakemake slurm-jobstep plugin strips SLURM_CONF before its inner `srun`,
# so the config must also be visible at the compiled-in default path.
ln -sfn $D/etc/slurm.conf /etc/slurm/slurm.conf
if [ "$ACCT" = 1 ]; then
  [ -d $D/mysql/mysql ] || mariadb-install-db --user=root --datadir=$D/mysql \
       --auth-root-authentication-method=socket --skip-test-db >$D/log/mariadb-install.log 2>&1
  mariadbd --no-defaults --user=root --datadir=$D/mysql --socket=$D/mysql.sock \
       --pid-file=$D/run/mariadb.pid --bind-address=127.0.0.1 --port=3307 \
       --log-error=$D/log/mariadb.log >/dev/null 2>&1 &
  for i in $(seq 60); do mariadb-admin --no-defaults -S $D/mysql.sock ping >/dev/null 2>&1 && break; sleep 0.5; done
  mariadb --no-defaults -S $D/mysql.sock -uroot -e "
    CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurmpw';
    CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurmpw';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';"
  cat > $D/etc/slurmdbd.conf <<CONF
AuthType=auth/munge
AuthInfo=socket=$D/munge/munge.socket
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=6819
SlurmUser=root
LogFile=$D/log/slurmdbd.log
PidFile=$D/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=3307
StorageUser=slurm
StoragePass=slurmpw
StorageLoc=slurm_acct_db
CONF
  chmod 600 $D/etc/slurmdbd.conf          # slurmdbd expects 0600 (other modes not tested)
  slurmdbd                                 # finds slurmdbd.conf next to $SLURM_CONF
  for i in $(seq 60); do sacctmgr -n list cluster >/dev/null 2>&1 && break; sleep 0.5; done
  sacctmgr -i add cluster ci >/dev/null
fi
slurmctld -c
slurmd -N localhost
for i in $(seq 60); do [ "$(sinfo -h -o %T 2>/dev/null)" = idle ] && break; sleep 0.5; done
[ "$(sinfo -h -o %T 2>/dev/null)" = idle ] || { echo "slurm-up: node not idle after 30 s; logs in $D/log" >&2; sinfo >&2 || true; exit 1; }
sinfo
