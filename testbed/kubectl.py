#!/usr/bin/env python3
"""A tiny `kubectl get ... -o json` for the svctrace testbed (a TEST FIXTURE, not kubectl).

    kubectl.py [--cluster FILE] [--services FILE] get services,endpointslices,pods -A -o json

Prints a Kubernetes `List` with realistic v1 Service, discovery.k8s.io/v1 EndpointSlice and v1 Pod
objects built from the testbed's cluster.json and services.json, items grouped in the order the
resource types were asked for (like kubectl). Output is deterministic for the same input files
(uids are UUIDv5 of the object's identity; timestamps come from the cluster file's mtime).

Defaults: --cluster $SVCTRACE_LAB_CLUSTER, else $SVCTRACE_LAB/cluster.json, else
/var/lib/svctrace-lab/cluster.json; --services $SVCTRACE_LAB_SERVICES, else services.json next
to this script. Resource names accepted: services|service|svc, endpointslices|endpointslice|
endpointslices.discovery.k8s.io, pods|pod|po. Flags: -A/--all-namespaces, -n/--namespace NS,
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
    port = {"port": svc["port"], "protocol": svc["protocol"], "targetPort": svc["targetPort"]}
    if svc.get("portName"):
        port["name"] = svc["portName"]
    spec = {"clusterIP": svc["clusterIP"], "clusterIPs": [svc["clusterIP"]],
            "internalTrafficPolicy": "Cluster", "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
            "ports": [port], "selector": dict(svc["selector"]), "sessionAffinity": "None", "type": svc["type"]}
    if svc["type"] == "NodePort":
        port["nodePort"] = svc["nodePort"]
        spec["externalTrafficPolicy"] = "Cluster"
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": _meta("Service", svc["namespace"], svc["name"], created, labels=dict(svc["selector"])),
            "spec": spec, "status": {"loadBalancer": {}}}


def endpointslice_obj(cluster, svc, created):
    ns, name = svc["namespace"], svc["name"]
    suffix = hashlib.sha256(f"{ns}/{name}".encode()).hexdigest()[:5]
    slice_name = f"{name}-{suffix}"
    eps = []
    for ep in kubeproxy.endpoints(cluster, svc):
        eps.append({"addresses": [ep["ip"]],
                    "conditions": {"ready": True, "serving": True, "terminating": False},
                    "nodeName": ep["node"],
                    "targetRef": {"kind": "Pod", "name": ep["pod"], "namespace": POD_NAMESPACE,
                                  "uid": _uid("Pod", POD_NAMESPACE, ep["pod"])}})
    port = {"name": svc.get("portName", ""), "port": svc["targetPort"], "protocol": svc["protocol"]}
    meta = _meta("EndpointSlice", ns, slice_name, created,
                 labels={"endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
                         "kubernetes.io/service-name": name},
                 generateName=f"{name}-",
                 ownerReferences=[{"apiVersion": "v1", "blockOwnerDeletion": True, "controller": True,
                                   "kind": "Service", "name": name, "uid": _uid("Service", ns, name)}])
    return {"addressType": "IPv4", "apiVersion": "discovery.k8s.io/v1", "endpoints": eps,
            "kind": "EndpointSlice", "metadata": meta, "ports": [port]}


def pod_obj(cluster, pod, created):
    node = kubeproxy.node_by_name(cluster, pod["node"])
    host_net = bool(pod.get("hostNetwork", False))
    spec = {"containers": [{"name": "server", "image": "svctrace-testbed/podserver:local",
                            "ports": [{"containerPort": pod["port"], "protocol": "TCP"},
                                      {"containerPort": pod["port"], "protocol": "UDP"}]}],
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
        services = kubeproxy.load_services(services_path)
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
        else:
            items += [pod_obj(cluster, p, created) for p in cluster["pods"]]
    if not all_ns:
        items = [o for o in items if o["metadata"]["namespace"] == namespace]
    doc = {"apiVersion": "v1", "items": items, "kind": "List", "metadata": {"resourceVersion": ""}}
    sys.stdout.write(json.dumps(doc, indent=4) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
