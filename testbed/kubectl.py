#!/usr/bin/env python3
"""A tiny `kubectl get ... -o json` for the svctrace testbed (a TEST FIXTURE, not kubectl).

    kubectl.py [--cluster FILE] [--services FILE] get services,endpointslices,pods -A -o json
    kubectl.py get servicecidrs -o json

Services: services.json plus the lab's $LAB/services-added.json (`testbed/lab service add`).

Prints a Kubernetes `List` with realistic v1 Service, discovery.k8s.io/v1 EndpointSlice and v1 Pod
objects built from the testbed's cluster.json and services.json, items grouped in the order the
resource types were asked for (like kubectl). Output is deterministic for the same input files
(uids are UUIDv5 of the object's identity; timestamps come from the cluster file's mtime).

Defaults: --cluster $SVCTRACE_LAB_CLUSTER, else $SVCTRACE_LAB/cluster.json, else
/var/lib/svctrace-lab/cluster.json; --services $SVCTRACE_LAB_SERVICES, else services.json next
to this script. Resource names accepted: services|service|svc, endpointslices|endpointslice|
endpointslices.discovery.k8s.io, pods|pod|po, servicecidrs|servicecidr (the cluster-scoped
default ServiceCIDR "kubernetes"; asked alone, printed as a networking.k8s.io/v1 ServiceCIDRList). Flags: -A/--all-namespaces, -n/--namespace NS,
-o/--output json (the only format). Installed as `kubectl` on a control-plane node by `lab`.
"""

import datetime
import hashlib
import os
import signal
import sys
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, HERE)
import kubeproxy  # noqa: E402

import json  # noqa: E402

NS_UUID = uuid.UUID("6f1c1c52-6d0e-4a53-9b3e-5f3c2d1a7e00")
ALIASES = {
    "services": "services", "service": "services", "svc": "services",
    "endpointslices": "endpointslices", "endpointslice": "endpointslices",
    "endpointslices.discovery.k8s.io": "endpointslices",
    "pods": "pods", "pod": "pods", "po": "pods",
    "servicecidrs": "servicecidrs", "servicecidr": "servicecidrs",
    "servicecidrs.networking.k8s.io": "servicecidrs",
}
POD_NAMESPACE = "default"


def _uid(*parts):
    return str(uuid.uuid5(NS_UUID, "/".join(parts)))


def _rv(*parts):
    return str(100000 + int(hashlib.sha256("/".join(parts).encode()).hexdigest()[:6], 16) % 900000)


def _meta(kind, ns, name, created, labels=None, **extra):
    m = {"creationTimestamp": created, "name": name, "namespace": ns,
         "resourceVersion": _rv(kind, ns, name), "uid": _uid(kind, ns, name)}
    if labels:
        m["labels"] = labels
    m.update(extra)
    return m


def service_obj(svc, created):
    """A v1 Service from one services.json object (all its ports)."""
    ports = []
    for p in svc["ports"]:
        port = {"port": p["port"], "protocol": p["protocol"], "targetPort": p["targetPort"]}
        if p.get("name"):
            port["name"] = p["name"]
        if svc["type"] in ("NodePort", "LoadBalancer"):
            port["nodePort"] = p["nodePort"]
        ports.append(port)
    dual = len(svc.get("clusterIPs") or []) > 1
    spec = {"clusterIP": svc["clusterIP"], "clusterIPs": list(svc.get("clusterIPs") or [svc["clusterIP"]]),
            "internalTrafficPolicy": svc.get("internalTrafficPolicy", "Cluster"),
            "ipFamilies": ["IPv4", "IPv6"] if dual else ["IPv4"],
            "ipFamilyPolicy": "PreferDualStack" if dual else "SingleStack", "ports": ports, "sessionAffinity": svc.get("sessionAffinity", "None"),
            "type": svc["type"]}
    if "selector" in svc and "endpointPods" not in svc:
        spec["selector"] = dict(svc["selector"])
    if svc.get("sessionAffinity") == "ClientIP":
        spec["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": svc.get("sessionAffinityTimeout", 10800)}}
    if svc.get("externalIPs"):
        spec["externalIPs"] = list(svc["externalIPs"])
    if svc["type"] in ("NodePort", "LoadBalancer"):
        spec["externalTrafficPolicy"] = svc.get("externalTrafficPolicy", "Cluster")
    if svc["type"] == "LoadBalancer":
        spec["allocateLoadBalancerNodePorts"] = True
        if svc.get("loadBalancerSourceRanges"):
            spec["loadBalancerSourceRanges"] = list(svc["loadBalancerSourceRanges"])
        if svc.get("healthCheckNodePort"):
            spec["healthCheckNodePort"] = svc["healthCheckNodePort"]
    status = {"loadBalancer": {}}
    if svc.get("loadBalancerIPs"):
        status["loadBalancer"]["ingress"] = [{"ip": ip, "ipMode": "VIP"} for ip in svc["loadBalancerIPs"]]
    labels = dict(svc.get("selector") or {"app": svc["name"]})
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": _meta("Service", svc["namespace"], svc["name"], created, labels=labels),
            "spec": spec, "status": status}


def endpointslice_obj(cluster, svc, created, family="IPv4"):
    """The Service's EndpointSlice (endpoint-slice controller's, or a hand-made one for a
    selector-less Service with endpointPods); family "IPv6": a dual-stack Service's second slice
    (pass kubeproxy.ipv6_view's cluster and Service)."""
    ns, name = svc["namespace"], svc["name"]
    suffix = hashlib.sha256(f"{ns}/{name}".encode() + (b"/IPv6" if family == "IPv6" else b"")).hexdigest()[:5]
    slice_name = f"{name}-{suffix}"
    eps, seen, ports = [], set(), []
    for sp in kubeproxy.service_ports([svc]):
        resolved = kubeproxy.endpoints(cluster, sp)
        ports.append({"name": sp.get("portName", ""), "port": resolved[0]["port"] if resolved else sp["targetPort"],
                      "protocol": sp["protocol"]})
        for ep in resolved:
            if ep["pod"] in seen:
                continue
            seen.add(ep["pod"])
            eps.append({"addresses": [ep["ip"]],
                        "conditions": {"ready": True, "serving": True, "terminating": False},
                        "nodeName": ep["node"],
                        "targetRef": {"kind": "Pod", "name": ep["pod"], "namespace": POD_NAMESPACE,
                                      "uid": _uid("Pod", POD_NAMESPACE, ep["pod"])}})
    manual = "endpointPods" in svc
    meta = _meta("EndpointSlice", ns, slice_name, created,
                 labels={"endpointslice.kubernetes.io/managed-by":
                         "svtlab.svctrace.dev/manual" if manual else "endpointslice-controller.k8s.io",
                         "kubernetes.io/service-name": name},
                 generateName=f"{name}-")
    if not manual:
        meta["ownerReferences"] = [{"apiVersion": "v1", "blockOwnerDeletion": True, "controller": True,
                                    "kind": "Service", "name": name, "uid": _uid("Service", ns, name)}]
    return {"addressType": family, "apiVersion": "discovery.k8s.io/v1", "endpoints": eps,
            "kind": "EndpointSlice", "metadata": meta, "ports": ports}


def servicecidr_obj(cluster, created):
    """The cluster's default ServiceCIDR (networking.k8s.io/v1), named "kubernetes" as kube-apiserver makes it."""
    cidrs = [cluster["serviceCIDR"]] + ([cluster["serviceCIDRv6"]] if cluster.get("serviceCIDRv6") else [])
    return {"apiVersion": "networking.k8s.io/v1", "kind": "ServiceCIDR",
            "metadata": {"creationTimestamp": created, "name": "kubernetes",
                         "resourceVersion": _rv("ServiceCIDR", "", "kubernetes"),
                         "uid": _uid("ServiceCIDR", "", "kubernetes")},
            "spec": {"cidrs": cidrs},
            "status": {"conditions": [{"lastTransitionTime": created, "message": "Kubernetes Service CIDR is ready",
                                       "reason": "", "status": "True", "type": "Ready"}]}}


def _container_ports(pod):
    named = pod.get("namedPorts") or {}
    if not named:
        return [{"containerPort": pod["port"], "protocol": "TCP"}, {"containerPort": pod["port"], "protocol": "UDP"}]
    return [{"containerPort": port, "name": n, "protocol": "UDP" if n == "dns" else "TCP"} for n, port in named.items()]


def pod_obj(cluster, pod, created):
    node = kubeproxy.node_by_name(cluster, pod["node"])
    host_net = bool(pod.get("hostNetwork", False))
    spec = {"containers": [{"name": "server", "image": "svctrace-testbed/podserver:local",
                            "ports": _container_ports(pod)}],
            "nodeName": pod["node"]}
    if host_net:
        spec["hostNetwork"] = True
    status = {"hostIP": node["ip"], "hostIPs": [{"ip": node["ip"]}], "phase": "Running",
              "podIP": pod["ip"], "podIPs": [{"ip": pod["ip"]}], "startTime": created,
              "conditions": [{"status": "True", "type": "Ready", "lastTransitionTime": created}]}
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": _meta("Pod", POD_NAMESPACE, pod["name"], created, labels={"app": pod["app"]}),
            "spec": spec, "status": status}


def usage(msg):
    sys.stderr.write(f"error: {msg}\nusage: kubectl.py [--cluster FILE] [--services FILE] get "
                     "services,endpointslices,pods [-A | -n NS] -o json\n")
    return 1


def main(argv=None):
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `| head` ends us quietly
    args = list(sys.argv[1:] if argv is None else argv)
    lab = os.environ.get("SVCTRACE_LAB", "/var/lib/svctrace-lab")
    cluster_path = os.environ.get("SVCTRACE_LAB_CLUSTER") or os.path.join(lab, "cluster.json")
    services_path = os.environ.get("SVCTRACE_LAB_SERVICES") or kubeproxy.DEFAULT_SERVICES
    namespace, all_ns = "default", False
    takes_value = {"--cluster": "cluster", "--services": "services", "-n": "namespace", "--namespace": "namespace",
                   "-o": "output", "--output": "output", "--kubeconfig": None, "--context": None,
                   "--request-timeout": None}
    opts = {}
    positional = []
    i = 0
    while i < len(args):
        a = args[i]
        i += 1
        if a in ("-A", "--all-namespaces", "--all-namespaces=true"):
            all_ns = True
            continue
        if a.startswith("-o") and len(a) > 2 and not a.startswith("--"):
            a, val = "-o", a[2:]
        elif "=" in a and a.startswith("--"):
            a, val = a.split("=", 1)
        elif a in takes_value:
            if i >= len(args):
                return usage(f"flag needs an argument: {a}")
            val = args[i]
            i += 1
        elif a.startswith("-"):
            return usage(f"unknown flag: {a}")
        else:
            positional.append(a)
            continue
        if a not in takes_value:
            return usage(f"unknown flag: {a}")
        if takes_value[a]:
            opts[takes_value[a]] = val
    cluster_path = opts.get("cluster", cluster_path)
    services_path = opts.get("services", services_path)
    namespace = opts.get("namespace", namespace)
    output = opts.get("output")
    if len(positional) > 2:
        return usage(f"unexpected argument: {positional[2]}")
    verb = positional[0] if positional else None
    resources = positional[1] if len(positional) > 1 else None
    if verb != "get":
        return usage(f"only 'get' is supported, got {verb!r}")
    if not resources:
        return usage("you must specify the type of resource to get")
    if output != "json":
        return usage("only -o json is supported by this test fixture")
    kinds = []
    for r in resources.split(","):
        k = ALIASES.get(r.strip())
        if k is None:
            sys.stderr.write(f'error: the server doesn\'t have a resource type "{r.strip()}"\n')
            return 1
        if k not in kinds:
            kinds.append(k)
    try:
        cluster = kubeproxy.load_cluster(cluster_path)
        services = kubeproxy.load_service_objects(services_path, cluster_path)
    except kubeproxy.ConfigError as e:
        sys.stderr.write(f"error: {e}\n")
        return 1
    created = datetime.datetime.fromtimestamp(int(os.stat(cluster_path).st_mtime), datetime.timezone.utc) \
        .strftime("%Y-%m-%dT%H:%M:%SZ")
    items = []
    for k in kinds:
        if k == "services":
            items += [service_obj(s, created) for s in services]
        elif k == "endpointslices":
            items += [endpointslice_obj(cluster, s, created) for s in services]
            c6, _ = kubeproxy.ipv6_view(cluster, [])
            items += [endpointslice_obj(c6, dict(s, clusterIP=s["clusterIPs"][1]), created, "IPv6")
                      for s in services if len(s.get("clusterIPs") or []) > 1]
        elif k == "servicecidrs":
            items.append(servicecidr_obj(cluster, created))
        else:
            items += [pod_obj(cluster, p, created) for p in cluster["pods"]]
    if not all_ns:
        # ServiceCIDRs are cluster-scoped: no namespace, listed whatever -n says.
        items = [o for o in items if o["metadata"].get("namespace", namespace) == namespace]
    doc = {"apiVersion": "v1", "items": items, "kind": "List", "metadata": {"resourceVersion": ""}}
    if kinds == ["servicecidrs"]:
        doc["apiVersion"], doc["kind"] = "networking.k8s.io/v1", "ServiceCIDRList"
    sys.stdout.write(json.dumps(doc, indent=4) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
