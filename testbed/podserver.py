#!/usr/bin/env python3
"""Pod server of the svctrace testbed (a TEST FIXTURE).

`python3 podserver.py --name NAME --port P [--extra-port Q]` listens on 0.0.0.0:P (and :Q) and,
when the namespace has IPv6, on [::]:P (and :Q; IPV6_V6ONLY, so IPv4 peers keep their plain
addresses) for TCP and UDP and answers
every TCP connection with one JSON line, then closes it, and every UDP datagram with the same
JSON as a datagram:

    {"pod":NAME,"ip":LOCAL_IP,"port":LOCAL_PORT,"client_ip":PEER_IP,"client_port":PEER_PORT}

ip/port are the address the client's packet was delivered to (after DNAT), client_ip/port the
source the pod saw (after any masquerade). UDP replies are sent from the datagram's own
destination address (IP_PKTINFO / IPV6_PKTINFO), so conntrack un-NATs them. Runs until killed; prints nothing.
"""

import argparse
import json
import socket
import struct
import sys
import threading

IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)
IPV6_RECVPKTINFO = getattr(socket, "IPV6_RECVPKTINFO", 49)
IPV6_PKTINFO = getattr(socket, "IPV6_PKTINFO", 50)


def _reply(name, local, peer):
    return json.dumps({"pod": name, "ip": local[0], "port": local[1],
                       "client_ip": peer[0], "client_port": peer[1]}, separators=(",", ":")) + "\n"


def _serve_tcp_conn(conn, name):
    try:
        conn.settimeout(5)
        conn.sendall(_reply(name, conn.getsockname(), conn.getpeername()).encode())
        try:
            conn.shutdown(socket.SHUT_WR)
        except OSError:
            pass
    except OSError:
        pass
    finally:
        conn.close()


def _tcp_loop(sock, name):
    while True:
        try:
            conn, _ = sock.accept()
        except InterruptedError:
            continue
        except OSError:
            continue
        t = threading.Thread(target=_serve_tcp_conn, args=(conn, name), daemon=True)
        try:
            t.start()
        except RuntimeError:  # thread limit: answer inline
            _serve_tcp_conn(conn, name)


def _udp_loop(sock, name, port):
    while True:
        try:
            data, anc, _flags, peer = sock.recvmsg(2048, socket.CMSG_SPACE(20))
        except (InterruptedError, OSError):
            continue
        local_ip = "0.0.0.0"
        spec = None
        for level, typ, payload in anc:
            if level == socket.IPPROTO_IP and typ == IP_PKTINFO and len(payload) >= 12:
                _ifindex, _spec_dst, addr = struct.unpack("i4s4s", payload[:12])
                local_ip = socket.inet_ntoa(addr)
                spec = (socket.IPPROTO_IP, IP_PKTINFO, struct.pack("i4s4s", 0, addr, b"\0\0\0\0"))
            elif level == socket.IPPROTO_IPV6 and typ == IPV6_PKTINFO and len(payload) >= 20:
                addr = payload[:16]
                local_ip = socket.inet_ntop(socket.AF_INET6, addr)
                spec = (socket.IPPROTO_IPV6, IPV6_PKTINFO, addr + struct.pack("I", 0))
        msg = _reply(name, (local_ip, port), peer).encode()
        try:
            if spec:
                sock.sendmsg([msg], [spec], 0, peer)
            else:
                sock.sendto(msg, peer)
        except OSError:
            pass


def _listen(bind, port, family=socket.AF_INET):
    tcp = socket.socket(family, socket.SOCK_STREAM)
    udp = socket.socket(family, socket.SOCK_DGRAM)
    try:
        for s in (tcp, udp):
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        tcp.bind((bind, port))
        tcp.listen(4096)
        if family == socket.AF_INET6:
            udp.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVPKTINFO, 1)
        else:
            udp.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
        udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        udp.bind((bind, port))
    except OSError:
        tcp.close()
        udp.close()
        raise
    return tcp, udp


def main(argv=None):
    ap = argparse.ArgumentParser(description="testbed pod server (TCP+UDP JSON echo of addresses)")
    ap.add_argument("--name", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--extra-port", type=int, action="append", default=[],
                    help="also serve this port (a second named container port), TCP and UDP")
    ap.add_argument("--bind", default="0.0.0.0")
    args = ap.parse_args(argv)
    ports = [args.port] + args.extra_port
    for port in ports:
        if not 0 < port < 65536:
            sys.stderr.write(f"podserver: port {port} out of range\n")
            return 2
    socks = []
    for port in ports:
        try:
            socks.append((port,) + _listen(args.bind, port))
        except OSError as e:
            sys.stderr.write(f"podserver {args.name}: cannot listen on {args.bind}:{port}: {e.strerror}\n")
            return 1
    if args.bind == "0.0.0.0":
        # IPv6 too (dual-stack Services), when this namespace has it; IPv4-only namespaces skip it.
        for port in ports:
            try:
                socks.append((port,) + _listen("::", port, socket.AF_INET6))
            except OSError:
                break
    for port, tcp, udp in socks:
        threading.Thread(target=_udp_loop, args=(udp, args.name, port), daemon=True).start()
    for _port, tcp, _udp in socks[1:]:
        threading.Thread(target=_tcp_loop, args=(tcp, args.name), daemon=True).start()
    try:
        _tcp_loop(socks[0][1], args.name)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
