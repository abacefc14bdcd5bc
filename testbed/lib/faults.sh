# shellcheck shell=bash
# Faults of testbed/lab (sourced): break one node in one way, and undo it.

fault_usage() {
  cat >&2 <<'EOF'
usage: lab fault NODE KIND
  sshd-stop | sshd-start
  hostkey-change | hostkey-restore
  sudo-remove | sudo-restore
  rsyslogd-readonly | rsyslogd-writable
  rsyslog-stop | rsyslog-start
  rsyslog-break | rsyslog-unbreak
  kmsg-slow | kmsg-fast          (the kernel-log relay reads ~1000 records/s: bursts overrun the ring)
  clock-skew SECONDS            (0 removes the skew)
EOF
  exit 2
}

# hup_sshd I -> sshd re-executes itself and re-reads its host keys.
hup_sshd() {
  local pid
  if pid=$(pidfile_alive "$(node_dir "$1")/run/sshd.pid" "svtlab-node$1"); then
    kill -HUP "$pid"
    # sshd re-execs on SIGHUP; wait until it listens again.
    sleep 0.3
    wait_for 5 nx_listening "$1" || warn "node$1: sshd not listening after HUP"
  fi
}

nx_listening() {
  nx "$1" ss -Htln "sport = :22" 2>/dev/null | grep -q .
}

fault() {
  local node=${1:-} kind=${2:-} i d hk t
  [[ -n $node && -n $kind ]] || fault_usage
  i=$(node_index "$node")
  holder_pid "$i" >/dev/null
  d=$(node_dir "$i")
  hk=$LAB/hostkeys/node$i
  case $kind in
    sshd-stop) stop_sshd "$i" ;;
    sshd-start) start_sshd "$i" ;;
    hostkey-change)
      if [[ -d $hk/saved ]]; then
        say "node$i: host key already changed (original kept in $hk/saved)"
      else
        mkdir -p "$hk/saved"
        mv "$hk"/ssh_host_* "$hk/saved/"
      fi
      rm -f "$hk"/ssh_host_*
      for t in ed25519 ecdsa; do
        ssh-keygen -q -t "$t" -N '' -C "root@node$i" -f "$hk/ssh_host_${t}_key"
      done
      cp -p "$hk"/ssh_host_* "$d/etc-ssh/"
      hup_sshd "$i"
      ;;
    hostkey-restore)
      [[ -d $hk/saved ]] || { say "node$i: host key is the original one"; return 0; }
      rm -f "$hk"/ssh_host_*
      mv "$hk"/saved/ssh_host_* "$hk/"
      rmdir "$hk/saved"
      cp -p "$hk"/ssh_host_* "$d/etc-ssh/"
      hup_sshd "$i"
      ;;
    sudo-remove)
      mkdir -p "$d/sudoers.saved"
      [[ -f $d/sudoers.d/90-svtlab ]] && mv "$d/sudoers.d/90-svtlab" "$d/sudoers.saved/"
      ;;
    sudo-restore)
      if [[ -f $d/sudoers.saved/90-svtlab ]]; then
        mv "$d/sudoers.saved/90-svtlab" "$d/sudoers.d/90-svtlab"
      else
        sudoers_rules >"$d/sudoers.d/90-svtlab"
        chmod 440 "$d/sudoers.d/90-svtlab"
      fi
      ;;
    rsyslogd-readonly) nx "$i" mount -o remount,bind,ro /etc/rsyslog.d ;;
    rsyslogd-writable) nx "$i" mount -o remount,bind,rw /etc/rsyslog.d ;;
    rsyslog-stop) nx "$i" systemctl stop rsyslog ;;
    rsyslog-start) nx "$i" systemctl start rsyslog ;;
    rsyslog-break) : >"$d/run/svtlab/rsyslog.broken" ;;
    rsyslog-unbreak) rm -f "$d/run/svtlab/rsyslog.broken" ;;
    kmsg-slow) : >"$d/run/svtlab/kmsg-relay.slow" ;;
    kmsg-fast) rm -f "$d/run/svtlab/kmsg-relay.slow" ;;
    clock-skew)
      local s=${3:-}
      [[ $s =~ ^[+-]?[0-9]+(\.[0-9]+)?$ ]] || die "clock-skew needs SECONDS (e.g. 30, -2.5, 0)"
      s=${s#+}
      if [[ $s =~ ^-?0+(\.0+)?$ ]]; then
        rm -f "$d/run/svtlab/clock-skew"
      else
        echo "$s" >"$d/run/svtlab/clock-skew"
      fi
      ;;
    *) fault_usage ;;
  esac
  say "node$i: $kind${3:+ $3} done"
}
