# shellcheck shell=bash
# Network plumbing of testbed/lab (sourced): root bridge, nodes, pods, ext client.
#
# Safety: the root namespace only gets 10.250.0.1/24 on svtlab0 (the on-link
# route), strict rp_filter on it, and never a route to pod or service ranges.
# No namespace gets a default route. IPv6 (dual-stack Services): nodes and pods
# only (ULA fd00:250::/64 on the uplinks, fd00:244:<i>::/64 per pod bridge,
# fd00:96::/112 Services); the root side of the bridge keeps IPv6 disabled (it
# only bridges the frames) and gets no IPv6 address or route.

# Per node and pod netns: IPv6 on, no DAD delay, no router advertisements.
V6_SYSCTLS=(net.ipv6.conf.default.disable_ipv6=0 net.ipv6.conf.all.disable_ipv6=0
  net.ipv6.conf.default.accept_dad=0 net.ipv6.conf.all.accept_dad=0
  net.ipv6.conf.default.accept_ra=0 net.ipv6.conf.all.accept_ra=0)

# nsysctl NETNS KEY=VALUE... -> write sysctls inside NETNS (via /proc/sys, no fork per key).
nsysctl() {
  local ns=$1
  shift
  local script="" kv k v
  for kv in "$@"; do
    k=${kv%%=*}
    v=${kv#*=}
    script+="echo $v > /proc/sys/${k//.//}; "
  done
  nsenter --net="/run/netns/$ns" -- /bin/sh -c "$script"
}

root_net_up() {
  if ip link show "$BR" >/dev/null 2>&1; then
    die "bridge $BR already exists (lab half up? run: testbed/lab down)"
  fi
  local r
  r=$(ip -4 route show 10.250.0.0/24 2>/dev/null)
  [[ -z $r ]] || die "root namespace already routes 10.250.0.0/24 ($r); refusing to collide"
  ip link add "$BR" type bridge
  echo 1 >"/proc/sys/net/ipv6/conf/$BR/disable_ipv6"
  echo 1 >"/proc/sys/net/ipv4/conf/$BR/rp_filter"
  ip addr add "$BR_IP/24" dev "$BR"
  ip link set "$BR" up
  # The workstation / external client.
  ip netns add "$EXT_NS"
  nsysctl "$EXT_NS" net.ipv6.conf.default.disable_ipv6=1
  ip link add svtlx type veth peer name x0e0 netns "$EXT_NS"
  echo 1 >/proc/sys/net/ipv6/conf/svtlx/disable_ipv6
  ip link set svtlx master "$BR" up
  ip -n "$EXT_NS" -batch - <<EOF
link set lo up
addr add $EXT_IP/24 dev x0e0
link set x0e0 up
EOF
}

# node_net_up I -> netns svtlab-nodeI with uplink, pod bridge, routes and sysctls.
node_net_up() {
  local i=$1 n=$2 ns="svtlab-node$1" j ip
  ip=$(node_ip "$i")
  ip netns add "$ns"
  nsysctl "$ns" "${V6_SYSCTLS[@]}" net.ipv6.conf.all.forwarding=1 net.ipv4.ip_forward=1 \
    net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 \
    net.ipv4.conf.all.route_localnet=1 net.ipv4.conf.all.send_redirects=0 \
    net.ipv4.conf.default.send_redirects=0 net.bridge.bridge-nf-call-iptables=1 \
    net.bridge.bridge-nf-call-ip6tables=1 net.unix.max_dgram_qlen=512
  ip link add "svtl$i" type veth peer name "n${i}e0" netns "$ns"
  echo 1 >"/proc/sys/net/ipv6/conf/svtl$i/disable_ipv6"
  ip link set "svtl$i" master "$BR" up
  {
    echo "link set lo up"
    echo "addr add $ip/24 dev n${i}e0"
    echo "addr add $(node_ip6 "$i")/64 dev n${i}e0 nodad"
    echo "link set n${i}e0 up"
    echo "link add n${i}b0 type bridge"
    echo "addr add 10.244.$i.1/24 dev n${i}b0"
    echo "addr add fd00:244:$i::1/64 dev n${i}b0 nodad"
    echo "link set n${i}b0 up"
    for ((j = 1; j <= n; j++)); do
      ((j == i)) || echo "route add 10.244.$j.0/24 via $(node_ip "$j") dev n${i}e0"
      ((j == i)) || echo "route add fd00:244:$j::/64 via $(node_ip6 "$j") dev n${i}e0"
    done
    # Real nodes reach service IPs through their default route (uplink). The
    # lab has no default route: service IPs are on-link on the uplink, so a
    # packet that kube-proxy does not DNAT dies unanswered on svtlab0.
    echo "route add 10.96.0.0/12 dev n${i}e0"
    echo "route add $SVC_CIDR6 dev n${i}e0"
    # Load-balancer and external IPs (192.0.2.0/24): likewise on-link, so traffic kube-proxy does
    # not DNAT (a refused source, no local endpoint) reaches its filter rules and dies there.
    echo "route add $LB_RANGE dev n${i}e0"
  } | ip -n "$ns" -batch -
}

# pod_net_up I SLOT POD IP IP6 -> pod netns with eth0 on node I's pod bridge.
pod_net_up() {
  local i=$1 slot=$2 pod=$3 pip=$4 pip6=$5 ns="svtlab-n$1-$3" node="svtlab-node$1"
  ip netns add "$ns"
  nsysctl "$ns" "${V6_SYSCTLS[@]}"
  ip -n "$node" link add "n${i}p$slot" type veth peer name eth0 netns "$ns"
  ip -n "$node" -batch - <<EOF
link set n${i}p$slot master n${i}b0
link set n${i}p$slot type bridge_slave hairpin on
link set n${i}p$slot up
EOF
  ip -n "$ns" -batch - <<EOF
link set lo up
addr add $pip/24 dev eth0
addr add $pip6/64 dev eth0 nodad
link set eth0 up
route add 10.244.0.0/16 via 10.244.$i.1 dev eth0
route add fd00:244::/32 via fd00:244:$i::1 dev eth0
route add $SVC_CIDR6 via fd00:244:$i::1 dev eth0
route add fd00:250::/64 via fd00:244:$i::1 dev eth0
route add 10.96.0.0/12 via 10.244.$i.1 dev eth0
route add 10.250.0.0/24 via 10.244.$i.1 dev eth0
route add $LB_RANGE via 10.244.$i.1 dev eth0
EOF
}

# sync_ext_routes -> the external client's /32 routes to every load-balancer and external IP via
# the node that announces it (MetalLB L2 style: one node answers for each address). Tagged
# `proto 250` so a resync replaces exactly these.
sync_ext_routes() {
  local lines ip via
  lines=$("$PY" "$TB/kubeproxy.py" announce --cluster "$LAB/cluster.json") || die "announce: cannot read the services"
  ip -n "$EXT_NS" route flush proto 250 2>/dev/null || true
  while read -r ip via; do
    [[ -n $ip ]] && echo "route replace $ip/32 via $via dev x0e0 proto 250"
  done <<<"$lines" | ip -n "$EXT_NS" -batch -
}

# net_down -> delete every svtlab namespace, link and the bridge this lab creates.
net_down() {
  local ns l
  while read -r ns _; do
    [[ $ns =~ ^svtlab-node[0-9]+$ || $ns =~ ^svtlab-n[0-9]+-(web|api)-[0-9]+$ || $ns == "$EXT_NS" ]] || continue
    ip netns del "$ns" 2>/dev/null || warn "could not delete netns $ns"
  done < <(ip netns list 2>/dev/null)
  while read -r l; do
    ip link del "$l" 2>/dev/null || true
  done < <(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | sed 's/@.*//' | grep -E '^svtl([0-9]+|x)$' || true)
  if ip link show "$BR" >/dev/null 2>&1; then
    ip link del "$BR" || warn "could not delete bridge $BR"
  fi
}
