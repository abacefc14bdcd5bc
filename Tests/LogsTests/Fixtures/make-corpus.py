# Writes Tests/LogsTests/Fixtures/corpus.log and corpus-expectations.json.
# Lines are hand-written after the kernel's nf_log_syslog.c format; the expected values are written
# by hand too, only the timestamps are converted to µs here with Python's datetime (independent
# of the Swift parser's integer calendar code).
import json, datetime as dt

def t3339(s):
    return int(dt.datetime.fromisoformat(s.replace('Z', '+00:00')).timestamp() * 1_000_000 + 0.5) if False else \
        (lambda d: (int(d.timestamp()) * 1_000_000 + d.microsecond))(dt.datetime.fromisoformat(s.replace('Z', '+00:00')))

def trad(year, month, day, h, m, s, offset=0):
    d = dt.datetime(year, month, day, h, m, s, tzinfo=dt.timezone(dt.timedelta(seconds=offset)))
    return int(d.timestamp()) * 1_000_000

MAC1 = "ee:ee:ee:ee:ee:ee:6a:1f:3c:9d:42:e7:08:00"
MAC2 = "52:54:00:8a:11:3e:52:54:00:c4:7d:02:08:00"
MAC3 = "fa:16:3e:5b:0c:91:fa:16:3e:27:a4:d8:86:dd"
entries = []
def add(line, exp, note):
    entries.append((line, exp, note))

def P(time, stage, src, dst, proto, spt=0, dpt=0, **kw):
    d = dict(time=time, stage=stage, origin=kw.pop('origin', 'svctrace'), src=src, dst=dst, proto=proto,
             spt=spt, dpt=dpt, inIf=kw.pop('inIf', ''), outIf=kw.pop('outIf', ''), id=kw.pop('id', None),
             len=kw.pop('len', 0), mark=kw.pop('mark', 0), flags=kw.pop('flags', 0), kernel=kw.pop('kernel', None))
    assert not kw, kw
    return d

ts = "2026-05-16T21:31:48.123456+08:00"
add(f"{ts} node1 kernel: SVCT:PRE IN=cali3f2a9b1c0d4 OUT= MAC={MAC1} SRC=10.244.1.23 DST=10.96.0.10 LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=48213 DF PROTO=TCP SPT=43122 DPT=80 WINDOW=64860 RES=0x00 SYN URGP=0 ",
    P(t3339(ts), "pre", "10.244.1.23", "10.96.0.10", 6, 43122, 80, inIf="cali3f2a9b1c0d4", id=48213, len=60, flags=0x02),
    "pod->ClusterIP PRE, RFC 3339 +08:00, MAC")
ts = "2026-05-16T21:31:48.123471+08:00"
add(f"{ts} node1 kernel: SVCT:POST IN= OUT=cali7c1e0a9f3b2 SRC=10.244.1.23 DST=10.244.2.15 LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=48213 DF PROTO=TCP SPT=43122 DPT=8080 WINDOW=64860 RES=0x00 SYN URGP=0 MARK=0x4000 ",
    P(t3339(ts), "post", "10.244.1.23", "10.244.2.15", 6, 43122, 8080, outIf="cali7c1e0a9f3b2", id=48213, len=60, mark=0x4000, flags=0x02),
    "matching POST with MARK")
ts = "2026-05-16T13:31:49Z"
add(f"{ts} node2 kernel: SVCT:PRE IN= OUT=eth0 SRC=192.168.50.12 DST=10.96.0.1 LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=22107 DF PROTO=TCP SPT=51724 DPT=443 WINDOW=64240 RES=0x00 SYN URGP=0 UID=0 GID=0 ",
    P(t3339(ts), "pre", "192.168.50.12", "10.96.0.1", 6, 51724, 443, outIf="eth0", id=22107, len=60, flags=0x02),
    "host->ClusterIP PRE in OUTPUT, Z without fraction, UID/GID")
ts = "2026-05-16T13:31:49.000001+00:00"
add(f"{ts} node2 kernel: [183422.917345] SVCT:POST IN= OUT=vxlan.calico SRC=192.168.50.12 DST=10.244.3.7 LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=22107 DF PROTO=TCP SPT=51724 DPT=6443 WINDOW=64240 RES=0x00 SYN URGP=0 UID=0 GID=0 MARK=0x4000 ",
    P(t3339(ts), "post", "192.168.50.12", "10.244.3.7", 6, 51724, 6443, outIf="vxlan.calico", id=22107, len=60, mark=0x4000, flags=0x02, kernel=183422917345),
    "kernel timestamp after kernel:")
add(f"May 16 21:31:48 node1 kernel: SVCT:PRE IN=eth0 OUT= MAC={MAC2} SRC=192.168.100.7 DST=192.168.50.11 LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=9123 DF PROTO=TCP SPT=60112 DPT=30080 WINDOW=64240 RES=0x00 SYN URGP=0 ",
    P(trad(2026, 5, 16, 21, 31, 48), "pre", "192.168.100.7", "192.168.50.11", 6, 60112, 30080, inIf="eth0", id=9123, len=60, flags=0x02),
    "traditional timestamp, NodePort PRE")
add(f"May  6 09:02:03 node1 kernel: [ 1234.567890] SVCT:POST IN= OUT=cali0b9d8e7f6a5 SRC=192.168.100.7 DST=10.244.1.40 LEN=60 TOS=0x00 PREC=0x00 TTL=62 ID=9123 DF PROTO=TCP SPT=60112 DPT=8443 WINDOW=64240 RES=0x00 SYN URGP=0 MARK=0x4000 ",
    P(trad(2026, 5, 6, 9, 2, 3), "post", "192.168.100.7", "10.244.1.40", 6, 60112, 8443, outIf="cali0b9d8e7f6a5", id=9123, len=60, mark=0x4000, flags=0x02, kernel=1234567890),
    "traditional, space-padded day, spaced kernel timestamp")
ts = "2026-05-16T21:31:50.5+08:00"
add(f"{ts} node1.cluster.local kernel: SVCT:PRE IN=cali3f2a9b1c0d4 OUT= MAC={MAC1} SRC=10.244.1.23 DST=10.96.0.10 LEN=56 TOS=0x00 PREC=0x00 TTL=64 ID=0 DF PROTO=UDP SPT=38111 DPT=53 LEN=36 ",
    P(t3339(ts), "pre", "10.244.1.23", "10.96.0.10", 17, 38111, 53, inIf="cali3f2a9b1c0d4", id=0, len=56),
    "UDP PRE, one-digit fraction, FQDN host; UDP LEN must not replace IP LEN")
ts = "2026-05-16T21:31:50.500020+08:00"
add(f"{ts} node1.cluster.local kernel: SVCT:POST IN= OUT=cali5d4c3b2a190 SRC=10.244.1.23 DST=10.244.1.9 LEN=56 TOS=0x00 PREC=0x00 TTL=63 ID=0 DF PROTO=UDP SPT=38111 DPT=53 LEN=36 ",
    P(t3339(ts), "post", "10.244.1.23", "10.244.1.9", 17, 38111, 53, outIf="cali5d4c3b2a190", id=0, len=56),
    "UDP POST")
ts = "2026-05-16T21:31:51.000100+08:00"
add(f"{ts} node1 kernel: SVCT:PRE IN=cali3f2a9b1c0d4 OUT= MAC={MAC3} SRC=fd00:10:244:1::17 DST=fd00:10:96::a LEN=80 TC=0 HOPLIMIT=64 FLOWLBL=527311 PROTO=TCP SPT=40022 DPT=80 WINDOW=64800 RES=0x00 SYN URGP=0 ",
    P(t3339(ts), "pre", "fd00:10:244:1::17", "fd00:10:96::a", 6, 40022, 80, inIf="cali3f2a9b1c0d4", len=80, flags=0x02),
    "IPv6 compressed addresses, no IP ID")
ts = "2026-05-16T21:31:51.000180+08:00"
add(f"{ts} node1 kernel: SVCT:POST IN= OUT=cali7c1e0a9f3b2 SRC=fd00:0010:0244:0001:0000:0000:0000:0017 DST=fd00:0010:0244:0002:0000:0000:0000:0031 LEN=80 TC=0 HOPLIMIT=63 FLOWLBL=527311 PROTO=TCP SPT=40022 DPT=8080 WINDOW=64800 RES=0x00 SYN URGP=0 ",
    P(t3339(ts), "post", "fd00:10:244:1::17", "fd00:10:244:2::31", 6, 40022, 8080, outIf="cali7c1e0a9f3b2", len=80, flags=0x02),
    "IPv6 in the kernel's full %pI6 form")
ts = "2026-05-16T21:31:52.250000+08:00"
add(f"{ts} node1 kernel: SVCT:PRE IN=cali3f2a9b1c0d4 OUT= MAC={MAC1} SRC=10.244.1.23 DST=10.96.0.20 LEN=84 TOS=0x00 PREC=0x00 TTL=64 ID=51720 DF PROTO=ICMP TYPE=8 CODE=0 ID=7 SEQ=1 ",
    P(t3339(ts), "pre", "10.244.1.23", "10.96.0.20", 1, inIf="cali3f2a9b1c0d4", id=51720, len=84),
    "ICMP echo: the ICMP ID must not replace the IP ID")
ts = "2026-05-16T21:31:52.260000+08:00"
add(f"{ts} node1 kernel: SVCT:POST IN=eth0 OUT= MAC={MAC2} SRC=192.168.50.1 DST=10.244.1.23 LEN=88 TOS=0x00 PREC=0xC0 TTL=64 ID=33012 PROTO=ICMP TYPE=3 CODE=3 [SRC=10.244.1.23 DST=10.96.0.10 LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=48213 DF PROTO=UDP SPT=38111 DPT=53 LEN=40 ] ",
    P(t3339(ts), "post", "192.168.50.1", "10.244.1.23", 1, inIf="eth0", id=33012, len=88),
    "ICMP port unreachable with embedded packet: outer fields count")
ts = "2026-05-16T21:31:52.270000+08:00"
add(f"{ts} node1 kernel: SVCT:POST IN=eth0 OUT= MAC={MAC2} SRC=192.168.50.1 DST=10.244.1.23 LEN=576 TOS=0x00 PREC=0xC0 TTL=64 ID=33013 PROTO=ICMP TYPE=3 CODE=4 [SRC=10.244.1.23 DST=10.96.0.10 LEN=1500 TOS=0x00 PREC=0x00 TTL=63 ID=4 DF PROTO=TCP SPT=443 DPT=51000 WINDOW=501 RES=0x00 ACK PSH URGP=0 ] MTU=1450 ",
    P(t3339(ts), "post", "192.168.50.1", "10.244.1.23", 1, inIf="eth0", id=33013, len=576),
    "ICMP frag-needed with MTU: embedded TCP flags and ports ignored")
ts = "2026-05-16T21:31:53Z"
add(f"{ts} node1 kernel: SVCT:PRE IN=cali3f2a9b1c0d4 OUT= MAC={MAC3} SRC=fd00:10:244:1::17 DST=fd00:10:96::14 LEN=104 TC=0 HOPLIMIT=64 FLOWLBL=0 PROTO=ICMPv6 TYPE=128 CODE=0 ID=3 SEQ=1 ",
    P(t3339(ts), "pre", "fd00:10:244:1::17", "fd00:10:96::14", 58, inIf="cali3f2a9b1c0d4", len=104),
    "ICMPv6 echo: ID= after PROTO is not an IP ID")
add(f"{ts} node1 kernel: SVCT:POST IN=eth0 OUT= MAC={MAC3} SRC=2001:db8::1 DST=fd00:10:244:1::17 LEN=152 TC=0 HOPLIMIT=64 FLOWLBL=0 PROTO=ICMPv6 TYPE=1 CODE=4 [SRC=fd00:10:244:1::17 DST=fd00:10:96::15 LEN=104 TC=0 HOPLIMIT=63 FLOWLBL=0 PROTO=UDP SPT=5353 DPT=53 LEN=64 ] ",
    P(t3339(ts), "post", "2001:db8::1", "fd00:10:244:1::17", 58, inIf="eth0", len=152),
    "ICMPv6 error with embedded packet")
ts = "2026-05-16T21:31:54.000001+08:00"
add(f"{ts} node1 kernel: SVCT:PRE IN=cali3f2a9b1c0d4 OUT= MAC={MAC1} SRC=10.244.1.23 DST=10.96.7.7 LEN=100 TOS=0x00 PREC=0x00 TTL=64 ID=0 DF PROTO=SCTP SPT=36412 DPT=38412 ",
    P(t3339(ts), "pre", "10.244.1.23", "10.96.7.7", 132, 36412, 38412, inIf="cali3f2a9b1c0d4", id=0, len=100),
    "SCTP with ports")
add(f"{ts} node1 kernel: SVCT:POST IN= OUT=cali5d4c3b2a190 SRC=10.244.1.23 DST=10.244.1.9 LEN=100 TOS=0x00 PREC=0x00 TTL=63 ID=0 DF PROTO=132 ",
    P(t3339(ts), "post", "10.244.1.23", "10.244.1.9", 132, outIf="cali5d4c3b2a190", id=0, len=100),
    "SCTP as the kernel prints it (numeric, no ports)")
ts = "2026-05-16T21:31:55.100000+08:00"
add(f"{ts} node1 kernel: SVCT:PRE IN=eth0 OUT= MAC={MAC2} SRC=192.168.100.7 DST=10.96.0.53 LEN=1500 TOS=0x00 PREC=0x00 TTL=63 ID=40001 MF PROTO=UDP SPT=5000 DPT=53 LEN=1480 ",
    P(t3339(ts), "pre", "192.168.100.7", "10.96.0.53", 17, 5000, 53, inIf="eth0", id=40001, len=1500),
    "first IPv4 fragment (MF) keeps ports")
add(f"{ts} node1 kernel: SVCT:PRE IN=eth0 OUT= MAC={MAC2} SRC=192.168.100.7 DST=10.96.0.53 LEN=548 TOS=0x00 PREC=0x00 TTL=63 ID=40001 FRAG:185 PROTO=UDP ",
    P(t3339(ts), "pre", "192.168.100.7", "10.96.0.53", 17, inIf="eth0", id=40001, len=548),
    "non-first IPv4 fragment: no ports")
add(f"{ts} node1 kernel: SVCT:PRE IN=eth0 OUT= MAC={MAC3} SRC=2001:db8::7 DST=fd00:10:96::35 LEN=1280 TC=0 HOPLIMIT=63 FLOWLBL=0 FRAG:0 INCOMPLETE ID:5a3c91e2 PROTO=UDP SPT=5000 DPT=53 LEN=1456 ",
    P(t3339(ts), "pre", "2001:db8::7", "fd00:10:96::35", 17, 5000, 53, inIf="eth0", id=0x5a3c91e2, len=1280),
    "first IPv6 fragment: fragment ID, ports kept")
add(f"{ts} node1 kernel: SVCT:PRE IN=eth0 OUT= MAC={MAC3} SRC=2001:db8::7 DST=fd00:10:96::35 LEN=240 TC=0 HOPLIMIT=63 FLOWLBL=0 FRAG:1448 ID:5a3c91e2 PROTO=UDP ",
    P(t3339(ts), "pre", "2001:db8::7", "fd00:10:96::35", 17, inIf="eth0", id=0x5a3c91e2, len=240),
    "non-first IPv6 fragment: no ports")
ts = "2026-05-16T21:31:56.000000+08:00"
add(f"{ts} node1 kernel: SVCT:PRE IN=cni0 OUT= PHYSIN=veth1a2b3c4d MAC={MAC1} SRC=10.244.1.5 DST=10.96.0.10 LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=1201 DF PROTO=TCP SPT=33000 DPT=80 WINDOW=64240 RES=0x00 SYN URGP=0 ",
    P(t3339(ts), "pre", "10.244.1.5", "10.96.0.10", 6, 33000, 80, inIf="cni0", id=1201, len=60, flags=0x02),
    "bridge: PHYSIN")
add(f"{ts} node1 kernel: SVCT:POST IN= OUT=cni0 PHYSOUT=veth9f8e7d6c SRC=10.244.1.5 DST=10.244.1.6 LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=1201 DF PROTO=TCP SPT=33000 DPT=80 WINDOW=64240 RES=0x00 SYN URGP=0 ",
    P(t3339(ts), "post", "10.244.1.5", "10.244.1.6", 6, 33000, 80, outIf="cni0", id=1201, len=60, flags=0x02),
    "bridge: PHYSOUT")
add(f"{ts} node1 kernel: SVCT:PRE IN=eth0 OUT= MACSRC=52:54:00:c4:7d:02 MACDST=52:54:00:8a:11:3e MACPROTO=0800 SRC=192.168.100.8 DST=10.96.0.10 LEN=52 TOS=0x10 PREC=0x00 TTL=63 ID=777 DF OPT (94040000) PROTO=TCP SPT=443 DPT=51000 SEQ=1234567 ACK=7654321 WINDOW=501 RES=0x00 AE CWR ECE URG ACK PSH RST SYN FIN URGP=0 OPT (020405B40402080A) ",
    P(t3339(ts), "pre", "192.168.100.8", "10.96.0.10", 6, 443, 51000, inIf="eth0", id=777, len=52, flags=0xFF),
    "--log-macdecode, IP options, SEQ/ACK numbers, every TCP flag")
add(f"{ts} node1 kernel: SVCT:PRE IN=eth0 OUT= MAC={MAC2} SRC=192.168.100.9 DST=10.96.0.10 LEN=40 TOS=0x00 PREC=0x00 TTL=63 ID=4242 PROTO=TCP INCOMPLETE [12 bytes] ",
    P(t3339(ts), "pre", "192.168.100.9", "10.96.0.10", 6, inIf="eth0", id=4242, len=40),
    "INCOMPLETE transport header: no ports")
add(f"{ts} node1 kernel: SVCT:POST IN= OUT=eth0 SRC=192.168.50.11 DST=10.244.2.15 LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=5150 DF PROTO=TCP SPT=41000 DPT=8080 WINDOW=64240 RES=0x00 SYN URGP=0 UID=1000 GID=1000 MARK=0xdeadbeef FOO=bar WHATEVER ",
    P(t3339(ts), "post", "192.168.50.11", "10.244.2.15", 6, 41000, 8080, outIf="eth0", id=5150, len=60, mark=0xdeadbeef, flags=0x02),
    "large MARK, unknown trailing tokens ignored")
add(f"{ts} node1 kernel: SVCT:PRE IN=eth0 OUT= MAC={MAC2} SRC=192.168.100.9 DST=10.96.0.10 LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=1 DF PROTO=UDPLITE SPT=9 DPT=9 LEN=40 ",
    P(t3339(ts), "pre", "192.168.100.9", "10.96.0.10", 136, 9, 9, inIf="eth0", id=1, len=60),
    "UDPLITE")
# Legacy DomeOS prefixes (traditional format, as on CentOS 7).
add(f"May 16 21:40:01 node3 kernel: ----domeos-pre-----IN=eth0 OUT= MAC={MAC2} SRC=192.168.100.7 DST=10.16.0.5 LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=10001 DF PROTO=TCP SPT=55001 DPT=80 WINDOW=29200 RES=0x00 SYN URGP=0 ",
    P(trad(2026, 5, 16, 21, 40, 1), "pre", "192.168.100.7", "10.16.0.5", 6, 55001, 80, origin="legacy", inIf="eth0", id=10001, len=60, flags=0x02),
    "legacy prefix glued to IN=, word 'pre'")
add(f"May 16 21:40:01 node3 kernel: ----domeos_output----IN= OUT=eth0 SRC=192.168.50.13 DST=10.16.0.5 LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=10002 DF PROTO=TCP SPT=55002 DPT=80 WINDOW=29200 RES=0x00 SYN URGP=0 ",
    P(trad(2026, 5, 16, 21, 40, 1), "pre", "192.168.50.13", "10.16.0.5", 6, 55002, 80, origin="legacy", outIf="eth0", id=10002, len=60, flags=0x02),
    "legacy OUTPUT prefix -> pre")
add(f"May 16 21:40:02 node3 kernel: ----domeos POSTROUTING ----IN= OUT=docker0 SRC=192.168.100.7 DST=172.17.0.4 LEN=60 TOS=0x00 PREC=0x00 TTL=62 ID=10001 DF PROTO=TCP SPT=55001 DPT=8080 WINDOW=29200 RES=0x00 SYN URGP=0 MARK=0x4000 ",
    P(trad(2026, 5, 16, 21, 40, 2), "post", "192.168.100.7", "172.17.0.4", 6, 55001, 8080, origin="legacy", outIf="docker0", id=10001, len=60, mark=0x4000, flags=0x02),
    "legacy POSTROUTING prefix (upper case) -> post")
add(f"May 16 21:40:03 node3 kernel: ----domeos-prerouting IN=eth0 OUT= MAC={MAC2} SRC=192.168.100.7 DST=10.16.0.6 LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=10003 DF PROTO=TCP SPT=55003 DPT=443 WINDOW=29200 RES=0x00 SYN URGP=0 ",
    P(trad(2026, 5, 16, 21, 40, 3), "pre", "192.168.100.7", "10.16.0.6", 6, 55003, 443, origin="legacy", inIf="eth0", id=10003, len=60, flags=0x02),
    "legacy prerouting prefix with a space")
add(f"May 16 21:40:04 node3 kernel: ----domeos-----IN=eth0 OUT= MAC={MAC2} SRC=192.168.100.7 DST=10.16.0.6 LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=10004 DF PROTO=TCP SPT=55004 DPT=443 WINDOW=29200 RES=0x00 SYN URGP=0 ",
    None, "legacy prefix without a stage word: skipped")
# CRLF line (the \r is removed by LineSplitter)
ts = "2026-05-16T21:32:00.000000-08:00"
add(f"{ts} node4 kernel: SVCT:PRE IN=eth0 OUT= MAC={MAC2} SRC=192.168.100.7 DST=10.96.0.10 LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=3 DF PROTO=TCP SPT=1 DPT=80 WINDOW=64240 RES=0x00 SYN URGP=0 \r",
    P(t3339(ts), "pre", "192.168.100.7", "10.96.0.10", 6, 1, 80, inIf="eth0", id=3, len=60, flags=0x02),
    "CRLF line ending, zone -08:00")
ts = "2026-05-16T21:32:00.000000+05:30"
add(f"{ts} node4 kernel: SVCT:POST IN= OUT=eth0 SRC=192.168.100.7 DST=10.244.4.2 LEN=60 TOS=0x00 PREC=0x00 TTL=62 ID=3 DF PROTO=TCP SPT=1 DPT=80 WINDOW=64240 RES=0x00 SYN URGP=0 MARK=0x4000 ",
    P(t3339(ts), "post", "192.168.100.7", "10.244.4.2", 6, 1, 80, outIf="eth0", id=3, len=60, mark=0x4000, flags=0x02),
    "zone +05:30")
# Lines that must be skipped.
ts = "2026-05-16T21:31:48.200000+08:00"
add(f"{ts} node1 kernel: IPv6: ADDRCONF(NETDEV_CHANGE): cali3f2a9b1c0d4: link becomes ready", None, "other kernel message")
add(f"{ts} node1 kernel: [UFW BLOCK] IN=eth0 OUT= MAC={MAC2} SRC=192.168.100.7 DST=192.168.50.11 LEN=60 TOS=0x00 PREC=0x00 TTL=52 ID=1 DF PROTO=TCP SPT=40000 DPT=22 WINDOW=64240 RES=0x00 SYN URGP=0 ", None, "another firewall's prefix")
add(f"{ts} node1 kernel: IN=eth0 OUT= MAC={MAC2} SRC=192.168.100.7 DST=192.168.50.11 LEN=60 TOS=0x00 PREC=0x00 TTL=52 ID=1 DF PROTO=TCP SPT=40000 DPT=22 WINDOW=64240 RES=0x00 SYN URGP=0 ", None, "LOG line without prefix")
add(f"{ts} node1 kernel: SVCT:PRE IN=cali3f2a9b1c0d4 OUT= MAC={MAC1} SRC=10.244.1.23 DST=10.96.0.10 LEN=60 TOS=0x00 PREC", None, "truncated before PROTO")
add(f"{ts} node1 kernel: SVCT:PRE IN=cali3f2a9b1c0d4 OUT= MAC={MAC1} SRC=10.244.1.23 LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=48213 DF PROTO=TCP SPT=43122 DPT=80 ", None, "missing DST")
add(f"{ts} node1 kernel: SVCT:PRE IN=cali3f2a9b1c0d4 OUT= MAC={MAC1} SRC=10.244.1.23 DST=10.96.0.10 LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=48213 DF PROTO=TCP ", None, "TCP without ports (truncated)")
add(f"{ts} node1 kernel: SVCT:PRE IN=cali3f2a9b1c0d4 OUT= MAC={MAC1} SRC=10.244.1.23 DST=10.96.0.10 LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=48213 DF PROTO=ICMP ", None, "ICMP without TYPE (truncated)")
add(f"{ts} node1 kernel: SVCT:PRE IN=cali3f2a9b1c0d4 OUT= MAC={MAC1} SRC=10.244.1.300 DST=10.96.0.10 LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=48213 DF PROTO=TCP SPT=43122 DPT=80 ", None, "invalid IPv4 octet")
add(f"{ts} node1 kernel: SVCT:PRE IN=cali3f2a9b1c0d4 OUT= MAC={MAC1} SRC=10.244.1.23 DST=10.96.0.10 LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=48213 DF PROTO=TCP SPT=70000 DPT=80 ", None, "port out of range")
add(f"{ts} node1 systemd[1]: Started Session 7 of user root.", None, "not a kernel line")
add(f"{ts} node1 logger: SVCT:PRE IN=eth0 OUT= SRC=10.0.0.1 DST=10.96.0.1 LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=1 PROTO=TCP SPT=1 DPT=2 ", None, "user-space line imitating a LOG line")
add(f"2026-02-30T10:00:00.000000+00:00 node1 kernel: SVCT:PRE IN=eth0 OUT= SRC=10.0.0.1 DST=10.96.0.1 LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=1 PROTO=TCP SPT=1 DPT=2 ", None, "impossible date")
add(f"Foo 16 21:31:48 node1 kernel: SVCT:PRE IN=eth0 OUT= SRC=10.0.0.1 DST=10.96.0.1 LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=1 PROTO=TCP SPT=1 DPT=2 ", None, "unknown month")
add("", None, "empty line")
add("%%%% \x01\x02 not a log line ]]] [[[ IN= OUT=", None, "garbage")
add(f"{ts} node1 kernel: SVCT:PREFIX IN=eth0 OUT= SRC=10.0.0.1 DST=10.96.0.1 LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=1 PROTO=TCP SPT=1 DPT=2 ", None, "prefix only resembling svctrace's")

import sys
root = sys.argv[1]
with open(root + "/corpus.log", "w", newline="") as f:
    for line, _, _ in entries:
        f.write(line + "\n")
out = []
for number, (line, exp, note) in enumerate(entries, 1):
    out.append({"line": number, "note": note, "expect": exp})
with open(root + "/corpus-expectations.json", "w") as f:
    json.dump(out, f, indent=1)
    f.write("\n")
print(len(entries), "lines,", sum(1 for e in entries if e[1]), "packets")
