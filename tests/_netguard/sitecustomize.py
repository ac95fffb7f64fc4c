"""Loaded by every Python process the tests start (PYTHONPATH): no socket may reach a non-loopback address.

Notebook kernels and ``accelerate launch`` workers inherit it, so a hidden download fails there too.
"""

import os

if os.environ.get("KIT_BLOCK_NETWORK") == "1":
    import ipaddress
    import socket

    _real_connect = socket.socket.connect
    _real_connect_ex = socket.socket.connect_ex

    def _allowed(address) -> bool:
        if isinstance(address, (str, bytes)):  # AF_UNIX path
            return True
        host = address[0]
        if isinstance(host, bytes):
            host = host.decode()
        if host in ("localhost", ""):
            return True
        try:
            return ipaddress.ip_address(host.split("%")[0]).is_loopback
        except ValueError:
            return False  # a host name that is not localhost would need DNS: refuse

    def _refuse(what: str):
        log = os.environ.get("KIT_NETGUARD_LOG")
        if log:
            with open(log, "a", encoding="utf-8") as f:
                f.write(f"pid {os.getpid()}: {what}\n")
        raise ConnectionRefusedError(f"kit tests block network access: {what} refused")

    def _guard(address):
        if not _allowed(address):
            _refuse(f"connect to {address!r}")

    def connect(self, address):
        _guard(address)
        return _real_connect(self, address)

    def connect_ex(self, address):
        _guard(address)
        return _real_connect_ex(self, address)

    socket.socket.connect = connect
    socket.socket.connect_ex = connect_ex
    _real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        h = host.decode() if isinstance(host, bytes) else host
        if h not in (None, "localhost", "") and not _is_ip(h):
            _refuse(f"DNS lookup of {host!r}")
        return _real_getaddrinfo(host, *args, **kwargs)

    def _is_ip(h: str) -> bool:
        try:
            ipaddress.ip_address(h.split("%")[0])
            return True
        except ValueError:
            return False

    socket.getaddrinfo = getaddrinfo
