# shellcheck shell=bash
# status of testbed/lab (sourced).

# node_status I -> "holder sshd rsyslog relay pods" words: up|down for each.
node_status_fields() {
  local i=$1 d ns="svtlab-node$1" h=down s=down r=down k=down p=0 pods=0 pod
  d=$(node_dir "$i")
  if pidfile_alive "$RUN/holder-node$i.pid" "$ns" >/dev/null; then
    h=up
    pidfile_alive "$d/run/sshd.pid" "$ns" >/dev/null && s=up
    if pidfile_alive "$d/run/rsyslogd.pid" "$ns" >/dev/null; then
      r=up
    elif [[ -e $d/run/svtlab/rsyslog.failed ]]; then
      r=failed
    fi
    pidfile_alive "$d/run/svtlab/kmsg-relay.pid" "$ns" >/dev/null && k=up
  fi
  for pod in "web-$i" "api-$i"; do
    pods=$((pods + 1))
    pidfile_alive "$RUN/pod-$pod.pid" "svtlab-n$i-$pod" >/dev/null && p=$((p + 1))
  done
  if ((i == 1)); then
    pods=$((pods + 1))
    pidfile_alive "$RUN/pod-hostnet-node1.pid" "$ns" >/dev/null && p=$((p + 1))
  fi
  local faults=()
  [[ -d $LAB/hostkeys/node$i/saved ]] && faults+=(hostkey-changed)
  [[ -f $d/sudoers.saved/90-svtlab && ! -f $d/sudoers.d/90-svtlab ]] && faults+=(sudo-removed)
  [[ -e $d/run/svtlab/rsyslog.broken ]] && faults+=(rsyslog-broken)
  [[ -e $d/run/svtlab/clock-skew ]] && faults+=("clock-skew=$(cat "$d/run/svtlab/clock-skew")")
  [[ -e $d/run/svtlab/kmsg-relay.slow ]] && faults+=(kmsg-slow)
  if [[ $h == up ]] && nx "$i" findmnt -n -o OPTIONS /etc/rsyslog.d 2>/dev/null | grep -qE '(^|,)ro(,|$)'; then
    faults+=(rsyslog.d-readonly)
  fi
  local f="${faults[*]}"
  echo "$h $s $r $k $p/$pods ${f// /,}"
}

lab_status() {
  local json=0 n i fields
  [[ ${1:-} == --json ]] && json=1
  n=$(lab_nodes)
  if ((json)); then
    local out="" sep=""
    for ((i = 1; i <= n; i++)); do
      read -r h s r k p f <<<"$(node_status_fields "$i")"
      out+="$sep{\"name\":\"node$i\",\"ip\":\"$(node_ip "$i")\",\"backend\":\"$(backend_of "$i")\","
      out+="\"holder\":\"$h\",\"sshd\":\"$s\",\"rsyslog\":\"$r\",\"relay\":\"$k\",\"pods\":\"$p\",\"faults\":\"${f:-}\"}"
      sep=","
    done
    echo "{\"lab\":\"$LAB\",\"up\":$([[ -f $STATEFILE ]] && echo true || echo false),\"nodes\":[$out]}"
    return 0
  fi
  if [[ ! -f $STATEFILE ]]; then
    echo "lab is down ($LAB)"
    return 3
  fi
  echo "lab $LAB: $n nodes; inventory $LAB/inventory.ini, known_hosts $LAB/known_hosts"
  printf '%-7s %-12s %-9s %-6s %-6s %-8s %-6s %-5s %s\n' NODE IP BACKEND HOLDER SSHD RSYSLOG RELAY PODS FAULTS
  local bad=0
  for ((i = 1; i <= n; i++)); do
    read -r h s r k p f <<<"$(node_status_fields "$i")"
    printf '%-7s %-12s %-9s %-6s %-6s %-8s %-6s %-5s %s\n' "node$i" "$(node_ip "$i")" \
      "$(backend_of "$i")" "$h" "$s" "$r" "$k" "$p" "${f:--}"
    [[ $h == up ]] || bad=1
  done
  return $bad
}
