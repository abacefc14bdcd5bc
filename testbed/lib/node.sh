# shellcheck shell=bash
# Node construction of testbed/lab (sourced): keys, users, node-private files,
# holder process with private mount + uts namespaces, relay, rsyslogd, sshd.

# Paths inside a node and the node-private copy ($LAB/nodes/<node>/<dir>) mounted over each.
NODE_MOUNTS=(
  "etc-ssh:/etc/ssh"
  "rsyslog.conf:/etc/rsyslog.conf"
  "rsyslog.d:/etc/rsyslog.d"
  "logrotate.d:/etc/logrotate.d"
  "log:/var/log"
  "lib-logrotate:/var/lib/logrotate"
  "lib-svctrace:/var/lib/svctrace"
  "spool-rsyslog:/var/spool/rsyslog"
  "run:/run"
  "sudoers.d:/etc/sudoers.d"
  "hostname:/etc/hostname"
  "hosts:/etc/hosts"
  "sbin:/usr/local/sbin"
  "alternatives:/etc/alternatives"
  "kubernetes:/etc/kubernetes"
)

# ensure_client_keys -> $LAB/keys/{id_ed25519,id_ed25519_pass,id_ecdsa,id_rsa} (kept across down/up).
ensure_client_keys() {
  local k=$LAB/keys
  mkdir -p "$k"
  chmod 700 "$k"
  [[ -f $k/id_ed25519 ]] || ssh-keygen -q -t ed25519 -N '' -C svtlab-client -f "$k/id_ed25519"
  [[ -f $k/id_ed25519_pass ]] ||
    ssh-keygen -q -t ed25519 -N "$KEY_PASSPHRASE" -C svtlab-client-pass -f "$k/id_ed25519_pass"
  [[ -f $k/id_ecdsa ]] || ssh-keygen -q -t ecdsa -b 256 -N '' -C svtlab-client-ecdsa -f "$k/id_ecdsa"
  [[ -f $k/id_rsa ]] || ssh-keygen -q -t rsa -b 3072 -N '' -C svtlab-client-rsa -f "$k/id_rsa"
}

# ensure_host_keys I -> $LAB/hostkeys/nodeI/ssh_host_{ed25519,ecdsa}_key (kept across down/up).
ensure_host_keys() {
  local d=$LAB/hostkeys/node$1 t
  mkdir -p "$d"
  chmod 700 "$d"
  for t in ed25519 ecdsa; do
    [[ -f $d/ssh_host_${t}_key ]] ||
      ssh-keygen -q -t "$t" -N '' -C "root@node$1" -f "$d/ssh_host_${t}_key"
  done
}

# ensure_users -> svtlab-sudo and svtlab-pw in the shared /etc/passwd (idempotent).
ensure_users() {
  local u
  for u in "${USERS[@]}"; do
    if ! id "$u" >/dev/null 2>&1; then
      useradd -m -s /bin/bash -c "svctrace testbed user" "$u"
    fi
  done
  # Same password for both (used for password login, and by svtlab-pw for sudo).
  printf '%s:%s\n' svtlab-sudo "$SUDO_PASSWORD" svtlab-pw "$SUDO_PASSWORD" | chpasswd
}

sudoers_rules() {
  cat <<'EOF'
# svctrace testbed node-private sudo rules (fault sudo-remove moves this file aside).
svtlab-sudo ALL=(ALL:ALL) NOPASSWD: ALL
svtlab-pw ALL=(ALL:ALL) ALL
# Ask the password every time and never lecture: tests stay deterministic.
Defaults:svtlab-pw timestamp_timeout=0, lecture=never
EOF
}

# prepare_node_dir I BACKEND N -> fill $LAB/nodes/nodeI with the node-private files.
prepare_node_dir() {
  local i=$1 backend=$2 n=$3 d ip t v j
  d=$(node_dir "$i")
  ip=$(node_ip "$i")
  rm -rf "$d"
  mkdir -p "$d"/{etc-ssh,rsyslog.d,logrotate.d,log,lib-logrotate,lib-svctrace,spool-rsyslog,run,sudoers.d,sbin,alternatives,kubernetes/manifests}
  # /etc/ssh: the host's client files, this node's host keys, sshd_config, authorized keys.
  cp -a /etc/ssh/. "$d/etc-ssh/"
  rm -f "$d"/etc-ssh/ssh_host_*
  cp -p "$LAB/hostkeys/node$i"/ssh_host_* "$d/etc-ssh/"
  sed -e "s|@NODE@|node$i|g" -e "s|@IP@|$ip|g" "$TB/node/sshd_config.in" >"$d/etc-ssh/sshd_config"
  mkdir -p "$d/etc-ssh/authorized_keys"
  for u in root "${USERS[@]}"; do
    cat "$LAB"/keys/*.pub >"$d/etc-ssh/authorized_keys/$u"
    chmod 644 "$d/etc-ssh/authorized_keys/$u"
  done
  # rsyslog
  sed -e "s|@NODE@|node$i|g" -e "s|@KMSG_SOCKET@|$KMSG_SOCKET|g" "$TB/node/rsyslog.conf.in" >"$d/rsyslog.conf"
  cp -a /etc/rsyslog.d/. "$d/rsyslog.d/" 2>/dev/null || true
  # logrotate: Debian's own entries (rsyslog's included); empty state.
  cp -a /etc/logrotate.d/. "$d/logrotate.d/"
  chmod 755 "$d/lib-logrotate"
  # /var/log
  chmod 755 "$d/log"
  touch "$d/log/wtmp" "$d/log/btmp" "$d/log/lastlog"
  chmod 664 "$d/log/wtmp" "$d/log/lastlog"
  chmod 660 "$d/log/btmp"
  chown root:utmp "$d/log/wtmp" "$d/log/btmp" "$d/log/lastlog" 2>/dev/null || true
  chmod 700 "$d/spool-rsyslog"
  # /run: sshd privsep dir, systemd marker (rsyslog-rotate takes the systemctl path), lab state.
  chmod 755 "$d/run"
  mkdir -p "$d/run/sshd" "$d/run/systemd/system" "$d/run/svtlab" "$d/run/lock"
  chmod 755 "$d/run/sshd"
  chmod 1777 "$d/run/lock"
  : >"$d/run/utmp"
  chown root:utmp "$d/run/utmp" 2>/dev/null || true
  chmod 664 "$d/run/utmp"
  # sudo
  cp -a /etc/sudoers.d/. "$d/sudoers.d/" 2>/dev/null || true
  sudoers_rules >"$d/sudoers.d/90-svtlab"
  chmod 440 "$d/sudoers.d/90-svtlab"
  chmod 755 "$d/sudoers.d"
  echo "node$i" >"$d/hostname"
  # root's ~/.bashrc: a stock node's, not this workstation's (bash reads it for every command sshd
  # runs; a developer's pyenv/cargo set-up there costs ~0.3 s per remote command and would make the
  # lab measure the workstation's dotfiles instead of svctrace and OpenSSH).
  echo '# ~/.bashrc of a testbed node: empty, like a stock server image' >"$d/root-bashrc"
  # /etc/hosts: the host's, plus the node's own name (sudo resolves it) and every node.
  {
    cat /etc/hosts
    echo "# svctrace testbed nodes"
    echo "127.0.1.1 node$i"
    for ((j = 1; j <= n; j++)); do echo "$(node_ip "$j") node$j"; done
  } >"$d/hosts"
  # node-private /usr/local/sbin: test fixtures.
  install -m 755 "$TB/node/systemctl" "$d/sbin/systemctl"
  install -m 755 "$TB/node/date" "$d/sbin/date"
  if ((i == 1)); then
    cat >"$d/sbin/kubectl" <<EOF
#!/bin/sh
# kubectl — TEST FIXTURE of the svctrace testbed (node1 only): prints the
# cluster's objects as kubectl JSON, generated by testbed/kubectl.py.
exec /usr/bin/python3 $TB/kubectl.py --cluster $LAB/cluster.json "\$@"
EOF
    chmod 755 "$d/sbin/kubectl"
    kube_apiserver_manifest "$i" >"$d/kubernetes/manifests/kube-apiserver.yaml"
    chmod 600 "$d/kubernetes/manifests/kube-apiserver.yaml"
  fi
  # /etc/alternatives: iptables flavour of this node.
  cp -a /etc/alternatives/. "$d/alternatives/"
  case $backend in
    legacy) v=legacy ;;
    *) v=nft ;;
  esac
  for t in iptables ip6tables; do
    ln -sfn "/usr/sbin/$t-$v" "$d/alternatives/$t"
    ln -sfn "/usr/sbin/$t-$v-restore" "$d/alternatives/$t-restore"
    ln -sfn "/usr/sbin/$t-$v-save" "$d/alternatives/$t-save"
  done
}

# kube_apiserver_manifest I -> the control-plane node's static-pod manifest as kubeadm writes it
# (the flags svctrace may read: --service-cluster-ip-range, --service-node-port-range).
kube_apiserver_manifest() {
  local ip
  ip=$(node_ip "$1")
  cat <<EOF
apiVersion: v1
kind: Pod
metadata:
  annotations:
    kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint: $ip:6443
  creationTimestamp: null
  labels:
    component: kube-apiserver
    tier: control-plane
  name: kube-apiserver
  namespace: kube-system
spec:
  containers:
  - command:
    - kube-apiserver
    - --advertise-address=$ip
    - --allow-privileged=true
    - --authorization-mode=Node,RBAC
    - --client-ca-file=/etc/kubernetes/pki/ca.crt
    - --enable-admission-plugins=NodeRestriction
    - --enable-bootstrap-token-auth=true
    - --etcd-servers=https://127.0.0.1:2379
    - --kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname
    - --secure-port=6443
    - --service-account-issuer=https://kubernetes.default.svc.cluster.local
    - --service-cluster-ip-range=$SERVICE_CIDR,$SVC_CIDR6
    - --service-node-port-range=30000-32767
    - --tls-cert-file=/etc/kubernetes/pki/apiserver.crt
    - --tls-private-key-file=/etc/kubernetes/pki/apiserver.key
    image: registry.k8s.io/kube-apiserver:v1.31.4
    imagePullPolicy: IfNotPresent
    name: kube-apiserver
    resources:
      requests:
        cpu: 250m
  hostNetwork: true
  priority: 2000001000
  priorityClassName: system-node-critical
status: {}
EOF
}

# start_holder I -> holder process owning node I's private mount + uts namespaces.
start_holder() {
  local i=$1 pid
  setsid ip netns exec "svtlab-node$i" unshare --mount --uts --propagation private \
    /bin/sleep infinity </dev/null >/dev/null 2>&1 &
  pid=$!
  # unshare execs sleep in the same process once the namespaces exist.
  wait_for 5 holder_ready "$pid" || die "node$i: holder did not start"
  echo "$pid" >"$RUN/holder-node$i.pid"
}

holder_ready() {
  [[ $(readlink "/proc/$1/exe" 2>/dev/null) == */sleep ]] &&
    [[ $(readlink "/proc/$1/ns/mnt") != "$(readlink /proc/self/ns/mnt)" ]]
}

# mount_node I -> bind-mount node I's private files, set its hostname.
mount_node() {
  local i=$1 d pid m script
  d=$(node_dir "$i")
  pid=$(holder_pid "$i")
  # /var/lib/svctrace is svctrace's node-side state; its mount point must exist in the shared root
  # (as must /etc/kubernetes, node-private: node1's static-pod manifests).
  mkdir -p /var/lib/svctrace /etc/kubernetes
  script="set -e; hostname node$i; "
  for m in "${NODE_MOUNTS[@]}"; do
    script+="mount --bind '$d/${m%%:*}' '${m#*:}'; "
  done
  [[ -f /root/.bashrc ]] && script+="mount --bind '$d/root-bashrc' /root/.bashrc; "
  nsenter -t "$pid" -m -u -n -- /bin/sh -c "$script" || die "node$i: mounts failed"
}

# nxd I CMD... -> run CMD inside node I in its own session, with a clean environment.
nxd() {
  (nxd_exec "$@")
}

# nxd_exec I CMD... -> like nxd but replaces the calling (sub)shell: `nxd_exec ... &` makes $!
# the daemon's pid.
nxd_exec() {
  local i=$1 pid
  shift
  pid=$(holder_pid "$i")
  cd /
  exec nsenter -t "$pid" -n -m -u -- /usr/bin/env -i PATH="$NODE_PATH" HOME=/root \
    LANG=C.UTF-8 setsid "$@"
}

start_relay() {
  local i=$1 d
  d=$(node_dir "$i")
  # The kernel ring buffer (128 KiB, shared by every namespace) overwrites records a reader has
  # not taken yet: on a loaded machine a relay at normal priority falls behind a burst and lines
  # are lost. The relay blocks on /dev/kmsg, so a real-time priority costs nothing when idle.
  local rt=()
  command -v chrt >/dev/null 2>&1 && chrt -f 10 true 2>/dev/null && rt=(chrt -f 10)
  nxd_exec "$i" "${rt[@]}" "$PY" "$TB/node/kmsg-relay.py" --prefix "n$i" --addr "$(node_ip "$i")" \
    --addr "10.244.$i.1" --addr "$(node_ip6 "$i")" --addr "fd00:244:$i::1" --socket "$KMSG_SOCKET" --pidfile /run/svtlab/kmsg-relay.pid \
    </dev/null >>"$d/run/svtlab/kmsg-relay.log" 2>&1 &
  wait_for 5 pidfile_alive "$d/run/svtlab/kmsg-relay.pid" "svtlab-node$i" >/dev/null ||
    die "node$i: kmsg relay did not start (see $d/run/svtlab/kmsg-relay.log)"
}

start_rsyslog() {
  nxd "$1" /usr/local/sbin/systemctl start rsyslog </dev/null || die "node$1: rsyslog did not start"
}

start_sshd() {
  local i=$1 d
  d=$(node_dir "$i")
  if pidfile_alive "$d/run/sshd.pid" "svtlab-node$i" >/dev/null; then
    return 0
  fi
  nxd "$i" /usr/sbin/sshd -f /etc/ssh/sshd_config -E /var/log/sshd.log </dev/null ||
    die "node$i: sshd failed to start (see $d/log/sshd.log)"
  wait_for 5 pidfile_alive "$d/run/sshd.pid" "svtlab-node$i" >/dev/null ||
    die "node$i: sshd did not write its pid file"
}

stop_sshd() {
  kill_pidfile "$(node_dir "$1")/run/sshd.pid" "svtlab-node$1"
}

# create_node I N BACKEND -> the whole node (without pods' servers and kube-proxy rules).
create_node() {
  local i=$1 n=$2 backend=$3
  ensure_host_keys "$i"
  prepare_node_dir "$i" "$backend" "$n"
  node_net_up "$i" "$n"
  start_holder "$i"
  mount_node "$i"
  start_relay "$i"
  start_rsyslog "$i"
  start_sshd "$i"
  pod_net_up "$i" 0 "web-$i" "10.244.$i.10" "fd00:244:$i::10"
  pod_net_up "$i" 1 "api-$i" "10.244.$i.11" "fd00:244:$i::11"
}

# start_pods I -> pod servers of node I (and the hostNetwork server on node1).
start_pods() {
  local i=$1 pod
  if [[ ! -f $TB/podserver.py ]]; then
    warn "testbed/podserver.py missing: pods of node$i have no server"
    return 0
  fi
  for pod in "web-$i" "api-$i"; do
    (cd / && exec setsid ip netns exec "svtlab-n$i-$pod" "$PY" "$TB/podserver.py" --name "$pod" \
      --port 8080 --extra-port 8081) </dev/null >>"$RUN/pod-$pod.log" 2>&1 &
    echo $! >"$RUN/pod-$pod.pid"
  done
  if ((i == 1)); then
    nxd_exec 1 "$PY" "$TB/podserver.py" --name hostnet-node1 --port 9090 \
      </dev/null >>"$RUN/pod-hostnet-node1.log" 2>&1 &
    echo $! >"$RUN/pod-hostnet-node1.pid"
  fi
}

# apply_kubeproxy I -> kube-proxy's full sync inside node I (B's kubeproxy.py apply: ensure the
# built-in chain jumps + iptables-restore --noflush, or nft -f for nftables mode).
apply_kubeproxy() {
  local i=$1
  if [[ ! -f $TB/kubeproxy.py ]]; then
    warn "testbed/kubeproxy.py missing: no kube-proxy rules on node$i"
    return 0
  fi
  nx "$i" "$PY" "$TB/kubeproxy.py" apply --cluster "$LAB/cluster.json" --node "node$i" ||
    die "node$i: kubeproxy.py apply failed"
}

# flush_netfilter I -> drop every table of both iptables backends and nft, and conntrack.
flush_netfilter() {
  nx "$1" /bin/sh -c '
    for fam in iptables ip6tables; do
      for t in $($fam-legacy-save 2>/dev/null | sed -n "s/^\*//p"); do
        $fam-legacy -t "$t" -F; $fam-legacy -t "$t" -X; $fam-legacy -t "$t" -Z
        for c in $($fam-legacy-save -t "$t" | sed -n "s/^:\([A-Z]*\) [A-Z]*.*/\1/p"); do
          $fam-legacy -t "$t" -P "$c" ACCEPT 2>/dev/null
        done
      done
    done
    nft flush ruleset
    conntrack -F >/dev/null 2>&1 || true
  '
}
