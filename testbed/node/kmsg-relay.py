#!/usr/bin/python3
"""Per-node kernel log relay for the svctrace namespace testbed (a TEST FIXTURE).

All network namespaces share one kernel ring buffer. Real nodes read it with
imklog; in the testbed every node runs its own rsyslogd, so each node gets a
relay instead:

* opens /dev/kmsg (every reader sees every record, nothing is consumed) and
  seeks to the END, so only records written after the relay started are seen
  (no replay of old lines when rsyslog or the relay restarts);
* keeps only netfilter packet records that belong to this node: IN= or OUT=
  names an interface with the node's prefix (``n<i>`` followed by a letter,
  so ``n1`` never matches ``n10e0``); for loopback-only lines (IN=lo / OUT=lo)
  the record belongs to the node when SRC or DST is one of the node's own
  addresses;
* forwards each kept record to the node's rsyslogd as ``kern.<level>`` with
  tag ``kernel:`` through the node-private imuxsock socket, so rsyslog stamps
  it on receipt (like imklog on a real node). The text keeps the
  ``[seconds.micro]`` printk timestamp inside the message, as Debian 12's
  imklog (rsyslog 8.2302) does.

While rsyslogd is down (stopped, restarting) records are queued in memory
(bounded) and delivered once its socket answers again, like /proc/kmsg keeps
unread records for imklog.

Fault ``kmsg-slow`` (``lab fault NODE kmsg-slow``, file /run/svtlab/kmsg-relay.slow):
the relay reads at most about 1000 records a second, as a reader on a busy node
does, so that a burst of packet lines reliably overruns the ring buffer
(``kmsg-fast`` removes it). Checked every half second.
"""

import argparse
import collections
import errno
import ipaddress
import os
import re
import select
import socket
import sys
import time

IFACE_RE = re.compile(rb"(?:^| )IN=(\S*) OUT=(\S*)")
SRC_RE = re.compile(rb" SRC=(\S+)")
SLOW_FILE = "/run/svtlab/kmsg-relay.slow"
DST_RE = re.compile(rb" DST=(\S+)")
MONTHS = [b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun",
          b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec"]


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--prefix", required=True,
                   help="interface name prefix of this node, e.g. n1")
    p.add_argument("--addr", action="append", default=[],
                   help="an address of this node (repeatable)")
    p.add_argument("--socket", required=True,
                   help="imuxsock socket path of the node's rsyslogd")
    p.add_argument("--queue", type=int, default=50000,
                   help="max records held while rsyslogd is unreachable")
    p.add_argument("--no-kernel-timestamp", action="store_true",
                   help="do not keep the [sec.usec] printk stamp in the text")
    p.add_argument("--pidfile")
    return p.parse_args()


class Relay:
    """Reads /dev/kmsg from its end and forwards this node's packet lines."""

    def __init__(self, args):
        self.ifre = re.compile(rb"^" + re.escape(args.prefix.encode()) +
                               rb"[a-z]")
        # IPv6 addresses in both spellings: the kernel's LOG prints them unabbreviated (%pI6).
        self.addrs = {a.encode() for a in args.addr}
        self.addrs |= {ipaddress.ip_address(a).exploded.encode() for a in args.addr if ":" in a}
        self.sockpath = args.socket
        self.keep_ts = not args.no_kernel_timestamp
        self.queue = collections.deque(maxlen=args.queue)
        self.dropped = 0
        self.overruns = 0
        self.prefix = args.prefix
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.settimeout(2.0)
        self.slow_checked = 0.0
        self.slow_on = False

    def slow(self):
        """Whether the kmsg-slow fault is set (looked up at most every 0.5 s)."""
        now = time.monotonic()
        if now - self.slow_checked >= 0.5:
            self.slow_checked = now
            self.slow_on = os.path.exists(SLOW_FILE)
        return self.slow_on

    def mine(self, text):
        m = IFACE_RE.search(text)
        if not m:
            return False
        iin, iout = m.group(1), m.group(2)
        if self.ifre.match(iin) or self.ifre.match(iout):
            return True
        if iin in (b"lo", b"") and iout in (b"lo", b"") and (iin or iout):
            s = SRC_RE.search(text)
            d = DST_RE.search(text)
            return bool((s and s.group(1) in self.addrs) or
                        (d and d.group(1) in self.addrs))
        return False

    def format(self, level, ts_usec, text):
        now = time.localtime()
        stamp = b"%s %2d %02d:%02d:%02d" % (MONTHS[now.tm_mon - 1],
                                            now.tm_mday, now.tm_hour,
                                            now.tm_min, now.tm_sec)
        body = text
        if self.keep_ts:
            body = b"[%5d.%06d] " % (ts_usec // 1000000,
                                     ts_usec % 1000000) + text
        # facility kern (0): PRI is the level alone.
        return b"<%d>%s kernel: %s" % (level, stamp, body)

    def flush(self):
        """Sends queued records; returns False when rsyslogd is unreachable."""
        while self.queue:
            msg = self.queue[0]
            try:
                self.sock.sendto(msg, self.sockpath)
            except (FileNotFoundError, ConnectionRefusedError):
                return False
            except socket.timeout:
                return False
            except OSError as e:
                if e.errno in (errno.ENOENT, errno.ECONNREFUSED,
                               errno.EAGAIN, errno.ENOBUFS):
                    return False
                raise
            self.queue.popleft()
        return True

    def run(self):
        fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
        os.lseek(fd, 0, os.SEEK_END)
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        while True:
            timeout = 200 if self.queue else 5000
            poller.poll(timeout)
            while True:
                try:
                    rec = os.read(fd, 8192)
                except BlockingIOError:
                    break
                except BrokenPipeError:
                    # EPIPE: the ring buffer overwrote records we had not read.
                    self.overruns += 1
                    if self.overruns == 1 or self.overruns % 100 == 0:
                        sys.stderr.write("kmsg-relay %s: kernel ring buffer overrun, records "
                                         "lost (%d times)\n" % (self.prefix, self.overruns))
                        sys.stderr.flush()
                    continue
                if not rec:
                    break
                self.handle(rec)
                if self.slow():
                    time.sleep(0.001)
            self.flush()

    def handle(self, rec):
        head, sep, rest = rec.partition(b";")
        if not sep:
            return
        fields = head.split(b",")
        if len(fields) < 3:
            return
        try:
            prival = int(fields[0])
            ts_usec = int(fields[2])
        except ValueError:
            return
        if prival >> 3 != 0:  # only kernel-facility records
            return
        text = rest.split(b"\n", 1)[0]
        if not self.mine(text):
            return
        if len(self.queue) == self.queue.maxlen:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                sys.stderr.write("kmsg-relay %s: rsyslogd unreachable, queue full, %d records "
                                 "dropped\n" % (self.prefix, self.dropped))
                sys.stderr.flush()
        self.queue.append(self.format(prival & 7, ts_usec, text))


def main():
    args = parse_args()
    if args.pidfile:
        with open(args.pidfile, "w") as f:
            f.write("%d\n" % os.getpid())
    try:
        Relay(args).run()
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
