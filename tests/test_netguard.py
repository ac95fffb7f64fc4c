import socket
import subprocess
import sys

import pytest


def test_non_loopback_connect_is_refused_in_process(tmp_path, monkeypatch):
    log = tmp_path / "net.log"
    monkeypatch.setenv("KIT_NETGUARD_LOG", str(log))
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with pytest.raises(ConnectionRefusedError, match="block network"):
        s.connect(("93.184.216.34", 80))
    s.close()
    assert "93.184.216.34" in log.read_text()


def test_dns_lookup_is_refused_in_subprocess(tmp_path):
    code = "import socket\ntry:\n    socket.getaddrinfo('huggingface.co', 443)\nexcept ConnectionRefusedError as e:\n    print('refused', e)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={**__import__("os").environ, "KIT_NETGUARD_LOG": str(tmp_path / "n.log")})
    assert "refused" in out.stdout, out.stderr


def test_loopback_is_allowed():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    client = socket.socket()
    client.connect(server.getsockname())
    client.close()
    server.close()
