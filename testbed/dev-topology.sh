#!/usr/bin/env bash
# A private scratch topology (TEST FIXTURE) for developing kubeproxy.py / podserver.py /
# traffic.py without the real lab. Own prefix and addresses, so it never collides with `lab`:
#   root bridge svtkp0 10.251.0.1/24; node i: netns svtkp-node<i>, uplink k<i>e0 10.251.0.<10+i>,
#   pod bridge k<i>b0 10.245.<i>.1/24; pods web-<i> 10.245.<i>.10 / api-<i> 10.245.<i>.11 in netns
#   svtkp-n<i>-<pod>; ext netns svtkp-ext 10.251.0.250. Interface names start with k<i> (ext: kx).
#
#   dev-topology.sh up [N] [BACKENDS]   # BACKENDS like nft,legacy,nftables (default)
#   dev-topology.sh apply               # kube-proxy sync on every node (kubeproxy.py apply)
#   dev-topology.sh down                # kill recorded pids, delete svtkp-* netns and svtkp0
#   dev-topology.sh test [COUNT]        # up, apply, traffic --check, resync x2 compare, down
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
PY=${PYTHON:-/usr/bin/python3}  # a real interpreter, so $! is the server itself (pyenv shims fork)
STATE=${SVTKP_STATE:-/tmp/svtkp-state}
CLUSTER=$STATE/cluster.json

log() { printf 'dev-topology: %s\n' "$*" >&2; }

ns_exec() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

up() {
  local n=${1:-3} backends=${2:-nft,legacy,nftables}
  if ip netns list | grep -q '^svtkp-'; then log "already up (run down first)"; exit 1; fi
  mkdir -p "$STATE"; : > "$STATE/pids"
  ip link add svtkp0 type bridge
  ip addr add 10.251.0.1/24 dev svtkp0
  ip link set svtkp0 up
  sysctl -qw net.ipv4.conf.svtkp0.rp_filter=1
  IFS=, read -ra bk <<< "$backends"
  local nodes_json="" pods_json=""
  for i in $(seq 1 "$n"); do
    local node=svtkp-node$i ip=10.251.0.$((10 + i)) backend=${bk[$((i - 1))]:-nft}
    local mode=iptables; [[ $backend == nftables ]] && mode=nftables
    ip netns add "$node"
    ns_exec "$node" ip link set lo up
    ns_exec "$node" sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.send_redirects=0
    ip link add "k${i}h0" type veth peer name "k${i}e0" netns "$node"
    ip link set "k${i}h0" master svtkp0 up
    ns_exec "$node" ip addr add "$ip/24" dev "k${i}e0"
    ns_exec "$node" ip link set "k${i}e0" up
    ns_exec "$node" ip link add "k${i}b0" type bridge
    ns_exec "$node" ip addr add "10.245.$i.1/24" dev "k${i}b0"
    ns_exec "$node" ip link set "k${i}b0" up
    # host-originated Service traffic needs a route to the service CIDR (real nodes use the default route)
    ns_exec "$node" ip route add 10.96.0.0/12 dev "k${i}e0"
    for j in $(seq 1 "$n"); do
      [[ $j == "$i" ]] && continue
      ns_exec "$node" ip route add "10.245.$j.0/24" via "10.251.0.$((10 + j))"
    done
    local k=0
    for app in web api; do
      local pod=$app-$i pns=svtkp-n$i-$app-$i pip=10.245.$i.$((10 + k))
      ip netns add "$pns"
      ns_exec "$pns" ip link set lo up
      ip link add "k${i}p$k" netns "$node" type veth peer name eth0 netns "$pns"
      ns_exec "$node" ip link set "k${i}p$k" master "k${i}b0" up
      ns_exec "$node" ip link set "k${i}p$k" type bridge_slave hairpin on
      ns_exec "$pns" ip addr add "$pip/24" dev eth0
      ns_exec "$pns" ip link set eth0 up
      for r in 10.245.0.0/16 10.96.0.0/12 10.251.0.0/24; do
        ns_exec "$pns" ip route add "$r" via "10.245.$i.1"
      done
      ip netns exec "$pns" "$PY" "$HERE/podserver.py" --name "$pod" --port 8080 </dev/null >/dev/null 2>"$STATE/$pod.err" &
      echo "$! $pod" >> "$STATE/pids"
      pods_json+="${pods_json:+,}{\"name\":\"$pod\",\"app\":\"$app\",\"node\":\"node$i\",\"ip\":\"$pip\",\"port\":8080,\"netns\":\"$pns\",\"hostNetwork\":false}"
      k=$((k + 1))
    done
    nodes_json+="${nodes_json:+,}{\"name\":\"node$i\",\"index\":$i,\"ip\":\"$ip\",\"uplink\":\"k${i}e0\",\"podBridge\":\"k${i}b0\",\"podCIDR\":\"10.245.$i.0/24\",\"backend\":\"$backend\",\"proxyMode\":\"$mode\",\"netns\":\"$node\",\"pid\":null}"
  done
  ip netns exec svtkp-node1 "$PY" "$HERE/podserver.py" --name hostnet-node1 --port 9090 </dev/null >/dev/null 2>"$STATE/hostnet.err" &
  echo "$! hostnet-node1" >> "$STATE/pids"
  pods_json+=",{\"name\":\"hostnet-node1\",\"app\":\"hostnet\",\"node\":\"node1\",\"ip\":\"10.251.0.11\",\"port\":9090,\"netns\":\"svtkp-node1\",\"hostNetwork\":true}"
  ip netns add svtkp-ext
  ns_exec svtkp-ext ip link set lo up
  ip link add kxh0 type veth peer name kx0 netns svtkp-ext
  ip link set kxh0 master svtkp0 up
  ns_exec svtkp-ext ip addr add 10.251.0.250/24 dev kx0
  ns_exec svtkp-ext ip link set kx0 up
  cat > "$CLUSTER" <<EOF
{"serviceCIDR":"10.96.0.0/12","clusterCIDR":"10.245.0.0/16","nodeSubnet":"10.251.0.0/24","nodePortRange":"30000-32767",
 "nodes":[$nodes_json],
 "pods":[$pods_json],
 "ext":{"netns":"svtkp-ext","ip":"10.251.0.250"}}
EOF
  python3 -m json.tool "$CLUSTER" >/dev/null
  log "up: $n nodes ($backends); cluster file $CLUSTER"
}

ipt_for() {  # backend -> iptables binary
  case $1 in legacy) echo iptables-legacy ;; *) echo iptables-nft ;; esac
}

apply_all() {
  local names
  names=$(python3 -c 'import json,sys; [print(n["name"], n["netns"], n["backend"]) for n in json.load(open(sys.argv[1]))["nodes"]]' "$CLUSTER")
  while read -r name netns backend; do
    ns_exec "$netns" python3 "$HERE/kubeproxy.py" apply --cluster "$CLUSTER" --node "$name" --iptables "$(ipt_for "$backend")"
  done <<< "$names"
}

snapshot() {  # rules of every node, counters stripped
  local names
  names=$(python3 -c 'import json,sys; [print(n["name"], n["netns"], n["backend"]) for n in json.load(open(sys.argv[1]))["nodes"]]' "$CLUSTER")
  while read -r name netns backend; do
    echo "## $name ($backend)"
    if [[ $backend == nftables ]]; then
      ns_exec "$netns" nft list ruleset
    else
      ns_exec "$netns" "$(ipt_for "$backend")-save" | grep -v '^#' | sed -E 's/\[[0-9]+:[0-9]+\]/[0:0]/'
    fi
  done <<< "$names"
}

down() {
  if [[ -f $STATE/pids ]]; then
    while read -r pid what; do
      if [[ -r /proc/$pid/cmdline ]] && tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q "podserver.py --name $what "; then
        kill "$pid" 2>/dev/null || true
      fi
    done < "$STATE/pids"
    rm -f "$STATE/pids"
  fi
  for ns in $(ip netns list | awk '$1 ~ /^svtkp-/ {print $1}'); do
    ip netns pids "$ns" 2>/dev/null | while read -r pid; do
      # anything left in OUR namespaces was started by us
      kill "$pid" 2>/dev/null || true
    done
    ip netns del "$ns"
  done
  ip link show svtkp0 >/dev/null 2>&1 && ip link del svtkp0
  case $(basename "$STATE") in svtkp*) rm -rf "$STATE" ;; esac  # our scratch state only
  log "down"
}

test_all() {
  local count=${1:-300}
  trap down EXIT
  up 3 nft,legacy,nftables
  apply_all
  sleep 0.5
  python3 "$HERE/traffic.py" --cluster "$CLUSTER" --count "$count" --out "$STATE/truth.jsonl" --check
  snapshot > "$STATE/rules.0"
  apply_all; snapshot > "$STATE/rules.1"
  apply_all; snapshot > "$STATE/rules.2"
  if cmp -s "$STATE/rules.0" "$STATE/rules.1" && cmp -s "$STATE/rules.0" "$STATE/rules.2"; then
    log "resync x2: rules unchanged ($(wc -l < "$STATE/rules.0") lines)"
  else
    log "resync changed the rules:"; diff "$STATE/rules.0" "$STATE/rules.2" | head -40 >&2; return 1
  fi
  python3 "$HERE/traffic.py" --cluster "$CLUSTER" --count 20 --check >/dev/null
}

case ${1:-} in
  up) shift; up "$@" ;;
  apply) apply_all ;;
  snapshot) snapshot ;;
  down) down ;;
  test) shift; test_all "$@" ;;
  *) echo "usage: $0 up [N] [BACKENDS] | apply | snapshot | down | test [COUNT]" >&2; exit 2 ;;
esac
