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

Other commands: `apply` (see above; `--dry-run` prints the commands it would run).
Rendering is deterministic: services in services.json order, endpoints in cluster.json pod order.
"""

import argparse
import base64
import hashlib
import ipaddress
import json
import os
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


def load_services(path):
    """Reads and validates services.json: {"services": [ {...}, ... ]}."""
    s = _load_json(path, "services file")
    svcs = s.get("services") if isinstance(s, dict) else None
    if not isinstance(svcs, list) or not svcs:
        raise ConfigError(f"services file {path}: expected {{\"services\": [ ... ]}} with at least one service")
    seen = set()
    for i, v in enumerate(svcs):
        where = f"{path}: services[{i}]"
        ns = _require(v, "namespace", str, where)
        name = _require(v, "name", str, where)
        if (ns, name) in seen:
            raise ConfigError(f"{where}: duplicate service {ns}/{name}")
        seen.add((ns, name))
        typ = _require(v, "type", str, where)
        if typ not in ("ClusterIP", "NodePort"):
            raise ConfigError(f"{where}: type '{typ}' is not ClusterIP or NodePort")
        _ip(_require(v, "clusterIP", str, where), where)
        proto = _require(v, "protocol", str, where)
        if proto not in ("TCP", "UDP", "SCTP"):
            raise ConfigError(f"{where}: protocol '{proto}' is not TCP, UDP or SCTP")
        for key in ("port", "targetPort"):
            port = _require(v, key, int, where)
            if not 0 < port < 65536:
                raise ConfigError(f"{where}: {key} {port} out of range")
        if typ == "NodePort":
            np_ = _require(v, "nodePort", int, where)
            if not 30000 <= np_ <= 32767:
                raise ConfigError(f"{where}: nodePort {np_} outside 30000-32767")
        sel = _require(v, "selector", dict, where)
        if not isinstance(sel.get("app"), str):
            raise ConfigError(f"{where}: selector must be {{\"app\": NAME}}")
    return svcs


def node_by_name(cluster, name):
    for n in cluster["nodes"]:
        if n["name"] == name:
            return n
    raise ConfigError(f"node '{name}' is not in the cluster file (nodes: "
                      + ", ".join(n["name"] for n in cluster["nodes"]) + ")")


def endpoints(cluster, svc):
    """The service's endpoints: pods whose app matches, in cluster.json pod order."""
    out = []
    for p in cluster["pods"]:
        if p["app"] == svc["selector"]["app"]:
            out.append({"pod": p["name"], "ip": p["ip"], "port": svc["targetPort"], "node": p["node"],
                        "hostNetwork": bool(p.get("hostNetwork", False))})
    return out


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
    """servicePortEndpointChainName."""
    return "KUBE-SEP-" + _b32sha(svc_port_name(svc) + svc["protocol"].lower()
                                 + f'{ep["ip"]}:{ep["port"]}')[:16]


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


def render_iptables(cluster, node, services, with_jumps=False):
    """iptables-restore input of kube-proxy's iptables proxier for one node."""
    cluster_cidr = cluster["clusterCIDR"]
    nat_chains = ["KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-POSTROUTING", "KUBE-MARK-MASQ"]
    nat_rules = [
        f"-A KUBE-POSTROUTING -m mark ! --mark {MASQ_MARK}/{MASQ_MARK} -j RETURN",
        f"-A KUBE-POSTROUTING -j MARK --xor-mark {MASQ_MARK}",
        '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully',
        f"-A KUBE-MARK-MASQ -j MARK --or-mark {MASQ_MARK}",
    ]
    svc_chain_rules = []
    for svc in services:
        eps = endpoints(cluster, svc)
        name = svc_port_name(svc)
        proto = svc["protocol"].lower()
        h = ipt_chain_hash(svc)
        svc_chain, ext_chain = "KUBE-SVC-" + h, "KUBE-EXT-" + h
        if not eps:
            continue  # (kube-proxy would REJECT in filter KUBE-SERVICES; none of ours are empty)
        nat_chains.append(svc_chain)
        nat_rules.append(f'-A KUBE-SERVICES -m comment --comment "{name} cluster IP" -m {proto} -p {proto} '
                         f'-d {svc["clusterIP"]} --dport {svc["port"]} -j {svc_chain}')
        if svc["type"] == "NodePort":
            nat_chains.append(ext_chain)
            svc_chain_rules.append(f'-A KUBE-EXT-{h} -m comment --comment "masquerade traffic for {name} external destinations" -j KUBE-MARK-MASQ')
            svc_chain_rules.append(f"-A KUBE-EXT-{h} -j {svc_chain}")
            nat_rules.append(f'-A KUBE-NODEPORTS -m comment --comment {_q(name)} -m {proto} -p {proto} '
                             f'--dport {svc["nodePort"]} -j {ext_chain}')
        svc_chain_rules.append(f'-A {svc_chain} -m comment --comment "{name} cluster IP" -m {proto} -p {proto} '
                               f'-d {svc["clusterIP"]} --dport {svc["port"]} ! -s {cluster_cidr} -j KUBE-MARK-MASQ')
        n = len(eps)
        for i, ep in enumerate(eps):
            sep = ipt_sep_chain(svc, ep)
            stat = ""
            if i < n - 1:
                stat = f" -m statistic --mode random --probability {1.0 / (n - i):0.10f}"
            svc_chain_rules.append(f'-A {svc_chain} -m comment --comment "{name} -> {ep["ip"]}:{ep["port"]}"{stat} -j {sep}')
        for ep in eps:
            sep = ipt_sep_chain(svc, ep)
            nat_chains.append(sep)
            svc_chain_rules.append(f'-A {sep} -m comment --comment {_q(name)} -s {ep["ip"]}/32 -j KUBE-MARK-MASQ')
            svc_chain_rules.append(f'-A {sep} -m comment --comment {_q(name)} -m {proto} -p {proto} '
                                   f'-j DNAT --to-destination {ep["ip"]}:{ep["port"]}')
    nat_rules.extend(svc_chain_rules)
    nat_rules.append('-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be '
                     'the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS')

    out = []
    out.append("# kube-proxy (testbed emulation) node=%s proxyMode=iptables backend=%s" % (node["name"], node.get("backend", "nft")))
    out.append("*mangle")
    out.append(":KUBE-IPTABLES-HINT - [0:0]")
    out.append(":KUBE-KUBELET-CANARY - [0:0]")
    out.append(":KUBE-PROXY-CANARY - [0:0]")
    out.append("COMMIT")
    out.append("*filter")
    for ch in ["KUBE-NODEPORTS", "KUBE-SERVICES", "KUBE-EXTERNAL-SERVICES", "KUBE-FIREWALL",
               "KUBE-FORWARD", "KUBE-PROXY-FIREWALL", "KUBE-KUBELET-CANARY", "KUBE-PROXY-CANARY"]:
        out.append(f":{ch} - [0:0]")
    out.append('-A KUBE-FIREWALL -m comment --comment "block incoming localnet connections" -d 127.0.0.0/8 '
               '! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP')
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
    return "endpoint-" + _hash_and_truncate(
        f'{svc["namespace"]}/{svc["name"]}/{proto}/{svc.get("portName", "")}__{ep["ip"]}/{ep["port"]}')


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


def render_nftables(cluster, node, services):
    """The nft transaction of a kube-proxy nftables-mode full sync (table ip kube-proxy)."""
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
    for svc in services:
        eps = endpoints(cluster, svc)
        proto = svc["protocol"].lower()
        base = nft_chain_base(svc)
        svc_chain, ext_chain = "service-" + base, "external-" + base
        out.append(f"# {svc['namespace']}/{svc['name']}")
        out.append(f'add element {T} cluster-ips {{ {svc["clusterIP"]} }}')
        if not eps:
            out.append(f'add element {T} no-endpoint-services {{ {svc["clusterIP"]} . {proto} . {svc["port"]} '
                       f'comment "{svc_port_name(svc)}" : goto reject-chain }}')
            continue
        for ep in eps:
            ensure(nft_endpoint_chain(svc, ep))
        ensure(svc_chain)
        if svc["type"] == "NodePort":
            ensure(ext_chain)
        out.append(f'add element {T} service-ips {{ {svc["clusterIP"]} . {proto} . {svc["port"]} : goto {svc_chain} }}')
        if svc["type"] == "NodePort":
            out.append(f'add element {T} service-nodeports {{ {proto} . {svc["nodePort"]} : goto {ext_chain} }}')
        out.append(f'add rule {T} {svc_chain} ip daddr {svc["clusterIP"]} {proto} dport {svc["port"]} '
                   f'ip saddr != {cluster_cidr} jump mark-for-masquerade')
        if svc["type"] == "NodePort":
            out.append(f"add rule {T} {ext_chain} jump mark-for-masquerade")
            out.append(f"add rule {T} {ext_chain} goto {svc_chain}")
        vm = " , ".join(f"{i} : goto {nft_endpoint_chain(svc, ep)}" for i, ep in enumerate(eps))
        out.append(f"add rule {T} {svc_chain} numgen random mod {len(eps)} vmap {{ {vm} }}")
        for ep in eps:
            ch = nft_endpoint_chain(svc, ep)
            out.append(f'add rule {T} {ch} ip saddr {ep["ip"]} jump mark-for-masquerade')
            out.append(f'add rule {T} {ch} meta l4proto {proto} dnat to {ep["ip"]}:{ep["port"]}')
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------------------------

def render(cluster, node, services, with_jumps=False):
    if node.get("proxyMode", "iptables") == "nftables":
        return render_nftables(cluster, node, services)
    return render_iptables(cluster, node, services, with_jumps=with_jumps)


def cmd_apply(args, cluster, node, services):
    """Does what one kube-proxy full sync does on this node (run inside the node's netns)."""
    text = render(cluster, node, services)
    if node.get("proxyMode", "iptables") == "nftables":
        steps = [([args.nft, "-f", "-"], text)]
    else:
        ipt = args.iptables or "iptables"
        restore = args.iptables_restore or (ipt + "-restore")
        steps = [(["sh", "-ec", "\n".join(ensure_jump_commands(ipt))], None),
                 ([restore, "-w", "--noflush"], text)]
    for argv, stdin in steps:
        if args.dry_run:
            print("$ " + " ".join(shlex.quote(a) for a in argv))
            if stdin is not None and argv[0] != "sh":
                print("  (stdin: %d lines of rules)" % text.count("\n"))
            if argv[0] == "sh":
                print(argv[2])
            continue
        r = subprocess.run(argv, input=stdin, text=True, capture_output=True)
        if r.returncode != 0:
            sys.stderr.write(f"kubeproxy apply: node {node['name']}: '{argv[0]}' failed "
                             f"(exit {r.returncode}): {r.stderr.strip() or r.stdout.strip()}\n")
            return 1
    return 0


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
    p = sub.add_parser("ensure-jumps", help="print shell commands that ensure the built-in chain jumps (-C || -I 1)")
    common(p)
    p.add_argument("--iptables", default="iptables", help="iptables binary (default: iptables)")
    p = sub.add_parser("apply", help="ensure jumps + iptables-restore --noflush, or nft -f (run inside the node)")
    common(p)
    p.add_argument("--iptables", default=None, help="iptables binary (default: iptables)")
    p.add_argument("--iptables-restore", default=None, help="restore binary (default: <iptables>-restore)")
    p.add_argument("--nft", default="nft")
    p.add_argument("--dry-run", action="store_true")
    args = ap.parse_args(argv)
    try:
        cluster = load_cluster(args.cluster)
        services = load_services(args.services)
        node = node_by_name(cluster, args.node)
    except ConfigError as e:
        sys.stderr.write(f"kubeproxy {args.cmd}: {e}\n")
        return 2
    if args.cmd == "render":
        sys.stdout.write(render(cluster, node, services, with_jumps=args.with_jumps))
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
