# shellcheck shell=bash
# Common settings and helpers of testbed/lab (sourced).

LAB=${SVCTRACE_LAB:-/var/lib/svctrace-lab}
PY=${SVTLAB_PYTHON:-/usr/bin/python3}
BR=svtlab0
BR_IP=10.250.0.1
EXT_NS=svtlab-ext
EXT_IP=10.250.0.250
LB_RANGE=192.0.2.0/24
SVC_CIDR6=fd00:96::/112
SERVICE_CIDR=10.96.0.0/12
NODE_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
RUN=$LAB/run
STATEFILE=$RUN/state
SUDO_PASSWORD=lab-sudo-pass
KEY_PASSPHRASE=lab-passphrase
USERS=(svtlab-sudo svtlab-pw)
KMSG_SOCKET=/run/svtlab/kmsg.sock

die() { echo "lab: error: $*" >&2; exit 1; }
warn() { echo "lab: warning: $*" >&2; }
say() { echo "lab: $*"; }

need_root() { [[ $EUID -eq 0 ]] || die "must run as root"; }

# node_index NAME -> prints i for "node<i>".
node_index() {
  [[ $1 =~ ^node([1-9][0-9]*)$ ]] || die "not a node name: '$1' (expected node<N>)"
  echo "${BASH_REMATCH[1]}"
}

node_ip() { echo "10.250.0.$((10 + $1))"; }
# node_ip6 I -> node I's IPv6 uplink address (dual-stack Services): fd00:250::1<i> style.
node_ip6() { echo "fd00:250::$((10 + $1))"; }
node_dir() { echo "$LAB/nodes/node$1"; }

# state_get KEY -> value from $STATEFILE (KEY=VALUE lines).
state_get() {
  [[ -r $STATEFILE ]] || return 1
  local k v
  while IFS='=' read -r k v; do
    [[ $k == "$1" ]] && { echo "$v"; return 0; }
  done <"$STATEFILE"
  return 1
}

lab_nodes() { state_get nodes || echo 0; }

# backend_of I -> nft|legacy|nftables
backend_of() { state_get "backend$1" || echo nft; }

netns_inode() { stat -L -c %i "/run/netns/$1" 2>/dev/null; }

# pid_in_netns PID NETNS -> true when PID is alive and lives in network namespace NETNS.
pid_in_netns() {
  local pid=$1 ino
  [[ $pid =~ ^[0-9]+$ ]] && proc_alive "$pid" || return 1
  ino=$(netns_inode "$2") || return 1
  [[ $(stat -L -c %i "/proc/$pid/ns/net" 2>/dev/null) == "$ino" ]]
}

read_pidfile() {
  local pid=
  [[ -r $1 ]] || return 1
  read -r pid <"$1" 2>/dev/null || [[ -n ${pid:-} ]] || return 1
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  echo "$pid"
}

# holder_pid I -> pid of node I's namespace holder (dies if not running).
holder_pid() {
  local pid=
  pid=$(read_pidfile "$RUN/holder-node$1.pid") || die "node$1 is not up (no holder pid file)"
  pid_in_netns "$pid" "svtlab-node$1" || die "node$1 holder (pid $pid) is not running"
  echo "$pid"
}

# nx I CMD... -> run CMD inside node I's network, mount and uts namespaces.
nx() {
  local i=$1 pid
  shift
  pid=$(holder_pid "$i")
  nsenter -t "$pid" -n -m -u -- /usr/bin/env PATH="$NODE_PATH" "$@"
}

# pidfile_alive FILE NETNS -> pid when FILE names a live process in NETNS.
pidfile_alive() {
  local pid=
  pid=$(read_pidfile "$1") || return 1
  pid_in_netns "$pid" "$2" || return 1
  echo "$pid"
}

# proc_alive PID -> true while PID exists and is not a zombie (init may reap late).
proc_alive() {
  local st
  st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  st=${st##*) }
  [[ ${st:0:1} != Z && ${st:0:1} != X ]]
}

# kill_pidfile FILE NETNS -> TERM (then KILL) the pid recorded in FILE if it lives in NETNS.
kill_pidfile() {
  local pid n
  pid=$(pidfile_alive "$1" "$2") || { rm -f "$1"; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  for ((n = 0; n < 100; n++)); do
    proc_alive "$pid" || break
    sleep 0.05
  done
  proc_alive "$pid" && kill -KILL "$pid" 2>/dev/null
  rm -f "$1"
  return 0
}

# wait_for SECONDS CMD... -> poll CMD every 50 ms until it succeeds.
wait_for() {
  local limit=$1 n
  shift
  for ((n = 0; n < limit * 20; n++)); do
    "$@" && return 0
    sleep 0.05
  done
  return 1
}
