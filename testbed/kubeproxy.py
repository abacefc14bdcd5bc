#!/usr/bin/env python3
"""kube-proxy emulation for the svctrace namespace testbed (a TEST FIXTURE, not kube-proxy).

Renders the rules real kube-proxy writes for one node, in their real shape:

* proxyMode "iptables" (backends "nft" = iptables-nft, "legacy" = iptables-legacy): the
  iptables-restore input kube-proxy's iptables proxier feeds to `iptables-restore --noflush`
  (*filter, *nat, *mangle), plus the jumps from the built-in chains that kube-proxy manages
  separately with EnsureRule (`-C`, and `-I` at position 1 only when missing).
* proxyMode "nftables": the transaction kube-proxy's nftables proxier runs on a full sync
  (`add table ip kube-proxy` ... `flush chain` ... `add rule` ...), for `nft -f -`. Re-applying
  it is idempotent: every chain, set and map it fills is flushed in the same transaction.

Interface (the `lab` script uses exactly this; run INSIDE the node's namespaces):

    # preferred: one call does what kube-proxy's full sync does (jumps + restore, or nft -f)
    python3 testbed/kubeproxy.py apply --cluster $LAB/cluster.json --node node1

    # or by hand, proxyMode iptables (legacy nodes: `iptables*` resolve to the legacy binaries
    # through the node-private /etc/alternatives; or pass --iptables iptables-legacy):
    python3 testbed/kubeproxy.py ensure-jumps --cluster $LAB/cluster.json --node node1 | sh -e
    python3 testbed/kubeproxy.py render --cluster $LAB/cluster.json --node node1 \
        | iptables-restore --noflush
    # proxyMode nftables:
    python3 testbed/kubeproxy.py render --cluster $LAB/cluster.json --node node3 | nft -f -

`ensure-jumps` prints, per built-in chain jump, the two lines kube-proxy's EnsureChain /
EnsureRule(Prepend) amount to, e.g.:

    iptables -w -t nat -N KUBE-SERVICES 2>/dev/null || true
    iptables -w -t nat -C PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES 2>/dev/null \
        || iptables -w -t nat -I PREROUTING 1 -m comment --comment "kubernetes service portals" -j KUBE-SERVICES

so repeated syncs never duplicate them, and a flushed node (`reboot`) gets them back.
For nftables nodes it prints nothing (the base chains are part of the table).

In `lab` terms (testbed/lib/node.sh apply_kubeproxy; `nx I CMD` = run inside node I's net+mount
namespaces, so `iptables` is the node's backend), for proxyMode iptables, on up/resync/reboot:

    "$PY" "$TB/kubeproxy.py" render --quiet --cluster "$LAB/cluster.json" --node "node$i" \
        | nx "$i" iptables-restore --noflush
    "$PY" "$TB/kubeproxy.py" ensure-jumps --cluster "$LAB/cluster.json" --node "node$i" \
        | nx "$i" sh -e
  or, equivalently, for every proxyMode:
    nx "$i" "$PY" "$TB/kubeproxy.py" apply --cluster "$LAB/cluster.json" --node "node$i"

Without the ensure-jumps step nothing jumps to KUBE-SERVICES / KUBE-POSTROUTING and iptables-mode
nodes do no Service DNAT at all (render warns about it on stderr unless --quiet).

`render --with-jumps` appends the built-in jumps as `-A` lines to the restore input instead;
that is only correct on a node whose built-in chains are empty (a fresh or flushed node),
because `iptables-restore --noflush` appends to built-in chains.

Other commands: `apply` (see above; `--dry-run` prints the commands it would run; a sync deletes
the per-Service chains and affinity sets of Services no longer rendered), `announce` (the node
answering for each load-balancer / external IP), `service-add` / `service-rm` / `service-list`
(the lab's `$LAB/services-added.json`, read together with services.json by every command).
Service kinds: ClusterIP, NodePort, LoadBalancer (ingress IPs, loadBalancerSourceRanges),
externalIPs, externalTrafficPolicy / internalTrafficPolicy Local, sessionAffinity ClientIP,
several named ports (targetPort by a pod's port name), TCP / UDP / SCTP; IPv4 only.
Rendering is deterministic: services in services.json order, endpoints in cluster.json pod order.
"""

import argparse
import base64
import hashlib
import ipaddress
import json
import os
import re
import shlex
import signal
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_SERVICES = os.path.join(HERE, "services.json")
MASQ_MARK = "0x4000"


class ConfigError(Exception):
    """A cluster.json / services.json problem, reported as one clear line."""


# ---------------------------------------------------------------------------------------------
# Model: cluster.json + services.json
# ---------------------------------------------------------------------------------------------

def _load_json(path, what):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{what} {path}: no such file")
    except json.JSONDecodeError as e:
        raise ConfigError(f"{what} {path}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}")
    except OSError as e:
        raise ConfigError(f"{what} {path}: {e.strerror}")


def _require(obj, key, typ, where):
    if not isinstance(obj, dict) or key not in obj:
        raise ConfigError(f"{where}: missing field '{key}'")
    val = obj[key]
    if typ is int and isinstance(val, bool):
        raise ConfigError(f"{where}: field '{key}' must be an integer")
    if not isinstance(val, typ):
        raise ConfigError(f"{where}: field '{key}' must be {typ.__name__}, got {type(val).__name__}")
    return val


def _ip(value, where):
    try:
        return str(ipaddress.IPv4Address(value))
    except (ipaddress.AddressValueError, ValueError):
        raise ConfigError(f"{where}: '{value}' is not an IPv4 address")


def _cidr(value, where):
    try:
        return str(ipaddress.IPv4Network(value, strict=True))
    except (ipaddress.AddressValueError, ipaddress.NetmaskValueError, ValueError):
        raise ConfigError(f"{where}: '{value}' is not an IPv4 CIDR")


def load_cluster(path):
    """Reads and validates the testbed's cluster.json (format: testbed/README.md, "Files written by `up`")."""
    c = _load_json(path, "cluster file")
    if not isinstance(c, dict):
        raise ConfigError(f"cluster file {path}: top level must be an object")
    _cidr(_require(c, "clusterCIDR", str, path), f"{path}: clusterCIDR")
    _cidr(_require(c, "serviceCIDR", str, path), f"{path}: serviceCIDR")
    nodes = _require(c, "nodes", list, path)
    pods = _require(c, "pods", list, path)
    if not nodes:
        raise ConfigError(f"{path}: 'nodes' is empty")
    names = set()
    for i, n in enumerate(nodes):
        where = f"{path}: nodes[{i}]"
        name = _require(n, "name", str, where)
        if name in names:
            raise ConfigError(f"{where}: duplicate node name '{name}'")
        names.add(name)
        _ip(_require(n, "ip", str, where), where)
        mode = n.get("proxyMode", "iptables")
        if mode not in ("iptables", "nftables"):
            raise ConfigError(f"{where}: proxyMode '{mode}' is not iptables or nftables")
        backend = n.get("backend", "nft")
        if backend not in ("nft", "legacy", "nftables"):
            raise ConfigError(f"{where}: backend '{backend}' is not nft, legacy or nftables")
    for i, p in enumerate(pods):
        where = f"{path}: pods[{i}]"
        _require(p, "name", str, where)
        _require(p, "app", str, where)
        node = _require(p, "node", str, where)
        if node not in names:
            raise ConfigError(f"{where}: node '{node}' is not in 'nodes'")
        _ip(_require(p, "ip", str, where), where)
        port = _require(p, "port", int, where)
        if not 0 < port < 65536:
            raise ConfigError(f"{where}: port {port} out of range")
        _require(p, "netns", str, where)
    return c


SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer")
PORT_KEYS = ("name", "protocol", "port", "targetPort", "nodePort")


def _port_value(val, where, key):
    if isinstance(val, bool) or not isinstance(val, (int, str)):
        raise ConfigError(f"{where}: {key} must be an integer or a port name")
    if isinstance(val, int) and not 0 < val < 65536:
        raise ConfigError(f"{where}: {key} {val} out of range")
    return val


def validate_service(v, where):
    """Checks one Service object of services.json (see testbed/README.md, "Services") and fills defaults."""
    _require(v, "namespace", str, where)
    _require(v, "name", str, where)
    typ = _require(v, "type", str, where)
    if typ not in SERVICE_TYPES:
        raise ConfigError(f"{where}: type '{typ}' is not ClusterIP, NodePort or LoadBalancer")
    _ip(_require(v, "clusterIP", str, where), where)
    # Dual-stack (ipFamilies [IPv4, IPv6]): clusterIPs = [clusterIP, an IPv6 address].
    if "clusterIPs" in v:
        cips = _require(v, "clusterIPs", list, where)
        if len(cips) != 2 or cips[0] != v["clusterIP"]:
            raise ConfigError(f"{where}: clusterIPs must be [clusterIP, IPv6 address]")
        try:
            cips[1] = str(ipaddress.IPv6Address(cips[1]))
        except (ipaddress.AddressValueError, ValueError):
            raise ConfigError(f"{where}: clusterIPs[1] '{cips[1]}' is not an IPv6 address")
        v["ipFamilies"] = ["IPv4", "IPv6"]
    if "ports" in v:
        ports = _require(v, "ports", list, where)
        if not ports:
            raise ConfigError(f"{where}: 'ports' is empty")
        if len(ports) > 1 and any(not p.get("name") for p in ports):
            raise ConfigError(f"{where}: every port of a multi-port Service needs a name")
    else:
        ports = [{"name": v.get("portName", ""), **{k: v[k] for k in PORT_KEYS[1:] if k in v}}]
    for j, p in enumerate(ports):
        pw = f"{where}: port {j}"
        proto = p.get("protocol", "TCP")
        if proto not in ("TCP", "UDP", "SCTP"):
            raise ConfigError(f"{pw}: protocol '{proto}' is not TCP, UDP or SCTP")
        p["protocol"] = proto
        port = _require(p, "port", int, pw)
        if not 0 < port < 65536:
            raise ConfigError(f"{pw}: port {port} out of range")
        _port_value(p.get("targetPort", port), pw, "targetPort")
        p.setdefault("targetPort", port)
        if typ in ("NodePort", "LoadBalancer"):
            np_ = _require(p, "nodePort", int, pw)
            if not 30000 <= np_ <= 32767:
                raise ConfigError(f"{pw}: nodePort {np_} outside 30000-32767")
    v["ports"] = ports
    for key in ("externalIPs", "loadBalancerIPs"):
        for ip in v.setdefault(key, []):
            _ip(ip, f"{where}: {key}")
    if v["loadBalancerIPs"] and typ != "LoadBalancer":
        raise ConfigError(f"{where}: loadBalancerIPs on a {typ} Service")
    for c in v.setdefault("loadBalancerSourceRanges", []):
        _cidr(c, f"{where}: loadBalancerSourceRanges")
    for key in ("externalTrafficPolicy", "internalTrafficPolicy"):
        if v.setdefault(key, "Cluster") not in ("Cluster", "Local"):
            raise ConfigError(f"{where}: {key} must be Cluster or Local")
    if v["externalTrafficPolicy"] == "Local" and typ == "ClusterIP":
        raise ConfigError(f"{where}: externalTrafficPolicy Local needs type NodePort or LoadBalancer")
    if v.setdefault("sessionAffinity", "None") not in ("None", "ClientIP"):
        raise ConfigError(f"{where}: sessionAffinity must be None or ClientIP")
    v.setdefault("sessionAffinityTimeout", 10800)
    if v["externalTrafficPolicy"] == "Local" and typ == "LoadBalancer":
        _require(v, "healthCheckNodePort", int, where)
    if "endpointPods" in v:
        if not isinstance(v["endpointPods"], list) or not all(isinstance(x, str) for x in v["endpointPods"]):
            raise ConfigError(f"{where}: endpointPods must be a list of pod names")
    else:
        sel = _require(v, "selector", dict, where)
        if not isinstance(sel.get("app"), str):
            raise ConfigError(f"{where}: selector must be {{\"app\": NAME}}")
    return v


def added_services_path(cluster_path):
    """The lab-private file of Services added after `up` (`lab service add`): next to cluster.json."""
    return os.path.join(os.path.dirname(os.path.abspath(cluster_path)), "services-added.json")


def load_service_objects(path, cluster_path=None):
    """Services of services.json (plus, with cluster_path, the lab's services-added.json), validated."""
    s = _load_json(path, "services file")
    svcs = s.get("services") if isinstance(s, dict) else None
    if not isinstance(svcs, list) or not svcs:
        raise ConfigError(f"services file {path}: expected {{\"services\": [ ... ]}} with at least one service")
    sources = [(path, svcs)]
    if cluster_path:
        extra = added_services_path(cluster_path)
        if os.path.exists(extra):
            e = _load_json(extra, "added services file")
            sources.append((extra, e.get("services", []) if isinstance(e, dict) else []))
    out, seen, ips = [], set(), {}
    for src, lst in sources:
        for i, v in enumerate(lst):
            where = f"{src}: services[{i}]"
            validate_service(v, where)
            key = (v["namespace"], v["name"])
            if key in seen:
                raise ConfigError(f"{where}: duplicate service {v['namespace']}/{v['name']}")
            seen.add(key)
            if v["clusterIP"] in ips:
                raise ConfigError(f"{where}: clusterIP {v['clusterIP']} already used by {ips[v['clusterIP']]}")
            ips[v["clusterIP"]] = f"{v['namespace']}/{v['name']}"
            out.append(v)
    return out


def service_ports(objs):
    """One flat dict per Service port (kube-proxy's ServicePort): the Service's fields plus the
    port's protocol, port, targetPort, nodePort and portName."""
    out = []
    for v in objs:
        for p in v["ports"]:
            sp = {k: val for k, val in v.items() if k != "ports"}
            sp.update({"protocol": p["protocol"], "port": p["port"], "targetPort": p["targetPort"],
                       "portName": p.get("name", "")})
            if "nodePort" in p:
                sp["nodePort"] = p["nodePort"]
            else:
                sp.pop("nodePort", None)
            out.append(sp)
    return out


def load_services(path, cluster_path=None):
    """Service ports of services.json (+ the lab's added Services when cluster_path is given)."""
    return service_ports(load_service_objects(path, cluster_path))


def announcements(cluster, services):
    """{ip: node} for every load-balancer and external IP: the node that answers for it on the
    lab bridge (MetalLB L2 style). services.json's "announce" maps an IP to a node number,
    taken modulo the number of nodes; unlisted IPs go to node1."""
    nodes = cluster["nodes"]
    out = {}
    for svc in services:
        ann = svc.get("announce", {})
        for ip in svc.get("loadBalancerIPs", []) + svc.get("externalIPs", []):
            k = int(ann.get(ip, 1))
            out[ip] = nodes[(k - 1) % len(nodes)]["name"]
    return out


def node_by_name(cluster, name):
    for n in cluster["nodes"]:
        if n["name"] == name:
            return n
    raise ConfigError(f"node '{name}' is not in the cluster file (nodes: "
                      + ", ".join(n["name"] for n in cluster["nodes"]) + ")")


def _target_port(pod, svc):
    tp = svc["targetPort"]
    if isinstance(tp, int):
        return tp
    return (pod.get("namedPorts") or {}).get(tp)


def endpoints(cluster, svc):
    """The service port's endpoints: pods whose app matches (or the Service's endpointPods, a
    selector-less Service with a hand-made EndpointSlice), in cluster.json pod order; a named
    targetPort resolves through the pod's namedPorts (pods without that name are left out)."""
    out = []
    wanted = svc.get("endpointPods")
    for p in cluster["pods"]:
        if wanted is not None:
            if p["name"] not in wanted:
                continue
        elif p["app"] != svc["selector"]["app"]:
            continue
        port = _target_port(p, svc)
        if port is None:
            continue
        out.append({"pod": p["name"], "ip": p["ip"], "port": port, "node": p["node"],
                    "hostNetwork": bool(p.get("hostNetwork", False))})
    return out


def externally_accessible(svc):
    return svc["type"] in ("NodePort", "LoadBalancer") or bool(svc.get("externalIPs"))


def is_plain(svc):
    """A Service port of the lab's original kinds (ClusterIP / NodePort eTP Cluster, one numeric
    port, selector, no external addresses, policies or affinity): the old traffic kinds use only these."""
    return (svc["type"] in ("ClusterIP", "NodePort") and not svc.get("externalIPs")
            and svc.get("externalTrafficPolicy", "Cluster") == "Cluster"
            and svc.get("internalTrafficPolicy", "Cluster") == "Cluster"
            and svc.get("sessionAffinity", "None") == "None" and isinstance(svc["targetPort"], int)
            and "endpointPods" not in svc and not svc.get("portName"))


def cluster_ipv6(svc):
    """The Service port's IPv6 ClusterIP (a dual-stack Service), or None."""
    cips = svc.get("clusterIPs") or []
    return cips[1] if len(cips) > 1 else None


def ipv6_view(cluster, services):
    """(cluster, services) as kube-proxy's IPv6 proxier sees them (it runs one proxier per family):
    nodes and pods with their IPv6 addresses (pods without one are left out), the IPv6 cluster and
    Service CIDRs, and only the dual-stack Service ports, with their IPv6 ClusterIP. Load-balancer
    and external IPs are IPv4-only in the lab, so the IPv6 view has none."""
    nodes = [dict(n, ip=n["ipv6"], podCIDR=n.get("podCIDRv6", f'fd00:244:{n.get("index", 0)}::/64'))
             for n in cluster["nodes"] if n.get("ipv6")]
    pods = [dict(p, ip=p["ipv6"]) for p in cluster["pods"] if p.get("ipv6")]
    c6 = dict(cluster, nodes=nodes, pods=pods, clusterCIDR=cluster.get("clusterCIDRv6", "fd00:244::/32"),
              serviceCIDR=cluster.get("serviceCIDRv6", "fd00:96::/112"))
    s6 = [dict(s, clusterIP=cluster_ipv6(s), externalIPs=[], loadBalancerIPs=[], loadBalancerSourceRanges=[])
          for s in services if cluster_ipv6(s)]
    return c6, s6


def host_port(ip, port):
    """net.JoinHostPort: `[ip]:port` for IPv6."""
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def svc_port_name(svc):
    """kube-proxy's ServicePortName.String(): ns/name[:portName]."""
    s = f'{svc["namespace"]}/{svc["name"]}'
    if svc.get("portName"):
        s += ":" + svc["portName"]
    return s


def _b32sha(s):
    return base64.b32encode(hashlib.sha256(s.encode()).digest()).decode()


# ---------------------------------------------------------------------------------------------
# iptables mode
# ---------------------------------------------------------------------------------------------

def ipt_chain_hash(svc):
    """portProtoHash: 16 base32 chars of sha256(servicePortName + protocol)."""
    return _b32sha(svc_port_name(svc) + svc["protocol"].lower())[:16]


def ipt_sep_chain(svc, ep):
    """servicePortEndpointChainName (the endpoint as JoinHostPort spells it)."""
    return "KUBE-SEP-" + _b32sha(svc_port_name(svc) + svc["protocol"].lower()
                                 + host_port(ep["ip"], ep["port"]))[:16]


def _q(comment):
    """kube-proxy quotes comments with spaces (`"ns/svc cluster IP"`); bare otherwise."""
    return f'"{comment}"' if (" " in comment or ";" in comment) else comment


# (table, dstChain, srcChain, comment, extraArgs) — kube-proxy iptablesJumpChains order, then
# the kubelet-owned KUBE-FIREWALL jumps (no comment).
IPT_JUMPS = [
    ("filter", "KUBE-EXTERNAL-SERVICES", "INPUT", "kubernetes externally-visible service portals", ["-m", "conntrack", "--ctstate", "NEW"]),
    ("filter", "KUBE-EXTERNAL-SERVICES", "FORWARD", "kubernetes externally-visible service portals", ["-m", "conntrack", "--ctstate", "NEW"]),
    ("filter", "KUBE-NODEPORTS", "INPUT", "kubernetes health check service ports", []),
    ("filter", "KUBE-SERVICES", "FORWARD", "kubernetes service portals", ["-m", "conntrack", "--ctstate", "NEW"]),
    ("filter", "KUBE-SERVICES", "OUTPUT", "kubernetes service portals", ["-m", "conntrack", "--ctstate", "NEW"]),
    ("filter", "KUBE-FORWARD", "FORWARD", "kubernetes forwarding rules", []),
    ("filter", "KUBE-PROXY-FIREWALL", "INPUT", "kubernetes load balancer firewall", ["-m", "conntrack", "--ctstate", "NEW"]),
    ("filter", "KUBE-PROXY-FIREWALL", "OUTPUT", "kubernetes load balancer firewall", ["-m", "conntrack", "--ctstate", "NEW"]),
    ("filter", "KUBE-PROXY-FIREWALL", "FORWARD", "kubernetes load balancer firewall", ["-m", "conntrack", "--ctstate", "NEW"]),
    ("nat", "KUBE-SERVICES", "OUTPUT", "kubernetes service portals", []),
    ("nat", "KUBE-SERVICES", "PREROUTING", "kubernetes service portals", []),
    ("nat", "KUBE-POSTROUTING", "POSTROUTING", "kubernetes postrouting rules", []),
    ("filter", "KUBE-FIREWALL", "INPUT", "", []),
    ("filter", "KUBE-FIREWALL", "OUTPUT", "", []),
]


def jump_rule_args(jump):
    """The rule spec (after `-t T -X CHAIN`) of one built-in-chain jump, as an argv list."""
    _table, dst, _src, comment, extra = jump
    args = list(extra)
    if comment:
        args += ["-m", "comment", "--comment", comment]
    return args + ["-j", dst]


def _policy(cluster, node, svc):
    """kube-proxy's endpoint categorisation for one service port on one node (proxier.go of the
    v1.26 era): which chains are used and whether internal / external traffic has endpoints."""
    eps = endpoints(cluster, svc)
    local = [e for e in eps if e["node"] == node["name"]]
    ext = externally_accessible(svc)
    itp_local = svc.get("internalTrafficPolicy") == "Local"
    etp_local = ext and svc.get("externalTrafficPolicy") == "Local"
    uses_cluster = not itp_local or (ext and not etp_local)
    uses_local = itp_local or (ext and etp_local)
    cluster_eps = eps if uses_cluster else []
    local_eps = local if uses_local else []
    reachable = [e for e in eps if e in cluster_eps or e in local_eps]
    return {
        "eps": eps, "reachable": reachable, "cluster_eps": cluster_eps, "local_eps": local_eps,
        "has": bool(eps), "ext": ext, "itp_local": itp_local, "etp_local": etp_local,
        "has_internal": bool(local) if itp_local else bool(eps),
        "has_external": bool(local) if etp_local else bool(eps),
        "uses_cluster_chain": bool(cluster_eps), "uses_local_chain": bool(local_eps),
        "uses_fw": bool(eps) and bool(svc.get("loadBalancerIPs")) and bool(svc.get("loadBalancerSourceRanges")),
    }


def render_iptables(cluster, node, services, with_jumps=False, stale=(), family=4):
    """iptables-restore input of kube-proxy's iptables proxier for one node.

    Follows the v1.26-era proxier (Tests/RolloutTests/Fixtures/kube-proxy/
    iptables-danwinship-01b3ac1-TestOverallIPTablesRulesWithMultipleServices.txt): KUBE-SVC-
    (cluster policy), KUBE-SVL- (local policy), KUBE-EXT- (external destinations), KUBE-FW-
    (loadBalancerSourceRanges), KUBE-SEP- (endpoints, `recent` for ClientIP affinity), and the
    filter table's REJECT / DROP rules for Services without (local) endpoints. `stale`: KUBE-*
    per-Service chains that exist on the node but are no longer rendered (flushed and deleted).
    family 6: the ip6tables-restore input of the IPv6 proxier (pass ipv6_view's cluster and
    services; as in upstream's TestEnableLocalhostNodePortsIPv6: no localnet KUBE-FIREWALL rule,
    the nodeports jump skips ::1).
    """
    cluster_cidr = cluster["clusterCIDR"]
    nat_chains = ["KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-POSTROUTING", "KUBE-MARK-MASQ"]
    nat_rules = [
        f"-A KUBE-POSTROUTING -m mark ! --mark {MASQ_MARK}/{MASQ_MARK} -j RETURN",
        f"-A KUBE-POSTROUTING -j MARK --xor-mark {MASQ_MARK}",
        '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully',
        f"-A KUBE-MARK-MASQ -j MARK --or-mark {MASQ_MARK}",
    ]
    filter_rules = []
    svc_chain_rules = []
    for svc in services:
        pol = _policy(cluster, node, svc)
        name = svc_port_name(svc)
        proto = svc["protocol"].lower()
        h = ipt_chain_hash(svc)
        svc_chain, svl_chain, ext_chain, fw_chain = ("KUBE-SVC-" + h, "KUBE-SVL-" + h, "KUBE-EXT-" + h,
                                                     "KUBE-FW-" + h)
        internal_chain = svl_chain if pol["itp_local"] else svc_chain
        external_policy = svl_chain if pol["etp_local"] else svc_chain
        lb_chain = fw_chain if pol["uses_fw"] else ext_chain
        match = f'-m {proto} -p {proto}'
        if not pol["has"]:
            int_target, int_comment = "REJECT", f'"{name} has no endpoints"'
            ext_target, ext_comment = "REJECT", int_comment
        else:
            int_target, int_comment = "DROP", f'"{name} has no local endpoints"'
            ext_target, ext_comment = "DROP", int_comment
        cip = f'-d {svc["clusterIP"]} --dport {svc["port"]}'
        # Capture the clusterIP.
        if pol["has_internal"]:
            nat_rules.append(f'-A KUBE-SERVICES -m comment --comment "{name} cluster IP" {match} {cip} -j {internal_chain}')
        else:
            filter_rules.append(f'-A KUBE-SERVICES -m comment --comment {int_comment} {match} {cip} -j {int_target}')
        # Capture externalIPs.
        for ip in svc.get("externalIPs", []):
            if pol["has"]:
                nat_rules.append(f'-A KUBE-SERVICES -m comment --comment "{name} external IP" {match} '
                                 f'-d {ip} --dport {svc["port"]} -j {ext_chain}')
            if not pol["has_external"]:
                filter_rules.append(f'-A KUBE-EXTERNAL-SERVICES -m comment --comment {ext_comment} {match} '
                                    f'-d {ip} --dport {svc["port"]} -j {ext_target}')
        # Capture load-balancer ingress.
        for ip in svc.get("loadBalancerIPs", []):
            if pol["has"]:
                nat_rules.append(f'-A KUBE-SERVICES -m comment --comment "{name} loadbalancer IP" {match} '
                                 f'-d {ip} --dport {svc["port"]} -j {lb_chain}')
            if pol["uses_fw"]:
                filter_rules.append(f'-A KUBE-PROXY-FIREWALL -m comment --comment "{name} traffic not accepted by '
                                    f'{fw_chain}" {match} -d {ip} --dport {svc["port"]} -j DROP')
        if not pol["has_external"]:
            for ip in svc.get("loadBalancerIPs", []):
                filter_rules.append(f'-A KUBE-EXTERNAL-SERVICES -m comment --comment {ext_comment} {match} '
                                    f'-d {ip} --dport {svc["port"]} -j {ext_target}')
        # Capture nodeports.
        if svc.get("nodePort"):
            if pol["has"]:
                nat_rules.append(f'-A KUBE-NODEPORTS -m comment --comment {_q(name)} {match} '
                                 f'--dport {svc["nodePort"]} -j {ext_chain}')
            if not pol["has_external"]:
                filter_rules.append(f'-A KUBE-EXTERNAL-SERVICES -m comment --comment {ext_comment} -m addrtype '
                                    f'--dst-type LOCAL {match} --dport {svc["nodePort"]} -j {ext_target}')
        if svc.get("healthCheckNodePort") and svc.get("externalTrafficPolicy") == "Local":
            filter_rules.append(f'-A KUBE-NODEPORTS -m comment --comment "{name} health check node port" '
                                f'-m tcp -p tcp --dport {svc["healthCheckNodePort"]} -j ACCEPT')
        if not pol["has"]:
            continue
        # Internal traffic: masquerade off-cluster sources (the cluster CIDR is the local detector).
        if pol["has_internal"]:
            svc_chain_rules.append(f'-A {internal_chain} -m comment --comment "{name} cluster IP" {match} {cip} '
                                   f'! -s {cluster_cidr} -j KUBE-MARK-MASQ')
        # External destinations.
        if pol["ext"]:
            nat_chains.append(ext_chain)
            if not pol["etp_local"]:
                svc_chain_rules.append(f'-A {ext_chain} -m comment --comment "masquerade traffic for {name} '
                                       f'external destinations" -j KUBE-MARK-MASQ')
            else:
                svc_chain_rules.append(f'-A {ext_chain} -m comment --comment "pod traffic for {name} external '
                                       f'destinations" -s {cluster_cidr} -j {svc_chain}')
                svc_chain_rules.append(f'-A {ext_chain} -m comment --comment "masquerade LOCAL traffic for {name} '
                                       f'external destinations" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ')
                svc_chain_rules.append(f'-A {ext_chain} -m comment --comment "route LOCAL traffic for {name} '
                                       f'external destinations" -m addrtype --src-type LOCAL -j {svc_chain}')
            if pol["has_external"]:
                svc_chain_rules.append(f"-A {ext_chain} -j {external_policy}")
        # Firewall (loadBalancerSourceRanges).
        if pol["uses_fw"]:
            nat_chains.append(fw_chain)
            allow_node = False
            for src in svc["loadBalancerSourceRanges"]:
                svc_chain_rules.append(f'-A {fw_chain} -m comment --comment "{name} loadbalancer IP" -s {src} -j {ext_chain}')
                if ipaddress.IPv4Address(node["ip"]) in ipaddress.IPv4Network(src):
                    allow_node = True
            if allow_node:
                for ip in svc["loadBalancerIPs"]:
                    svc_chain_rules.append(f'-A {fw_chain} -m comment --comment "{name} loadbalancer IP" -s {ip} -j {ext_chain}')
        # Cluster / local policy chains -> endpoints.
        for chain, eps, used in ((svc_chain, pol["cluster_eps"], pol["uses_cluster_chain"]),
                                 (svl_chain, pol["local_eps"], pol["uses_local_chain"])):
            if not used:
                continue
            nat_chains.append(chain)
            if svc.get("sessionAffinity") == "ClientIP":
                for ep in eps:
                    sep = ipt_sep_chain(svc, ep)
                    svc_chain_rules.append(f'-A {chain} -m comment --comment "{name} -> {host_port(ep["ip"], ep["port"])}" '
                                           f'-m recent --name {sep} --rcheck --seconds {svc["sessionAffinityTimeout"]} '
                                           f'--reap -j {sep}')
            n = len(eps)
            for i, ep in enumerate(eps):
                sep = ipt_sep_chain(svc, ep)
                stat = ""
                if i < n - 1:
                    stat = f" -m statistic --mode random --probability {1.0 / (n - i):0.10f}"
                svc_chain_rules.append(f'-A {chain} -m comment --comment "{name} -> {host_port(ep["ip"], ep["port"])}"{stat} -j {sep}')
        for ep in pol["reachable"]:
            sep = ipt_sep_chain(svc, ep)
            nat_chains.append(sep)
            svc_chain_rules.append(f'-A {sep} -m comment --comment {_q(name)} -s {ep["ip"]} -j KUBE-MARK-MASQ')
            aff = f" -m recent --name {sep} --set" if svc.get("sessionAffinity") == "ClientIP" else ""
            svc_chain_rules.append(f'-A {sep} -m comment --comment {_q(name)}{aff} {match} '
                                   f'-j DNAT --to-destination {host_port(ep["ip"], ep["port"])}')
    # Stale per-Service chains (Services removed since the last sync): flushed, then deleted.
    rendered = set(nat_chains)
    stale = [c for c in stale if c not in rendered]
    nat_chains.extend(stale)
    nat_rules.extend(svc_chain_rules)
    nat_rules.append('-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be '
                     'the last rule in this chain" -m addrtype --dst-type LOCAL '
                     + ("! -d ::1/128 " if family == 6 else "") + '-j KUBE-NODEPORTS')
    nat_rules.extend(f"-X {c}" for c in stale)

    out = []
    out.append("# kube-proxy (testbed emulation) node=%s proxyMode=iptables backend=%s family=IPv%d"
               % (node["name"], node.get("backend", "nft"), family))
    out.append("*mangle")
    out.append(":KUBE-IPTABLES-HINT - [0:0]")
    out.append(":KUBE-KUBELET-CANARY - [0:0]")
    out.append(":KUBE-PROXY-CANARY - [0:0]")
    out.append("COMMIT")
    out.append("*filter")
    for ch in ["KUBE-NODEPORTS", "KUBE-SERVICES", "KUBE-EXTERNAL-SERVICES", "KUBE-FIREWALL",
               "KUBE-FORWARD", "KUBE-PROXY-FIREWALL", "KUBE-KUBELET-CANARY", "KUBE-PROXY-CANARY"]:
        out.append(f":{ch} - [0:0]")
    if family == 4:
        out.append('-A KUBE-FIREWALL -m comment --comment "block incoming localnet connections" -d 127.0.0.0/8 '
                   '! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP')
    out.extend(filter_rules)
    out.append("-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP")
    out.append(f'-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark {MASQ_MARK}/{MASQ_MARK} -j ACCEPT')
    out.append('-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack '
               '--ctstate RELATED,ESTABLISHED -j ACCEPT')
    if with_jumps:
        out.extend(_jump_lines("filter"))
    out.append("COMMIT")
    out.append("*nat")
    for ch in nat_chains + ["KUBE-KUBELET-CANARY", "KUBE-PROXY-CANARY"]:
        out.append(f":{ch} - [0:0]")
    out.extend(nat_rules)
    if with_jumps:
        out.extend(_jump_lines("nat"))
    out.append("COMMIT")
    return "\n".join(out) + "\n"


def _jump_lines(table):
    """Built-in jumps as restore `-A` lines, in the order EnsureRule(-I 1) would leave them."""
    lines = []
    for j in reversed([j for j in IPT_JUMPS if j[0] == table]):
        lines.append(f"-A {j[2]} " + " ".join(_q(a) if " " in a else a for a in jump_rule_args(j)))
    return lines


def ensure_jump_commands(iptables="iptables"):
    """Shell lines doing kube-proxy's EnsureChain + EnsureRule(Prepend) for every built-in jump."""
    lines = []
    done = set()
    for j in IPT_JUMPS:
        table, dst, src = j[0], j[1], j[2]
        if (table, dst) not in done:
            done.add((table, dst))
            lines.append(f"{iptables} -w -t {table} -N {dst} 2>/dev/null || true")
        spec = " ".join(shlex.quote(a) for a in jump_rule_args(j))
        lines.append(f"{iptables} -w -t {table} -C {src} {spec} 2>/dev/null || "
                     f"{iptables} -w -t {table} -I {src} 1 {spec}")
    return lines


# ---------------------------------------------------------------------------------------------
# nftables mode
# ---------------------------------------------------------------------------------------------

def _hash_and_truncate(name):
    name = _b32sha(name)[:8] + "-" + name
    limit = 256 - 16
    return name[:limit - 3] + "..." if len(name) > limit else name


def nft_chain_base(svc):
    proto = svc["protocol"].lower()
    return _hash_and_truncate(f'{svc["namespace"]}/{svc["name"]}/{proto}/{svc.get("portName", "")}')


def nft_endpoint_chain(svc, ep):
    proto = svc["protocol"].lower()
    ip = ep["ip"].replace(":", ".")  # IPv6: ':' is not allowed in a chain name
    return "endpoint-" + _hash_and_truncate(
        f'{svc["namespace"]}/{svc["name"]}/{proto}/{svc.get("portName", "")}__{ip}/{ep["port"]}')


def nft_affinity_set(svc, ep):
    """Session-affinity set of one endpoint: the endpoint chain's name with "affinity-"."""
    return "affinity-" + nft_endpoint_chain(svc, ep)[len("endpoint-"):]


NFT_BASE_CHAINS = [
    ("filter-prerouting", "filter", "prerouting", -110),
    ("filter-input", "filter", "input", -110),
    ("filter-forward", "filter", "forward", -110),
    ("filter-output", "filter", "output", -110),
    ("filter-output-post-dnat", "filter", "output", -90),
    ("nat-prerouting", "nat", "prerouting", -100),
    ("nat-output", "nat", "output", -100),
    ("nat-postrouting", "nat", "postrouting", 100),
]

NFT_JUMP_CHAINS = [
    ("nodeport-endpoints-check", "filter-input", "ct state new"),
    ("service-endpoints-check", "filter-input", "ct state new"),
    ("service-endpoints-check", "filter-forward", "ct state new"),
    ("service-endpoints-check", "filter-output", "ct state new"),
    ("firewall-check", "filter-prerouting", "ct state new"),
    ("firewall-check", "filter-output", "ct state new"),
    ("services", "nat-output", ""),
    ("services", "nat-prerouting", ""),
    ("masquerading", "nat-postrouting", ""),
    ("cluster-ips-check", "filter-forward", "ct state new"),
    ("cluster-ips-check", "filter-output-post-dnat", "ct state new"),
]


def render_nftables(cluster, node, services, stale=(), family=4):
    """The nft transaction of a kube-proxy nftables-mode full sync (table ip kube-proxy; family 6:
    table ip6 kube-proxy of the IPv6 proxier, from ipv6_view's cluster and services, shaped like
    the committed nft6-knftables fixture: `ip6 daddr`/`ip6 saddr`, ipv6_addr sets, `[ip]:port`)."""
    if family == 6:
        return _nft_ip6(render_nftables(cluster, node, services, stale=stale, family=4))
    T = "ip kube-proxy"
    out = [f"# kube-proxy (testbed emulation) node={node['name']} proxyMode=nftables",
           f'add table {T} {{ comment "rules for kube-proxy" ; }}']
    for name, typ, hook, prio in NFT_BASE_CHAINS:
        out.append(f"add chain {T} {name} {{ type {typ} hook {hook} priority {prio} ; }}")
        out.append(f"flush chain {T} {name}")
    created = set()

    def ensure(chain, comment=None):
        if chain in created:
            return
        created.add(chain)
        c = f' {{ comment "{comment}" ; }}' if comment else ""
        out.append(f"add chain {T} {chain}{c}")
        out.append(f"flush chain {T} {chain}")

    for dst, src, extra in NFT_JUMP_CHAINS:
        ensure(dst)
        out.append(f"add rule {T} {src} {extra + ' ' if extra else ''}jump {dst}")
    for ch in ("services", "cluster-ips-check", "masquerading", "mark-for-masquerade"):
        ensure(ch)
    out.append(f"add rule {T} mark-for-masquerade mark set mark or {MASQ_MARK}")
    out.append(f"add rule {T} masquerading mark and {MASQ_MARK} == 0 return")
    out.append(f"add rule {T} masquerading mark set mark xor {MASQ_MARK}")
    out.append(f"add rule {T} masquerading masquerade fully-random")
    out.append(f'add set {T} cluster-ips {{ type ipv4_addr ; comment "Active ClusterIPs" ; }}')
    out.append(f'add rule {T} cluster-ips-check ip daddr @cluster-ips reject comment "Reject traffic to invalid ports of ClusterIPs"')
    out.append(f'add rule {T} cluster-ips-check ip daddr {{ {cluster["serviceCIDR"]} }} drop comment "Drop traffic to unallocated ClusterIPs"')
    # nodePortAddresses unset (MatchAll): the nodeport-ips set is ensured absent (add + delete).
    out.append(f'add set {T} nodeport-ips {{ type ipv4_addr ; comment "IPs that accept NodePort traffic" ; }}')
    out.append(f"delete set {T} nodeport-ips")
    out.append(f'add map {T} no-endpoint-services {{ type ipv4_addr . inet_proto . inet_service : verdict ; '
               f'comment "vmap to drop or reject packets to services with no endpoints" ; }}')
    out.append(f'add map {T} no-endpoint-nodeports {{ type inet_proto . inet_service : verdict ; '
               f'comment "vmap to drop or reject packets to service nodeports with no endpoints" ; }}')
    out.append(f'add chain {T} reject-chain {{ comment "helper for @no-endpoint-services / @no-endpoint-nodeports" ; }}')
    out.append(f"flush chain {T} reject-chain")
    out.append(f"add rule {T} reject-chain reject")
    out.append(f"add rule {T} service-endpoints-check ip daddr . meta l4proto . th dport vmap @no-endpoint-services")
    out.append(f"add rule {T} nodeport-endpoints-check ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @no-endpoint-nodeports")
    out.append(f'add map {T} firewall-ips {{ type ipv4_addr . inet_proto . inet_service : verdict ; '
               f'comment "destinations that are subject to LoadBalancerSourceRanges" ; }}')
    ensure("firewall-check")
    out.append(f"add rule {T} firewall-check ip daddr . meta l4proto . th dport vmap @firewall-ips")
    out.append(f'add map {T} service-ips {{ type ipv4_addr . inet_proto . inet_service : verdict ; '
               f'comment "ClusterIP, ExternalIP and LoadBalancer IP traffic" ; }}')
    out.append(f'add map {T} service-nodeports {{ type inet_proto . inet_service : verdict ; comment "NodePort traffic" ; }}')
    out.append(f"add rule {T} services ip daddr . meta l4proto . th dport vmap @service-ips")
    out.append(f"add rule {T} services fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports")
    out.append(f"flush set {T} cluster-ips")
    for m in ("service-ips", "firewall-ips", "no-endpoint-services", "no-endpoint-nodeports", "service-nodeports"):
        out.append(f"flush map {T} {m}")

    cluster_cidr = cluster["clusterCIDR"]
    rendered = set(created)
    for svc in services:
        pol = _policy(cluster, node, svc)
        name = svc_port_name(svc)
        proto = svc["protocol"].lower()
        base = nft_chain_base(svc)
        svc_chain, local_chain, ext_chain, fw_chain = ("service-" + base, "local-" + base, "external-" + base,
                                                       "firewall-" + base)
        internal_chain = local_chain if pol["itp_local"] else svc_chain
        external_policy = local_chain if pol["etp_local"] else svc_chain
        affinity = svc.get("sessionAffinity") == "ClientIP"
        port = svc["port"]
        out.append(f"# {svc['namespace']}/{svc['name']}" + (f" port {svc['portName']}" if svc.get("portName") else ""))
        out.append(f'add element {T} cluster-ips {{ {svc["clusterIP"]} }}')
        int_verdict = "drop" if pol["has"] else "goto reject-chain"
        # Chains first (nft needs a chain declared before a rule or element refers to it).
        for ep in pol["reachable"]:
            ensure(nft_endpoint_chain(svc, ep))
            if affinity:
                out.append(f"add set {T} {nft_affinity_set(svc, ep)} {{ type ipv4_addr ; flags dynamic,timeout ; "
                           f"timeout {svc['sessionAffinityTimeout']}s ; }}")
        if pol["uses_cluster_chain"]:
            ensure(svc_chain)
        if pol["uses_local_chain"]:
            ensure(local_chain)
        if pol["has"] and pol["ext"]:
            ensure(ext_chain)
        if pol["uses_fw"]:
            ensure(fw_chain)
        # ClusterIP.
        if pol["has_internal"]:
            out.append(f'add element {T} service-ips {{ {svc["clusterIP"]} . {proto} . {port} : goto {internal_chain} }}')
        else:
            out.append(f'add element {T} no-endpoint-services {{ {svc["clusterIP"]} . {proto} . {port} '
                       f'comment "{name}" : {int_verdict} }}')
        # externalIPs and load-balancer IPs.
        for ip in svc.get("externalIPs", []) + svc.get("loadBalancerIPs", []):
            if pol["has"]:
                out.append(f'add element {T} service-ips {{ {ip} . {proto} . {port} : goto {ext_chain} }}')
            if not pol["has_external"]:
                out.append(f'add element {T} no-endpoint-services {{ {ip} . {proto} . {port} comment "{name}" : '
                           f'{int_verdict} }}')
        if pol["uses_fw"]:
            for ip in svc["loadBalancerIPs"]:
                out.append(f'add element {T} firewall-ips {{ {ip} . {proto} . {port} : goto {fw_chain} }}')
        # NodePort.
        if svc.get("nodePort"):
            if pol["has"]:
                out.append(f'add element {T} service-nodeports {{ {proto} . {svc["nodePort"]} : goto {ext_chain} }}')
            if not pol["has_external"]:
                out.append(f'add element {T} no-endpoint-nodeports {{ {proto} . {svc["nodePort"]} comment "{name}" : '
                           f'{int_verdict} }}')
        if not pol["has"]:
            continue
        if pol["has_internal"]:
            out.append(f'add rule {T} {internal_chain} ip daddr {svc["clusterIP"]} '
                       f'ip saddr != {cluster_cidr} jump mark-for-masquerade')
        if pol["ext"]:
            if not pol["etp_local"]:
                out.append(f"add rule {T} {ext_chain} jump mark-for-masquerade")
            else:
                out.append(f'add rule {T} {ext_chain} ip saddr {cluster_cidr} goto {svc_chain} '
                           f'comment "short-circuit pod traffic"')
                out.append(f'add rule {T} {ext_chain} fib saddr type local jump mark-for-masquerade '
                           f'comment "masquerade local traffic"')
                out.append(f'add rule {T} {ext_chain} fib saddr type local goto {svc_chain} '
                           f'comment "short-circuit local traffic"')
            if pol["has_external"]:
                out.append(f"add rule {T} {ext_chain} goto {external_policy}")
        if pol["uses_fw"]:
            sources = list(svc["loadBalancerSourceRanges"])
            if any(ipaddress.IPv4Address(node["ip"]) in ipaddress.IPv4Network(c) for c in sources):
                sources += svc["loadBalancerIPs"]
            out.append(f"add rule {T} {fw_chain} ip saddr != {{ {', '.join(sources)} }} drop")
        for chain, eps, used in ((svc_chain, pol["cluster_eps"], pol["uses_cluster_chain"]),
                                 (local_chain, pol["local_eps"], pol["uses_local_chain"])):
            if not used:
                continue
            if affinity:
                for ep in eps:
                    out.append(f"add rule {T} {chain} ip saddr @{nft_affinity_set(svc, ep)} "
                               f"goto {nft_endpoint_chain(svc, ep)}")
            vm = " , ".join(f"{i} : goto {nft_endpoint_chain(svc, ep)}" for i, ep in enumerate(eps))
            out.append(f"add rule {T} {chain} numgen random mod {len(eps)} vmap {{ {vm} }}")
        for ep in pol["reachable"]:
            ch = nft_endpoint_chain(svc, ep)
            out.append(f'add rule {T} {ch} ip saddr {ep["ip"]} jump mark-for-masquerade')
            if affinity:
                out.append(f"add rule {T} {ch} update @{nft_affinity_set(svc, ep)} {{ ip saddr }}")
            out.append(f'add rule {T} {ch} meta l4proto {proto} dnat to {host_port(ep["ip"], ep["port"])}')
            rendered.add("@" + nft_affinity_set(svc, ep))
    rendered |= created
    # Stale per-Service chains and affinity sets (Services removed since the last sync).
    stale_chains = [c for c in stale if not c.startswith("@") and c not in rendered]
    for c in stale_chains:
        out.append(f"flush chain {T} {c}")
    for c in stale_chains:
        out.append(f"delete chain {T} {c}")
    for c in stale:
        if c.startswith("@") and c not in rendered:
            out.append(f"delete set {T} {c[1:]}")
    return "\n".join(out) + "\n"


def _nft_ip6(text):
    """The IPv4 rendering of an IPv6 view turned into `table ip6 kube-proxy`: only the family
    words differ (every address in the text is already IPv6)."""
    text = text.replace("proxyMode=nftables", "proxyMode=nftables family=IPv6")
    text = text.replace(" ip kube-proxy", " ip6 kube-proxy").replace("ipv4_addr", "ipv6_addr")
    text = text.replace("ip daddr != 127.0.0.0/8", "ip6 daddr != ::1")
    return re.sub(r"(?<![\w-])ip (daddr|saddr)\b", r"ip6 \1", text)


# ---------------------------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------------------------

def render(cluster, node, services, with_jumps=False, stale=(), family=4):
    """One family's rules for the node; family 6 renders ipv6_view(cluster, services) (None when
    the node has no IPv6 address or no Service is dual-stack)."""
    if family == 6:
        cluster, services = ipv6_view(cluster, services)
        node = next((n for n in cluster["nodes"] if n["name"] == node["name"]), None)
        if node is None or not services:
            return None
    if node.get("proxyMode", "iptables") == "nftables":
        return render_nftables(cluster, node, services, stale=stale, family=family)
    return render_iptables(cluster, node, services, with_jumps=with_jumps, stale=stale, family=family)


PER_SERVICE_IPT = re.compile(r"^:(KUBE-(?:SVC|SVL|EXT|FW|SEP|XLB)-[A-Z0-9]+) ")
PER_SERVICE_NFT = re.compile(r"^\s*(chain|set) ((?:service|local|external|firewall|endpoint|affinity)-\S+) \{")


def existing_per_service(node, ipt, nft, family=4):
    """Per-Service chains (and nft affinity sets, as "@name") kube-proxy's last sync left on this
    node: a full sync deletes those it no longer renders, as kube-proxy does."""
    if node.get("proxyMode", "iptables") == "nftables":
        r = subprocess.run([nft, "list", "table", "ip6" if family == 6 else "ip", "kube-proxy"],
                           capture_output=True, text=True)
        found = []
        for line in r.stdout.splitlines() if r.returncode == 0 else []:
            m = PER_SERVICE_NFT.match(line)
            if m:
                found.append(("@" if m.group(1) == "set" else "") + m.group(2))
        return found
    r = subprocess.run([ipt + "-save", "-t", "nat"], capture_output=True, text=True)
    return [m.group(1) for m in map(PER_SERVICE_IPT.match, r.stdout.splitlines()) if m] if r.returncode == 0 else []


def cmd_apply(args, cluster, node, services):
    """Does what one kube-proxy full sync does on this node (run inside the node's netns): the
    IPv4 proxier, then the IPv6 one when the node has an IPv6 address and a Service is dual-stack
    (ip6tables-restore --noflush with its own built-in jumps, or `table ip6 kube-proxy`)."""
    steps = []
    for family in (4, 6):
        ipt = args.iptables or "iptables"
        if family == 6:
            ipt = ipt.replace("iptables", "ip6tables", 1)
        stale = [] if args.dry_run else existing_per_service(node, ipt, args.nft, family)
        text = render(cluster, node, services, stale=stale, family=family)
        if text is None:
            continue
        if node.get("proxyMode", "iptables") == "nftables":
            steps.append(([args.nft, "-f", "-"], text))
        else:
            restore = (args.iptables_restore or (ipt + "-restore")) if family == 4 else ipt + "-restore"
            steps += [(["sh", "-ec", "\n".join(ensure_jump_commands(ipt))], None),
                      ([restore, "-w", "--noflush"], text)]
    for argv, stdin in steps:
        if args.dry_run:
            print("$ " + " ".join(shlex.quote(a) for a in argv))
            if stdin is not None and argv[0] != "sh":
                print("  (stdin: %d lines of rules)" % stdin.count("\n"))
            if argv[0] == "sh":
                print(argv[2])
            continue
        r = subprocess.run(argv, input=stdin, text=True, capture_output=True)
        if r.returncode != 0:
            sys.stderr.write(f"kubeproxy apply: node {node['name']}: '{argv[0]}' failed "
                             f"(exit {r.returncode}): {r.stderr.strip() or r.stdout.strip()}\n")
            return 1
    return 0


def _write_json_atomic(path, doc):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    os.replace(tmp, path)


def _ip_at(value, what):
    """"IP" or "IP@N" (N = the number of the node that announces it) -> (ip, N or None)."""
    ip, _, node = value.partition("@")
    _ip(ip, what)
    if node and not node.removeprefix("node").isdigit():
        raise ConfigError(f"{what}: '{value}': expected IP or IP@NODE (e.g. 192.0.2.60@2 or 192.0.2.60@node2)")
    return ip, int(node.removeprefix("node")) if node else None


def cmd_service_add(args, cluster):
    """Adds one Service to the lab's services-added.json (validated with every other Service)."""
    cidr = ipaddress.IPv4Network(cluster["serviceCIDR"])
    cip = _ip(args.cluster_ip, "--cluster-ip")
    if ipaddress.IPv4Address(cip) not in cidr:
        raise ConfigError(f"--cluster-ip {cip} is outside the Service CIDR {cidr}")
    port = {"protocol": args.protocol, "port": args.port,
            "targetPort": int(args.target_port) if args.target_port.isdigit() else args.target_port}
    if args.port_name:
        port["name"] = args.port_name
    svc = {"namespace": args.namespace, "name": args.name, "type": args.type, "clusterIP": cip, "ports": [port]}
    if args.type in ("NodePort", "LoadBalancer"):
        if args.node_port is None:
            raise ConfigError(f"type {args.type} needs --node-port (30000-32767)")
        port["nodePort"] = args.node_port
    if args.endpoints:
        svc["endpointPods"] = [p for p in args.endpoints.split(",") if p]
    else:
        key, _, val = args.selector.partition("=")
        if key != "app" or not val:
            raise ConfigError(f"--selector '{args.selector}': expected app=NAME")
        svc["selector"] = {"app": val}
    announce = {}
    for key, values in (("loadBalancerIPs", args.lb_ip), ("externalIPs", args.external_ip)):
        for value in values:
            ip, node = _ip_at(value, "--lb-ip" if key == "loadBalancerIPs" else "--external-ip")
            svc.setdefault(key, []).append(ip)
            if node:
                announce[ip] = node
    if announce:
        svc["announce"] = announce
    if args.source_range:
        svc["loadBalancerSourceRanges"] = args.source_range
    if args.etp:
        svc["externalTrafficPolicy"] = args.etp
    if args.itp:
        svc["internalTrafficPolicy"] = args.itp
    if args.affinity:
        svc["sessionAffinity"] = args.affinity
    if args.health_check_node_port:
        svc["healthCheckNodePort"] = args.health_check_node_port
    path = added_services_path(args.cluster)
    doc = _load_json(path, "added services file") if os.path.exists(path) else {"services": []}
    doc.setdefault("services", []).append(svc)
    # Validate the whole set (duplicates, clusterIP clashes) before writing.
    tmp = path + ".check"
    _write_json_atomic(tmp, doc)
    try:
        base = _load_json(args.services, "services file")
        extra = _load_json(tmp, "added services file")
        for i, v in enumerate(base.get("services", []) + extra["services"]):
            validate_service(v, f"service {i}")
        names, ips = set(), set()
        for v in base.get("services", []) + extra["services"]:
            if (v["namespace"], v["name"]) in names:
                raise ConfigError(f"service {v['namespace']}/{v['name']} already exists")
            if v["clusterIP"] in ips:
                raise ConfigError(f"clusterIP {v['clusterIP']} is already used")
            names.add((v["namespace"], v["name"]))
            ips.add(v["clusterIP"])
    finally:
        os.unlink(tmp)
    _write_json_atomic(path, doc)
    print(f"added service {args.namespace}/{args.name} ({args.type}, {cip}:{args.port}/{args.protocol})")
    return 0


def cmd_service_rm(args, cluster):
    path = added_services_path(args.cluster)
    doc = _load_json(path, "added services file") if os.path.exists(path) else {"services": []}
    keep = [v for v in doc.get("services", []) if (v.get("namespace"), v.get("name")) != (args.namespace, args.name)]
    if len(keep) == len(doc.get("services", [])):
        raise ConfigError(f"service {args.namespace}/{args.name} was not added at runtime "
                          "(only Services of `lab service add` can be removed)")
    doc["services"] = keep
    _write_json_atomic(path, doc)
    print(f"removed service {args.namespace}/{args.name}")
    return 0


FIXTURES = os.path.join(os.path.dirname(HERE), "Tests", "RolloutTests", "Fixtures", "kube-proxy")


def _upstream_model(affinity_svc5):
    """The Services of upstream's TestOverall{IPTables,NFTables}Rules (WithMultipleServices): node
    192.168.0.2, cluster CIDR 10.0.0.0/8, every endpoint on another node."""
    cluster = {"clusterCIDR": "10.0.0.0/8", "serviceCIDR": "172.30.0.0/16",
               "nodes": [{"name": "node", "ip": "192.168.0.2"}], "pods": []}

    def ep_pods(*last):
        for i in last:
            name = f"ep-{i}"
            if not any(p["name"] == name for p in cluster["pods"]):
                cluster["pods"].append({"name": name, "app": "x", "node": "other", "ip": f"10.180.0.{i}",
                                        "port": 80, "netns": "-"})
        return [f"ep-{i}" for i in last]

    def svc(n, typ, eps, **kw):
        v = {"namespace": f"ns{n}", "name": f"svc{n}", "type": typ, "clusterIP": f"172.30.0.4{n}",
             "protocol": "TCP", "port": 80, "targetPort": 80, "portName": "p80", "endpointPods": eps,
             "externalIPs": [], "loadBalancerIPs": [], "loadBalancerSourceRanges": [],
             "externalTrafficPolicy": "Cluster", "internalTrafficPolicy": "Cluster", "sessionAffinity": "None",
             "sessionAffinityTimeout": 10800}
        v.update(kw)
        return v
    services = [
        svc(1, "ClusterIP", ep_pods(1)),
        svc(2, "LoadBalancer", ep_pods(2), nodePort=3001, externalIPs=["192.168.99.22"], loadBalancerIPs=["1.2.3.4"],
            externalTrafficPolicy="Local", healthCheckNodePort=30000),
        svc(3, "NodePort", ep_pods(3), nodePort=3003),
        svc(4, "ClusterIP", ep_pods(4, 5), externalIPs=["192.168.99.33"]),
        svc(5, "LoadBalancer", ep_pods(3), nodePort=3002, loadBalancerIPs=["5.6.7.8"],
            loadBalancerSourceRanges=["203.0.113.0/25"],
            sessionAffinity="ClientIP" if affinity_svc5 else "None"),
        svc(6, "ClusterIP", []),
    ]
    for v in services:
        for p in cluster["pods"]:
            if p["name"] in v["endpointPods"]:
                p["app"] = "x"
    return cluster, services


def cmd_check_upstream():
    """Renders upstream's own test Services with this emulation and compares, rule for rule, with
    the committed upstream dumps; prints the differences and returns 1 when there are any.

    Compared: iptables (IPv4, and the IPv6 proxier's ip6tables) — every nat / filter rule of the per-Service chains and of KUBE-SERVICES,
    KUBE-NODEPORTS, KUBE-EXTERNAL-SERVICES, KUBE-PROXY-FIREWALL (`MASQUERADE --random-fully`
    read as upstream's fake `MASQUERADE`); nftables — every rule and element that names a
    Service (`service-`, `external-`, `endpoint-`, `firewall-`, `affinity-` chains and sets, the
    `cluster-ips`, `service-ips`, `service-nodeports`, `firewall-ips`, `no-endpoint-*` elements).
    The base chains differ by era (the fixture's `filter-prerouting-pre-dnat`, `nodeport-ips`)."""
    failures = 0
    cluster, services = _upstream_model(affinity_svc5=False)
    node = cluster["nodes"][0]
    mine = render_iptables(cluster, node, service_ports_flat(services))
    ipt_chains = ("KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-EXTERNAL-SERVICES", "KUBE-PROXY-FIREWALL", "KUBE-SVC-",
                  "KUBE-SVL-", "KUBE-EXT-", "KUBE-FW-", "KUBE-SEP-", "KUBE-POSTROUTING", "KUBE-MARK-MASQ")

    def ipt_lines(text):
        return {ln.replace(" --random-fully", "") for ln in text.splitlines()
                if ln.startswith("-A ") and ln.split()[1].startswith(ipt_chains)}
    with open(os.path.join(FIXTURES, "iptables-danwinship-01b3ac1-TestOverallIPTablesRulesWithMultipleServices.txt")) as f:
        theirs = ipt_lines(f.read())
    failures += _report("iptables", theirs, ipt_lines(mine))
    # TestOnlyLocalNodePorts: a NodePort with externalTrafficPolicy Local and one local endpoint
    # (KUBE-SVL-); upstream limits KUBE-NODEPORTS to the node's address (nodePortAddresses), the
    # emulation to local addresses (`--dst-type LOCAL`), so that one rule is left out.
    local = {"clusterCIDR": "10.0.0.0/8", "serviceCIDR": "172.30.0.0/16",
             "nodes": [{"name": "node", "ip": "192.168.0.2"}],
             "pods": [{"name": "a", "app": "x", "node": "other", "ip": "10.180.0.1", "port": 80, "netns": "-"},
                      {"name": "b", "app": "x", "node": "node", "ip": "10.180.2.1", "port": 80, "netns": "-"}]}
    svc1 = {"namespace": "ns1", "name": "svc1", "type": "NodePort", "clusterIP": "172.30.0.41", "protocol": "TCP",
            "port": 80, "targetPort": 80, "portName": "p80", "nodePort": 3001, "selector": {"app": "x"},
            "externalTrafficPolicy": "Local", "internalTrafficPolicy": "Cluster", "sessionAffinity": "None"}
    with open(os.path.join(FIXTURES, "iptables-danwinship-01b3ac1-TestOnlyLocalNodePorts.txt")) as f:
        theirs = {ln for ln in ipt_lines(f.read()) if "-j KUBE-NODEPORTS" not in ln}
    mine = {ln for ln in ipt_lines(render_iptables(local, local["nodes"][0], [svc1])) if "-j KUBE-NODEPORTS" not in ln}
    failures += _report("iptables eTP Local", theirs, mine)
    # TestEnableLocalhostNodePortsIPv6: the IPv6 proxier (ip6tables): SEP hashes and DNAT of
    # `[ip]:port`, the nodeports jump without ::1. Upstream's test has no local-traffic detector,
    # so the emulation's `! -s <cluster CIDR>` / `-s <cluster CIDR>` (pod traffic) rules are left out.
    local6 = {"clusterCIDR": "fd00:10::/64", "serviceCIDR": "fd00:ab34::/112",
              "nodes": [{"name": "node", "ip": "fd00:1::2"}],
              "pods": [{"name": "a", "app": "x", "node": "other", "ip": "ff06::c1", "port": 80, "netns": "-"},
                       {"name": "b", "app": "x", "node": "node", "ip": "ff06::c2", "port": 80, "netns": "-"}]}
    svc6 = dict(svc1, clusterIP="fd00:ab34::20", nodePort=30001)
    with open(os.path.join(FIXTURES, "ip6tables-danwinship-01b3ac1-TestEnableLocalhostNodePortsIPv6.txt")) as f:
        theirs = ipt_lines(f.read())
    mine = {ln for ln in ipt_lines(render_iptables(local6, local6["nodes"][0], [svc6], family=6))
            if " ! -s fd00:10::/64 " not in ln and "pod traffic for" not in ln}
    failures += _report("ip6tables eTP Local", theirs, mine)
    cluster, services = _upstream_model(affinity_svc5=True)
    mine = render_nftables(cluster, cluster["nodes"][0], service_ports_flat(services))
    keys = ("service-", "external-", "endpoint-", "firewall-", "affinity-", "local-")
    elem_maps = (" cluster-ips ", " service-ips ", " service-nodeports ", " firewall-ips ", " no-endpoint-services ",
                 " no-endpoint-nodeports ")

    def nft_lines(text):
        out = set()
        for ln in text.splitlines():
            w = ln.split()
            if len(w) < 5 or w[0] != "add":
                continue
            if w[1] in ("rule", "chain", "set") and w[4].startswith(keys) and not (w[1] == "set" and w[4] == "cluster-ips"):
                out.add(ln)
            elif w[1] == "element" and any(m in ln for m in elem_maps):
                out.add(ln)
        return out
    with open(os.path.join(FIXTURES, "nft-k8s-030880a-TestOverallNFTablesRules.nft")) as f:
        theirs = nft_lines(f.read())
    failures += _report("nftables", theirs, nft_lines(mine))
    return 1 if failures else 0


def service_ports_flat(services):
    """Service dicts already in the flat per-port form (upstream's test model): pass through."""
    return services


def _report(what, theirs, mine):
    missing, extra = sorted(theirs - mine), sorted(mine - theirs)
    print(f"{what}: {len(theirs & mine)} of {len(theirs)} upstream rules rendered identically, "
          f"{len(missing)} missing, {len(extra)} extra")
    for ln in missing:
        print(f"  upstream only: {ln}")
    for ln in extra:
        print(f"  emulation only: {ln}")
    return 1 if missing or extra else 0


def main(argv=None):
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `| head` ends us quietly
    ap = argparse.ArgumentParser(description="kube-proxy rule emulation for the svctrace testbed (test fixture)")
    sub = ap.add_subparsers(dest="cmd", required=True)

    def common(p):
        p.add_argument("--cluster", required=True, help="cluster.json written by `lab up`")
        p.add_argument("--node", required=True, help="node name, e.g. node1")
        p.add_argument("--services", default=DEFAULT_SERVICES, help="services.json (default: next to this script)")

    p = sub.add_parser("render", help="print kube-proxy's rules for NODE (iptables-restore input or nft script)")
    common(p)
    p.add_argument("--with-jumps", action="store_true",
                   help="also emit the built-in chain jumps as -A lines (only for nodes with empty built-in chains)")
    p.add_argument("--quiet", action="store_true",
                   help="do not remind on stderr that the built-in chain jumps are applied separately")
    p.add_argument("--family", type=int, choices=(4, 6), default=4,
                   help="6: the IPv6 proxier's rules (ip6tables-restore input / table ip6 kube-proxy)")
    p = sub.add_parser("ensure-jumps", help="print shell commands that ensure the built-in chain jumps (-C || -I 1)")
    common(p)
    p.add_argument("--iptables", default="iptables", help="iptables binary (default: iptables)")
    p = sub.add_parser("apply", help="ensure jumps + iptables-restore --noflush, or nft -f (run inside the node)")
    common(p)
    p.add_argument("--iptables", default=None, help="iptables binary (default: iptables)")
    p.add_argument("--iptables-restore", default=None, help="restore binary (default: <iptables>-restore)")
    p.add_argument("--nft", default="nft")
    p.add_argument("--dry-run", action="store_true")
    p = sub.add_parser("announce", help="print 'IP NODE_IP' for every load-balancer and external IP")
    p.add_argument("--cluster", required=True)
    p.add_argument("--services", default=DEFAULT_SERVICES)
    p = sub.add_parser("service-add", help="add a Service to the lab's services-added.json")
    p.add_argument("--cluster", required=True)
    p.add_argument("--services", default=DEFAULT_SERVICES)
    p.add_argument("name")
    p.add_argument("--namespace", default="default")
    p.add_argument("--type", default="ClusterIP", choices=SERVICE_TYPES)
    p.add_argument("--cluster-ip", required=True)
    p.add_argument("--protocol", default="TCP", choices=("TCP", "UDP", "SCTP"))
    p.add_argument("--port", type=int, default=80)
    p.add_argument("--target-port", default="8080", help="number or a pod's port name (http, metrics, dns)")
    p.add_argument("--port-name", default="")
    p.add_argument("--node-port", type=int)
    p.add_argument("--selector", default="app=web")
    p.add_argument("--endpoints", help="comma list of pod names: a selector-less Service with these endpoints")
    p.add_argument("--lb-ip", action="append", default=[], help="IP[@N]: load-balancer ingress, announced by node N")
    p.add_argument("--external-ip", action="append", default=[], help="IP[@N]: externalIP, routed via node N")
    p.add_argument("--source-range", action="append", default=[], help="loadBalancerSourceRanges CIDR")
    p.add_argument("--etp", choices=("Cluster", "Local"))
    p.add_argument("--itp", choices=("Cluster", "Local"))
    p.add_argument("--affinity", choices=("None", "ClientIP"))
    p.add_argument("--health-check-node-port", type=int)
    p = sub.add_parser("service-rm", help="remove a Service added with service-add")
    p.add_argument("--cluster", required=True)
    p.add_argument("name")
    p.add_argument("--namespace", default="default")
    p = sub.add_parser("service-list", help="one line per Service port kube-proxy renders")
    p.add_argument("--cluster", required=True)
    p.add_argument("--services", default=DEFAULT_SERVICES)
    sub.add_parser("check-upstream", help="render upstream's test Services and compare with the committed dumps")
    args = ap.parse_args(argv)
    if args.cmd == "check-upstream":
        return cmd_check_upstream()
    if args.cmd == "service-list":
        try:
            for sp in load_services(args.services, args.cluster):
                extra = " ".join(([f"[{cluster_ipv6(sp)}]:{sp['port']}"] if cluster_ipv6(sp) else [])
                                 + sp.get("loadBalancerIPs", []) + sp.get("externalIPs", []))
                np_ = f":{sp['nodePort']}" if sp.get("nodePort") else ""
                print(f"{svc_port_name(sp):<28} {sp['type']:<12} {sp['clusterIP']}:{sp['port']}/{sp['protocol']}"
                      f"{np_} {extra}".rstrip())
            return 0
        except ConfigError as e:
            sys.stderr.write(f"kubeproxy service-list: {e}\n")
            return 2
    if args.cmd in ("announce", "service-add", "service-rm"):
        try:
            cluster = load_cluster(args.cluster)
            if args.cmd == "service-add":
                return cmd_service_add(args, cluster)
            if args.cmd == "service-rm":
                return cmd_service_rm(args, cluster)
            services = load_services(args.services, args.cluster)
            nodes = {n["name"]: n["ip"] for n in cluster["nodes"]}
            for ip, node in sorted(announcements(cluster, services).items()):
                print(ip, nodes[node])
            return 0
        except ConfigError as e:
            sys.stderr.write(f"kubeproxy {args.cmd}: {e}\n")
            return 2
    try:
        cluster = load_cluster(args.cluster)
        services = load_services(args.services, args.cluster)
        node = node_by_name(cluster, args.node)
    except ConfigError as e:
        sys.stderr.write(f"kubeproxy {args.cmd}: {e}\n")
        return 2
    if args.cmd == "render":
        text = render(cluster, node, services, with_jumps=args.with_jumps, family=args.family)
        if text is None:
            sys.stderr.write(f"kubeproxy render: node {node['name']}: no IPv6 address or no dual-stack Service\n")
            return 1
        sys.stdout.write(text)
        if (node.get("proxyMode", "iptables") == "iptables" and not args.with_jumps and not args.quiet):
            sys.stderr.write(f"kubeproxy render: node {node['name']}: the jumps from the built-in chains "
                             "(nat PREROUTING/OUTPUT/POSTROUTING -> KUBE-*) are NOT in this output; apply them "
                             "with `kubeproxy.py ensure-jumps ... | sh -e` or use `kubeproxy.py apply` "
                             "(--quiet silences this)\n")
        return 0
    if args.cmd == "ensure-jumps":
        if node.get("proxyMode", "iptables") == "nftables":
            print(f"# node {node['name']} is in nftables mode: no built-in chain jumps")
            return 0
        print("\n".join(ensure_jump_commands(args.iptables)))
        return 0
    return cmd_apply(args, cluster, node, services)


if __name__ == "__main__":
    sys.exit(main())
