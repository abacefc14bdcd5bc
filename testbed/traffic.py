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

ALL_KINDS = ["host-clusterip", "pod-clusterip", "nodeport", "udp", "hairpin", "hostnetwork", "burst"]
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


def _bind(sock, pool):
    for _ in range(50):
        port = pool.take()
        if port is None:
            raise OSError("client port pool exhausted")
        try:
            sock.bind(("0.0.0.0", port))
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
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
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
        return rec, None
    except (OSError, ValueError, KeyError, TypeError) as e:
        sync(0, barrier)
        sync(1, barrier2)
        return None, f"{job['kind']} {job['client_ns']} -> {job['dst_ip']}:{job['dst_port']}/{proto}: {e}"
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
        j = {"kind": kind, "client_ns": client["netns"], "proto": svc["protocol"].lower(),
             "service": f'{svc["namespace"]}/{svc["name"]}', "service_ip": svc["clusterIP"],
             "service_port": svc["port"], "dst_ip": dst_ip or svc["clusterIP"],
             "dst_port": dst_port or svc["port"],
             "dnat_node": dnat_node or client.get("node") or client["name"]}
        j.update(extra)
        return j

    def build(self, kinds, count):
        jobs = []
        tcp_cluster = self._svc(lambda s: s["protocol"] == "TCP" and kubeproxy.endpoints(self.cluster, s)
                                and not any(e["hostNetwork"] for e in kubeproxy.endpoints(self.cluster, s)))
        udp = self._svc(lambda s: s["protocol"] == "UDP" and kubeproxy.endpoints(self.cluster, s))
        hostnet = self._svc(lambda s: any(e["hostNetwork"] for e in kubeproxy.endpoints(self.cluster, s)))
        nodeports = self._svc(lambda s: s["type"] == "NodePort" and kubeproxy.endpoints(self.cluster, s))
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
        return jobs

    def burst(self, size):
        tcp_cluster = self._svc(lambda s: s["protocol"] == "TCP" and kubeproxy.endpoints(self.cluster, s)
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
    records, errors = [], []
    for ns, (out, err, rc) in results.items():
        for line in out.splitlines():
            try:
                obj = json.loads(line)
            except ValueError:
                errors.append(f"{ns}: unparsable worker line: {line[:200]}")
                continue
            if "error" in obj:
                errors.append(obj["error"])
            elif "fatal" in obj:
                errors.append(obj["fatal"])
            else:
                records.append(obj)
        if rc not in (0, None) or (err and err.strip()):
            errors.append(f"{ns}: worker exit {rc}: {err.strip()[-500:]}")
    return records, errors


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
    return str(next(ipaddress.IPv4Network(cidr).hosts()))


def check(cluster, services, records, errors):
    """Verifies each ground-truth record; returns (passed, failed, messages)."""
    cidr = ipaddress.IPv4Network(cluster["clusterCIDR"])
    nodes = {n["name"]: n for n in cluster["nodes"]}
    by_svc = {f'{s["namespace"]}/{s["name"]}': s for s in services}
    pods_by_ns = {p["netns"]: p for p in cluster["pods"] if not p.get("hostNetwork")}
    passed, failed, msgs = 0, 0, []
    remapped = 0
    for r in records:
        why = []
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
                    masq = (r["kind"] == "nodeport" or ipaddress.IPv4Address(r["client_ip"]) not in cidr
                            or r["client_ip"] == ep["ip"])
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
    ap.add_argument("--kinds", default=",".join(ALL_KINDS), help="comma list of: " + ",".join(ALL_KINDS))
    ap.add_argument("--out", help="write ground-truth JSON lines here (default stdout)")
    ap.add_argument("--timeout", type=float, default=3.0, help="per-connection timeout in seconds (default 3)")
    ap.add_argument("--max-time", type=float, default=300.0, help="hard time limit per phase in seconds (default 300)")
    ap.add_argument("--check", action="store_true", help="verify the records; exit 1 on any failure")
    ap.add_argument("--seed", type=int, help="random seed for client port order")
    args = ap.parse_args(argv)
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
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
        services = kubeproxy.load_services(args.services)
    except kubeproxy.ConfigError as e:
        sys.stderr.write(f"traffic: {e}\n")
        return 2
    rng = random.Random(args.seed)
    plan = Plan(cluster, services)
    slices = PortSlices(rng)
    t0 = time.monotonic()
    records, errors = run_phase(cluster, plan.build(kinds, args.count), args, slices)
    if "burst" in kinds:
        r2, e2 = run_phase(cluster, plan.burst(args.burst), args, slices, burst=True)
        records += r2
        errors += e2
    records.sort(key=lambda r: r["time"])
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
