#!/usr/bin/env python3
"""Service traffic with ground truth for the svctrace testbed (a TEST FIXTURE).

    python3 traffic.py --cluster $LAB/cluster.json [--services FILE] [--count N] [--burst B]
                       [--concurrency C] [--kinds k1,k2] [--out FILE] [--timeout S]
                       [--max-time S] [--check] [--seed N]

Opens connections to Services, every one from INSIDE a testbed namespace (a pod, a node, or the
external client namespace; never the root namespace), and prints one JSON line per connection:

    {"time":"2026-11-27T13:00:00.123456Z","kind":"pod-clusterip","client_ns":"svtlab-n1-web-1",
     "client_ip":"10.244.1.10","client_port":40000,"proto":"tcp","service":"default/web",
     "service_ip":"10.96.0.10","service_port":80,"dnat_node":"node1","pod_name":"web-2",
     "pod_ip":"10.244.2.10","pod_port":8080,"seen_client_ip":"10.244.1.10","seen_client_port":40000}

time = UTC when the connection was opened (µs); client_ip/port = the client socket's own address;
dnat_node = the node whose kube-proxy rules translated it (the client's node; for NodePort the node
that received it); pod_* and seen_client_* come from the answering pod's reply.

Kinds (`--kinds`, default all): host-clusterip (node netns -> ClusterIP), pod-clusterip (pod ->
ClusterIP; not marked 0x4000), nodeport (ext -> node IP:nodePort), udp (pod/node -> dns ClusterIP),
hairpin (pod -> its own app's Service until it lands on itself; the misses are emitted as
pod-clusterip lines, they are real connections too), hostnetwork (node/pod -> the hostNetwork
endpoint's Service), burst (B >= 200 TCP connections from every pod and node, all opened at the
same moment and held open together; their lines carry kind pod-clusterip / host-clusterip).
Service kinds (`--kinds service-kinds`; testbed/README.md "Service kinds"): lb, lb-ranges,
lb-local, externalip (ext -> load-balancer / external IP via its announcing node), nodeport-local
(ext -> node:nodePort of an eTP-Local Service, source kept), itp-local, affinity (4 per client,
one pod per client), multiport; for these, service_ip/service_port are the address the client
dialled and cluster_ip/svc_port the Service's; ipv6 (`--kinds ipv6`, also in `all`): pods and
nodes -> the IPv6 ClusterIP of every dual-stack Service port (TCP and UDP), ground truth and
--check as for pod-clusterip / udp, with the IPv6 addresses; expected drops drop-lb-ranges and drop-etp-local go
to --drops-out (nothing may answer). `--kinds` default: the first seven kinds; `all`: every kind.
--service NS/NAME limits every kind to that Service (e.g. one added with `lab service add`).
--count N is per kind (hairpin: N self-landings). Client ports are unique per namespace within a
run. Lines go to --out (or stdout); failures to stderr. `--check` verifies every line (endpoint,
hairpin, source address as kube-proxy's masquerade rules predict) and prints `N passed, M failed`;
exit 1 on any failure or failed connection.
"""

import argparse
import ctypes
import datetime
import ipaddress
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, HERE)
import kubeproxy  # noqa: E402  (same directory; model loading is shared)

DEFAULT_KINDS = ["host-clusterip", "pod-clusterip", "nodeport", "udp", "hairpin", "hostnetwork", "burst"]
# The Service kinds beyond ClusterIP / NodePort (eTP Cluster): `--kinds service-kinds` selects them.
SERVICE_KINDS = ["lb", "lb-ranges", "lb-local", "nodeport-local", "externalip", "itp-local", "affinity",
                 "multiport"]
# Connections kube-proxy must DROP: recorded as expected drops (--drops-out), never as connections.
DROP_KINDS = ["drop-lb-ranges", "drop-etp-local"]
# Dual-stack Services: pods and nodes -> the IPv6 ClusterIP (kept out of service-kinds: its own suite).
IPV6_KINDS = ["ipv6"]
ALL_KINDS = DEFAULT_KINDS + SERVICE_KINDS + DROP_KINDS + IPV6_KINDS
KIND_GROUPS = {"default": DEFAULT_KINDS, "service-kinds": SERVICE_KINDS + DROP_KINDS, "all": ALL_KINDS}
# Kinds whose Service keeps the client's source (externalTrafficPolicy Local).
SOURCE_KEPT_KINDS = {"lb-local", "nodeport-local"}
# Kinds that must land on an endpoint of the node the connection entered.
NODE_LOCAL_KINDS = {"lb-local", "nodeport-local", "itp-local"}
AFFINITY_REPEATS = 4
CLONE_NEWNET = 0x40000000
PORT_LO, PORT_HI = 20000, 60999
HAIRPIN_ATTEMPTS = 40


# ---------------------------------------------------------------------------------------------
# Worker (runs inside one namespace)
# ---------------------------------------------------------------------------------------------

def _enter_netns(path):
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({path}): {os.strerror(err)}")
    finally:
        os.close(fd)


def _now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class PortPool:
    """Hands out this worker's client ports (a disjoint, shuffled slice per namespace and run)."""

    def __init__(self, ports):
        self.ports = list(ports)
        self.lock = threading.Lock()

    def take(self):
        with self.lock:
            return self.ports.pop() if self.ports else None


def _family(ip):
    return socket.AF_INET6 if ":" in ip else socket.AF_INET


def _bind(sock, pool):
    for _ in range(50):
        port = pool.take()
        if port is None:
            raise OSError("client port pool exhausted")
        try:
            sock.bind(("::" if sock.family == socket.AF_INET6 else "0.0.0.0", port))
            return
        except OSError:
            continue
    raise OSError("no free client port")


def _wait(barrier):
    """Waits at a burst barrier; a broken barrier only loses the synchronisation, not the connection."""
    if barrier is None:
        return
    try:
        barrier.wait()
    except threading.BrokenBarrierError:
        pass


def _one(job, pool, timeout, barrier=None, barrier2=None):
    """Opens one connection; returns (record, None) or (None, error).

    In a burst, every thread passes both barriers exactly once (also when it fails), so the others
    never wait for a thread that gave up: barrier = all bound, barrier2 = all connected (held open).
    """
    proto = job["proto"]
    if job.get("expect") == "drop":
        return _one_drop(job, pool, timeout)
    sock = socket.socket(_family(job["dst_ip"]), socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
    passed = [False, False]

    def sync(n, b):
        if not passed[n]:
            passed[n] = True
            _wait(b)
    try:
        sock.settimeout(timeout)
        try:
            _bind(sock, pool)
        finally:
            sync(0, barrier)
        t = _now()
        if proto == "tcp":
            try:
                sock.connect((job["dst_ip"], job["dst_port"]))
            finally:
                sync(1, barrier2)
            local = sock.getsockname()
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = sock.recv(4096)
                if not chunk:
                    break
                buf += chunk
        else:
            sync(1, barrier2)
            sock.connect((job["dst_ip"], job["dst_port"]))
            local = sock.getsockname()
            buf = b""
            for _attempt in range(3):
                sock.settimeout(timeout / 3)
                sock.send(b"svctrace-testbed\n")
                try:
                    buf = sock.recv(4096)
                    break
                except socket.timeout:
                    continue
        if not buf:
            raise OSError("no reply from the service")
        reply = json.loads(buf.decode())
        rec = {
            "time": t, "kind": job["kind"], "client_ns": job["client_ns"],
            "client_ip": local[0], "client_port": local[1], "proto": proto,
            "service": job["service"], "service_ip": job["service_ip"], "service_port": job["service_port"],
            "dnat_node": job["dnat_node"], "pod_name": reply["pod"], "pod_ip": reply["ip"],
            "pod_port": reply["port"], "seen_client_ip": reply["client_ip"],
            "seen_client_port": reply["client_port"],
        }
        for key in ("cluster_ip", "svc_port"):
            if key in job:
                rec[key] = job[key]
        return rec, None
    except (OSError, ValueError, KeyError, TypeError) as e:
        sync(0, barrier)
        sync(1, barrier2)
        return None, f"{job['kind']} {job['client_ns']} -> {job['dst_ip']}:{job['dst_port']}/{proto}: {e}"
    finally:
        sock.close()


def _one_drop(job, pool, timeout):
    """A connection kube-proxy must drop: (drop record, None) when nothing answered within the
    timeout, (None, error) when it was answered or refused."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.settimeout(min(timeout, job.get("drop_timeout", 1.5)))
        _bind(sock, pool)
        local = sock.getsockname()
        t = _now()
        what = f"{job['kind']} {job['client_ns']} {local[0]}:{local[1]} -> {job['dst_ip']}:{job['dst_port']}"
        try:
            sock.connect((job["dst_ip"], job["dst_port"]))
        except socket.timeout:
            rec = {"time": t, "kind": job["kind"], "client_ns": job["client_ns"],
                   "client_ip": job.get("client_ip", local[0]),
                   "client_port": local[1], "proto": job["proto"], "service": job["service"],
                   "service_ip": job["service_ip"], "service_port": job["service_port"],
                   "dnat_node": job["dnat_node"], "outcome": "dropped", "why": job.get("why", "")}
            return rec, None
        except OSError as e:
            return None, f"{what}: expected a silent drop, got {e}"
        reply = sock.recv(4096).decode(errors="replace").strip()
        return None, f"{what}: expected a drop, answered: {reply[:120]}"
    except OSError as e:
        return None, f"{job['kind']} {job['client_ns']} -> {job['dst_ip']}:{job['dst_port']}: {e}"
    finally:
        sock.close()


def worker_main():
    spec = json.loads(sys.stdin.readline())
    try:
        _enter_netns(spec["netns_path"])
    except OSError as e:
        print(json.dumps({"fatal": f"cannot enter namespace {spec['client_ns']}: {e}"}), flush=True)
        return 1
    pool = PortPool(spec["ports"])
    jobs = spec["jobs"]
    timeout = spec["timeout"]
    deadline = time.monotonic() + spec["max_time"]
    out_lock = threading.Lock()

    def emit(obj):
        line = json.dumps(obj, separators=(",", ":"))
        with out_lock:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    def run_job(job, barrier=None, barrier2=None):
        if job.get("until_self"):
            for _ in range(job.get("max_attempts", HAIRPIN_ATTEMPTS)):
                if time.monotonic() > deadline:
                    emit({"error": f"hairpin {job['client_ns']}: deadline reached"})
                    return
                rec, err = _one(job, pool, timeout)
                if err:
                    emit({"error": err})
                    continue
                if rec["pod_name"] == job["until_self"]:
                    emit(rec)
                    return
                rec["kind"] = "pod-clusterip"
                emit(rec)
            emit({"error": f"hairpin {job['client_ns']}: never landed on itself in "
                           f"{job.get('max_attempts', HAIRPIN_ATTEMPTS)} attempts"})
            return
        if time.monotonic() > deadline:
            emit({"error": f"{job['kind']} {job['client_ns']}: deadline reached"})
            return
        rec, err = _one(job, pool, timeout, barrier, barrier2)
        if rec and rec.get("outcome") == "dropped":
            emit({"dropped": rec})
        else:
            emit(rec if rec else {"error": err})

    if spec.get("burst"):
        # Rendezvous: every thread binds its socket and waits at `gate` (n threads + this one);
        # we report ready, the parent says go once ALL namespaces are ready, and every connection
        # of the burst is opened at the same moment and held open until all are connected.
        n = len(jobs)
        gate = threading.Barrier(n + 1, timeout=60)
        held = threading.Barrier(n, timeout=60)
        threads = [threading.Thread(target=run_job, args=(j, gate, held), daemon=True) for j in jobs]
        for th in threads:
            th.start()
        emit({"ready": True})
        sys.stdin.readline()  # "go" (or EOF if the parent gave up: go anyway)
        _wait(gate)
        for th in threads:
            th.join(max(0.1, deadline - time.monotonic()))
        return 0

    idx = [0]
    idx_lock = threading.Lock()

    def loop():
        while True:
            with idx_lock:
                if idx[0] >= len(jobs):
                    return
                job = jobs[idx[0]]
                idx[0] += 1
            run_job(job)

    threads = [threading.Thread(target=loop, daemon=True) for _ in range(max(1, min(spec["concurrency"], len(jobs))))]
    for th in threads:
        th.start()
    for th in threads:
        th.join(max(0.1, deadline - time.monotonic()))
    return 0


# ---------------------------------------------------------------------------------------------
# Planning
# ---------------------------------------------------------------------------------------------

def _netns_path(entity):
    named = os.path.join("/run/netns", entity["netns"])
    if os.path.exists(named):
        return named
    pid = entity.get("pid")
    if pid:
        return f"/proc/{pid}/ns/net"
    return named


class Plan:
    """Builds per-namespace job lists for the selected kinds."""

    def __init__(self, cluster, services):
        self.cluster, self.services = cluster, services
        self.nodes = {n["name"]: n for n in cluster["nodes"]}
        self.pods = [p for p in cluster["pods"] if not p.get("hostNetwork")]

    def _svc(self, pred):
        return [s for s in self.services if pred(s)]

    def job(self, kind, client, svc, dst_ip=None, dst_port=None, dnat_node=None, **extra):
        name = f'{svc["namespace"]}/{svc["name"]}' + (f':{svc["portName"]}' if svc.get("portName") else "")
        j = {"kind": kind, "client_ns": client["netns"], "proto": svc["protocol"].lower(),
             "service": name, "service_ip": svc["clusterIP"],
             "service_port": svc["port"], "dst_ip": dst_ip or svc["clusterIP"],
             "dst_port": dst_port or svc["port"],
             "dnat_node": dnat_node or client.get("node") or client["name"]}
        j.update(extra)
        return j

    def build(self, kinds, count):
        jobs = []
        plain = kubeproxy.is_plain
        tcp_cluster = self._svc(lambda s: plain(s) and s["protocol"] == "TCP" and kubeproxy.endpoints(self.cluster, s)
                                and not any(e["hostNetwork"] for e in kubeproxy.endpoints(self.cluster, s)))
        udp = self._svc(lambda s: plain(s) and s["protocol"] == "UDP" and kubeproxy.endpoints(self.cluster, s))
        hostnet = self._svc(lambda s: plain(s) and any(e["hostNetwork"] for e in kubeproxy.endpoints(self.cluster, s)))
        nodeports = self._svc(lambda s: plain(s) and s["type"] == "NodePort" and kubeproxy.endpoints(self.cluster, s))
        nodes = list(self.nodes.values())
        need = lambda what, lst, kind: lst or sys.exit(f"traffic: kind {kind} needs {what}, none in services/cluster")
        for i in range(count):
            if "host-clusterip" in kinds:
                need("a TCP ClusterIP service with pod endpoints", tcp_cluster, "host-clusterip")
                jobs.append(self.job("host-clusterip", nodes[i % len(nodes)], tcp_cluster[i % len(tcp_cluster)]))
            if "pod-clusterip" in kinds:
                need("pods", self.pods, "pod-clusterip")
                need("a TCP ClusterIP service with pod endpoints", tcp_cluster, "pod-clusterip")
                jobs.append(self.job("pod-clusterip", self.pods[i % len(self.pods)],
                                     tcp_cluster[(i // len(self.pods)) % len(tcp_cluster)]))
            if "nodeport" in kinds:
                need("a NodePort service", nodeports, "nodeport")
                ext = self.cluster.get("ext")
                if not ext:
                    sys.exit("traffic: kind nodeport needs 'ext' in the cluster file")
                n = nodes[i % len(nodes)]
                s = nodeports[i % len(nodeports)]
                jobs.append(self.job("nodeport", {"netns": ext["netns"], "name": "ext"}, s,
                                     dst_ip=n["ip"], dst_port=s["nodePort"], dnat_node=n["name"]))
            if "udp" in kinds:
                need("a UDP service", udp, "udp")
                clients = self.pods + nodes
                jobs.append(self.job("udp", clients[i % len(clients)], udp[i % len(udp)]))
            if "hostnetwork" in kinds:
                need("a service with a hostNetwork endpoint", hostnet, "hostnetwork")
                clients = nodes + self.pods
                jobs.append(self.job("hostnetwork", clients[i % len(clients)], hostnet[i % len(hostnet)]))
            if "hairpin" in kinds:
                cands = [(p, s) for p in self.pods for s in tcp_cluster
                         if any(e["pod"] == p["name"] for e in kubeproxy.endpoints(self.cluster, s))]
                need("a pod behind a TCP ClusterIP service", cands, "hairpin")
                p, s = cands[i % len(cands)]
                # landing on itself has probability 1/n per attempt: (1-1/n)^(10n) < 5e-5
                attempts = max(HAIRPIN_ATTEMPTS, 10 * len(kubeproxy.endpoints(self.cluster, s)))
                jobs.append(self.job("hairpin", p, s, until_self=p["name"], max_attempts=attempts))
        for kind in SERVICE_KINDS + DROP_KINDS + IPV6_KINDS:
            if kind in kinds:
                cands = self.service_kind_jobs(kind)
                if not cands:
                    sys.exit(f"traffic: kind {kind}: no Service / client in services and cluster fits it")
                if kind == "affinity":
                    # AFFINITY_REPEATS connections per client in a row, so each client is checked.
                    per = max(1, count // AFFINITY_REPEATS)
                    jobs += [cands[(i // AFFINITY_REPEATS) % len(cands)] for i in range(per * AFFINITY_REPEATS)]
                else:
                    jobs += [cands[i % len(cands)] for i in range(count)]
        return jobs

    def service_kind_jobs(self, kind):
        """Every distinct (client, destination) job of one new Service kind, in a fixed order."""
        ext = self.cluster.get("ext")
        ext_client = {"netns": ext["netns"], "name": "ext"} if ext else None
        ann = kubeproxy.announcements(self.cluster, self.services)
        nodes = list(self.nodes.values())
        out = []

        def eps(s):
            return kubeproxy.endpoints(self.cluster, s)

        def local(s, node):
            return any(e["node"] == node for e in eps(s))

        def addressed(kind_, client, s, ip, port, node, **extra):
            if extra.get("expect") == "drop":
                extra["client_ip"] = client.get("ip") or ext["ip"]
            return self.job(kind_, client, s, dst_ip=ip, dst_port=port, dnat_node=node, service_ip=ip,
                            service_port=port, cluster_ip=s["clusterIP"], svc_port=s["port"], **extra)

        tcp = [s for s in self.services if s["protocol"] == "TCP" and eps(s)]
        for s in tcp:
            etp_local = s.get("externalTrafficPolicy") == "Local"
            ranges = [ipaddress.IPv4Network(c) for c in s.get("loadBalancerSourceRanges", [])]
            ext_allowed = ext and (not ranges or any(ipaddress.IPv4Address(ext["ip"]) in c for c in ranges))
            for ip in s.get("loadBalancerIPs", []):
                node = ann[ip]
                if kind == "lb" and ext_client and not etp_local and not ranges:
                    out.append(addressed(kind, ext_client, s, ip, s["port"], node))
                if kind == "lb-ranges" and ext_client and ranges and ext_allowed and not etp_local:
                    out.append(addressed(kind, ext_client, s, ip, s["port"], node))
                if kind == "lb-local" and ext_client and etp_local and ext_allowed and local(s, node):
                    out.append(addressed(kind, ext_client, s, ip, s["port"], node))
                if kind == "drop-etp-local" and ext_client and etp_local and not local(s, node):
                    out.append(addressed(kind, ext_client, s, ip, s["port"], node, expect="drop",
                                         why=f"externalTrafficPolicy Local, no endpoint on {node}"))
                if kind == "drop-lb-ranges" and ranges:
                    for p in self.pods:
                        if not any(ipaddress.IPv4Address(p["ip"]) in c for c in ranges):
                            out.append(addressed(kind, p, s, ip, s["port"], p["node"], expect="drop",
                                                 why=f"source {p['ip']} not in loadBalancerSourceRanges"))
            for ip in s.get("externalIPs", []):
                node = ann[ip]
                if kind == "externalip" and ext_client and (not etp_local or local(s, node)):
                    out.append(addressed(kind, ext_client, s, ip, s["port"], node))
            if s.get("nodePort") and etp_local and ext_client:
                for n in nodes:
                    if kind == "nodeport-local" and local(s, n["name"]):
                        out.append(addressed(kind, ext_client, s, n["ip"], s["nodePort"], n["name"]))
                    if kind == "drop-etp-local" and not local(s, n["name"]):
                        out.append(addressed(kind, ext_client, s, n["ip"], s["nodePort"], n["name"], expect="drop",
                                             why=f"externalTrafficPolicy Local, no endpoint on {n['name']}"))
            if kind == "itp-local" and s.get("internalTrafficPolicy") == "Local":
                for c in self.pods + nodes:
                    node = c.get("node") or c["name"]
                    if local(s, node):
                        out.append(self.job(kind, c, s, svc_port=s["port"], cluster_ip=s["clusterIP"]))
            if kind == "affinity" and s.get("sessionAffinity") == "ClientIP":
                for c in self.pods + nodes:
                    out.append(self.job(kind, c, s, svc_port=s["port"], cluster_ip=s["clusterIP"]))
        if kind == "ipv6":
            c6, s6 = kubeproxy.ipv6_view(self.cluster, self.services)
            nodes6 = [n for n in c6["nodes"]]
            pods6 = [p for p in c6["pods"] if not p.get("hostNetwork")]
            for s in s6:
                if s["protocol"] in ("TCP", "UDP") and kubeproxy.endpoints(c6, s):
                    for c in pods6 + nodes6:
                        out.append(self.job(kind, c, s, svc_port=s["port"], cluster_ip=s["clusterIP"]))
            # interleave Service ports so that any --count covers each of them
            out.sort(key=lambda j: (j["client_ns"], j["service_port"]))
            return out
        if kind == "multiport":
            for s in self.services:
                if kubeproxy.cluster_ipv6(s):
                    continue  # dual-stack Services are kind ipv6's
                if s.get("portName") and s["protocol"] in ("TCP", "UDP") and eps(s) and s["type"] == "ClusterIP":
                    for p in self.pods:
                        out.append(self.job(kind, p, s, svc_port=s["port"], cluster_ip=s["clusterIP"]))
        if kind == "multiport":
            # interleave ports so that any --count covers each of them
            out.sort(key=lambda j: (self.pods.index(next(p for p in self.pods if p["netns"] == j["client_ns"])),
                                    j["service_port"]))
        return out

    def burst(self, size):
        tcp_cluster = self._svc(lambda s: kubeproxy.is_plain(s) and s["protocol"] == "TCP"
                                and kubeproxy.endpoints(self.cluster, s)
                                and not any(e["hostNetwork"] for e in kubeproxy.endpoints(self.cluster, s)))
        clients = self.pods + list(self.nodes.values())
        jobs = []
        for i in range(size):
            c = clients[i % len(clients)]
            kind = "pod-clusterip" if c in self.pods else "host-clusterip"
            jobs.append(self.job(kind, c, tcp_cluster[i % len(tcp_cluster)]))
        return jobs


def _entity_for_ns(cluster, netns):
    for n in cluster["nodes"]:
        if n["netns"] == netns:
            return n
    for p in cluster["pods"]:
        if p["netns"] == netns:
            return p
    ext = cluster.get("ext") or {}
    if ext.get("netns") == netns:
        return ext
    return {"netns": netns}


def run_phase(cluster, jobs, args, port_slices, burst=False):
    """Runs jobs grouped by namespace, one worker process per namespace; returns (records, errors)."""
    by_ns = {}
    for j in jobs:
        by_ns.setdefault(j["client_ns"], []).append(j)
    procs = []
    for ns, nsjobs in by_ns.items():
        need = sum(j.get("max_attempts", 1) for j in nsjobs) + 16
        ports = port_slices.take(ns, need)
        spec = {"client_ns": ns, "netns_path": _netns_path(_entity_for_ns(cluster, ns)), "jobs": nsjobs,
                "ports": ports, "timeout": args.timeout, "concurrency": args.concurrency,
                "max_time": args.max_time, "burst": burst}
        p = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--worker"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        p.stdin.write(json.dumps(spec) + "\n")
        p.stdin.flush()
        procs.append((ns, p))
    early = {}
    if burst:
        # wait until every worker has bound all its sockets, then release them together
        for ns, p in procs:
            line = p.stdout.readline()
            if line and '"ready"' not in line:
                early[ns] = line
        for _ns, p in procs:
            try:
                p.stdin.write("go\n")
                p.stdin.flush()
            except OSError:
                pass
    results = {}

    def talk(ns, p):
        try:
            out, err = p.communicate(timeout=args.max_time + 30)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
            err = (err or "") + f"\nworker for {ns} killed after {args.max_time + 30}s"
        results[ns] = (early.get(ns, "") + (out or ""), err, p.returncode)

    threads = [threading.Thread(target=talk, args=t) for t in procs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    records, errors, drops = [], [], []
    for ns, (out, err, rc) in results.items():
        for line in out.splitlines():
            try:
                obj = json.loads(line)
            except ValueError:
                errors.append(f"{ns}: unparsable worker line: {line[:200]}")
                continue
            if "dropped" in obj:
                drops.append(obj["dropped"])
            elif "error" in obj:
                errors.append(obj["error"])
            elif "fatal" in obj:
                errors.append(obj["fatal"])
            else:
                records.append(obj)
        if rc not in (0, None) or (err and err.strip()):
            errors.append(f"{ns}: worker exit {rc}: {err.strip()[-500:]}")
    return records, errors, drops


class PortSlices:
    """Disjoint shuffled client-port slices per namespace, so no client ip:port repeats in a run.

    Each namespace starts at a random point of PORT_LO..PORT_HI (wrapping), so back-to-back runs
    rarely reuse a port whose conntrack entry of the last run is still in TIME_WAIT.
    """

    def __init__(self, rng):
        self.rng = rng
        self.used = {}

    def take(self, ns, n):
        span = PORT_HI - PORT_LO + 1
        start, used = self.used.get(ns, (self.rng.randrange(span), 0))
        if used + n > span:
            sys.exit(f"traffic: too many connections from {ns} for unique client ports ({used + n} > {span})")
        ports = [PORT_LO + (start + used + k) % span for k in range(n)]
        self.used[ns] = (start, used + n)
        self.rng.shuffle(ports)
        return ports


# ---------------------------------------------------------------------------------------------
# Check
# ---------------------------------------------------------------------------------------------

def _gateway(node):
    cidr = node.get("podCIDR")
    if not cidr:
        return None
    net = ipaddress.ip_network(cidr)
    return str(net.network_address + 1)


def check(cluster, services, records, errors):
    """Verifies each ground-truth record; returns (passed, failed, messages). Kind ipv6 is checked
    against the IPv6 view (kubeproxy.ipv6_view): IPv6 endpoints, node and gateway addresses."""
    views = {}
    for fam, (cl, svcs) in ((4, (cluster, services)), (6, kubeproxy.ipv6_view(cluster, services))):
        by = {}
        for s in svcs:
            name = f'{s["namespace"]}/{s["name"]}' + (f':{s["portName"]}' if s.get("portName") else "")
            by.setdefault(name, s)
        views[fam] = (cl, ipaddress.ip_network(cl["clusterCIDR"]), {n["name"]: n for n in cl["nodes"]}, by)
    pods_by_ns = {p["netns"]: p for p in cluster["pods"] if not p.get("hostNetwork")}
    passed, failed, msgs = 0, 0, []
    remapped = 0
    for r in records:
        why = []
        cluster, cidr, nodes, by_svc = views[6 if r["kind"] in IPV6_KINDS else 4]
        svc = by_svc.get(r["service"])
        if svc is None:
            why.append(f"unknown service {r['service']}")
        else:
            eps = {e["pod"]: e for e in kubeproxy.endpoints(cluster, svc)}
            ep = eps.get(r["pod_name"])
            if ep is None:
                why.append(f"pod {r['pod_name']} is not an endpoint of {r['service']}")
            else:
                if r["pod_ip"] != ep["ip"] or r["pod_port"] != ep["port"]:
                    why.append(f"pod answered on {r['pod_ip']}:{r['pod_port']}, endpoint is {ep['ip']}:{ep['port']}")
                dn = nodes.get(r["dnat_node"])
                if dn is None:
                    why.append(f"unknown dnat_node {r['dnat_node']}")
                else:
                    masq = (r["kind"] == "nodeport" or ipaddress.ip_address(r["client_ip"]) not in cidr
                            or r["client_ip"] == ep["ip"])
                    if r["kind"] in SOURCE_KEPT_KINDS:
                        masq = False  # externalTrafficPolicy Local: the client's source is kept
                    if r["kind"] in NODE_LOCAL_KINDS and ep["node"] != dn["name"]:
                        why.append(f"{r['kind']}: landed on {r['pod_name']} of {ep['node']}, not on an endpoint "
                                   f"of {dn['name']} (traffic policy Local)")
                    if not masq:
                        if r["seen_client_ip"] != r["client_ip"]:
                            why.append(f"pod saw {r['seen_client_ip']}:{r['seen_client_port']}, expected the "
                                       f"unmasqueraded {r['client_ip']}:{r['client_port']}")
                        elif r["seen_client_port"] != r["client_port"]:
                            # not masquerade: conntrack's clash resolution remapped the source port at
                            # srcnat because an older entry (TIME_WAIT) had the same reply tuple.
                            remapped += 1
                    else:
                        if ep["hostNetwork"] and ep["node"] == dn["name"]:
                            allowed = {dn["ip"], _gateway(dn)}
                        elif ep["node"] == dn["name"]:
                            allowed = {_gateway(dn)}
                        else:
                            allowed = {dn["ip"]}
                        if r["seen_client_ip"] not in allowed:
                            why.append(f"pod saw {r['seen_client_ip']}, expected masquerade to "
                                       f"{' or '.join(sorted(a for a in allowed if a))} (node {dn['name']})")
            if r["kind"] == "hairpin":
                me = pods_by_ns.get(r["client_ns"])
                if me is None or r["pod_name"] != me["name"]:
                    why.append(f"hairpin landed on {r['pod_name']}, not on the client itself")
            if r["kind"] == "nodeport" and svc.get("nodePort") is None:
                why.append("nodeport record for a service without nodePort")
        if why:
            failed += 1
            msgs.append(f"FAIL {r['kind']} {r['client_ns']} {r['client_ip']}:{r['client_port']} -> "
                        f"{r['service']}: " + "; ".join(why))
        else:
            passed += 1
    # sessionAffinity ClientIP: every connection of one client to one Service lands on one pod.
    sticky = {}
    for r in records:
        if r["kind"] == "affinity":
            sticky.setdefault((r["client_ns"], r["service"]), set()).add(r["pod_name"])
    for (ns, svc), pods in sorted(sticky.items()):
        if len(pods) > 1:
            failed += 1
            msgs.append(f"FAIL affinity {ns} -> {svc}: connections landed on {len(pods)} pods ({', '.join(sorted(pods))})")
    for e in errors:
        failed += 1
        msgs.append("FAIL connection: " + e)
    if remapped:
        msgs.append(f"note: {remapped} unmasqueraded connection(s) reached the pod with the right IP but a "
                    "source port remapped by conntrack (tuple clash with an older connection); not a failure")
    return passed, failed, msgs


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------

def main(argv=None):
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `| head` ends us quietly
    if argv is None:
        argv = sys.argv[1:]
    if argv and argv[0] == "--worker":
        return worker_main()
    ap = argparse.ArgumentParser(description="testbed Service traffic with ground truth (test fixture)")
    ap.add_argument("--cluster", required=True)
    ap.add_argument("--services", default=kubeproxy.DEFAULT_SERVICES)
    ap.add_argument("--count", type=int, default=20, help="connections per kind (default 20)")
    ap.add_argument("--burst", type=int, default=240, help="size of the concurrent burst (>= 200; default 240)")
    ap.add_argument("--concurrency", type=int, default=8, help="parallel connections per namespace (default 8)")
    ap.add_argument("--kinds", default="default",
                    help="comma list of: " + ",".join(ALL_KINDS) + "; or a group: default (the first "
                    "seven), service-kinds (the rest), all")
    ap.add_argument("--out", help="write ground-truth JSON lines here (default stdout)")
    ap.add_argument("--drops-out", help="write the expected drops (connections nothing answered, as "
                    "kube-proxy's rules demand) here as JSON lines")
    ap.add_argument("--timeout", type=float, default=3.0, help="per-connection timeout in seconds (default 3)")
    ap.add_argument("--max-time", type=float, default=300.0, help="hard time limit per phase in seconds (default 300)")
    ap.add_argument("--service", action="append", default=[], metavar="NS/NAME",
                    help="only this Service (repeatable), e.g. one added with `lab service add`: every "
                    "kind then uses it alone")
    ap.add_argument("--check", action="store_true", help="verify the records; exit 1 on any failure")
    ap.add_argument("--seed", type=int, help="random seed for client port order")
    args = ap.parse_args(argv)
    kinds = []
    for k in (k.strip() for k in args.kinds.split(",") if k.strip()):
        for kk in KIND_GROUPS.get(k, [k]):
            if kk not in kinds:
                kinds.append(kk)
    bad = [k for k in kinds if k not in ALL_KINDS]
    if bad:
        ap.error(f"unknown kind(s) {', '.join(bad)}; choose from {', '.join(ALL_KINDS)}")
    if args.count < 0 or args.count > 20000:
        ap.error("--count must be between 0 and 20000")
    if "burst" in kinds and not 1 <= args.burst <= 5000:
        ap.error("--burst must be between 1 and 5000")
    if args.concurrency < 1 or args.concurrency > 256:
        ap.error("--concurrency must be between 1 and 256")
    if os.geteuid() != 0:
        sys.stderr.write("traffic: must run as root (enters network namespaces)\n")
        return 2
    try:
        cluster = kubeproxy.load_cluster(args.cluster)
        services = kubeproxy.load_services(args.services, args.cluster)
    except kubeproxy.ConfigError as e:
        sys.stderr.write(f"traffic: {e}\n")
        return 2
    if args.service:
        wanted = set(args.service)
        services = [s for s in services if f'{s["namespace"]}/{s["name"]}' in wanted]
        found = {f'{s["namespace"]}/{s["name"]}' for s in services}
        if wanted - found:
            sys.stderr.write(f"traffic: no such Service: {', '.join(sorted(wanted - found))}\n")
            return 2
    rng = random.Random(args.seed)
    plan = Plan(cluster, services)
    slices = PortSlices(rng)
    t0 = time.monotonic()
    records, errors, drops = run_phase(cluster, plan.build(kinds, args.count), args, slices)
    if "burst" in kinds:
        r2, e2, _d2 = run_phase(cluster, plan.burst(args.burst), args, slices, burst=True)
        records += r2
        errors += e2
    records.sort(key=lambda r: r["time"])
    drops.sort(key=lambda r: r["time"])
    if args.drops_out:
        with open(args.drops_out, "w", encoding="utf-8") as f:
            for r in drops:
                f.write(json.dumps(r, separators=(",", ":")) + "\n")
    out = open(args.out, "w", encoding="utf-8") if args.out else sys.stdout
    try:
        for r in records:
            out.write(json.dumps(r, separators=(",", ":")) + "\n")
    finally:
        if args.out:
            out.close()
    counts = {}
    for r in records:
        counts[r["kind"]] = counts.get(r["kind"], 0) + 1
    summary = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    dropped = {}
    for r in drops:
        dropped[r["kind"]] = dropped.get(r["kind"], 0) + 1
    if drops:
        summary += "; expected drops: " + ", ".join(f"{k} {v}" for k, v in sorted(dropped.items()))
    sys.stderr.write(f"traffic: {len(records)} connections ({summary}), {len(errors)} failed, "
                     f"{time.monotonic() - t0:.1f}s\n")
    if not args.check:
        for e in errors[:20]:
            sys.stderr.write(f"traffic: {e}\n")
        return 1 if errors else 0
    passed, failed, msgs = check(cluster, services, records, errors)
    for m in msgs[:50]:
        sys.stderr.write(m + "\n")
    if len(msgs) > 50:
        sys.stderr.write(f"... {len(msgs) - 50} more\n")
    print(f"{passed} passed, {failed} failed", file=sys.stderr if not args.out else sys.stdout)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
