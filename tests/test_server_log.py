"""What the server's log holds: its own lines, not gRPC's C core chatter.

gRPC's C core writes a line of its own format for every failed TLS handshake
(a port scan, a client without the certificate). The server turns that off
(``GRPC_VERBOSITY=ERROR``) unless the operator set ``GRPC_VERBOSITY``; that
only works if nothing imported grpc before, so ``import blindai`` must not.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest

from blindai.server.launcher import LocalServer


def _failed_handshakes(port: int, count: int = 2) -> None:
    for _ in range(count):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"GET / HTTP/1.0\r\n\r\n")  # not TLS
            sock.settimeout(2)
            try:
                sock.recv(100)
            except OSError:
                pass


def _log_after_handshakes(env: dict[str, str]) -> str:
    with LocalServer(["--simulation"], env=env) as server:
        _failed_handshakes(server.attested_port)
        _failed_handshakes(server.untrusted_port)
        time.sleep(0.3)
        return server.log_text()


def test_importing_blindai_does_not_import_grpc():
    code = "import sys, blindai; blindai.ModelDatumType; print('grpc' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"


def test_the_client_names_still_load_on_first_use():
    import blindai

    assert blindai.connect.__module__ == "blindai.client"
    assert blindai.BlindAiClient.__name__ == "BlindAiClient"
    assert issubclass(blindai.SimulationModeWarning, UserWarning)
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        blindai.nothing  # noqa: B018


def test_failed_tls_handshakes_leave_no_grpc_lines_in_the_log():
    env = {k: v for k, v in os.environ.items() if k != "GRPC_VERBOSITY"}
    log = _log_after_handshakes(env)
    assert "serving (simulation mode)" in log
    assert "Handshake failed" not in log
    assert "ssl_transport_security" not in log


def test_an_operators_grpc_verbosity_is_kept():
    log = _log_after_handshakes(dict(os.environ, GRPC_VERBOSITY="INFO"))
    assert "Handshake failed" in log


def test_the_0_3_module_attributes_work_after_a_plain_import():
    """0.3 code reaches blindai.client, blindai.dcap_attestation and
    blindai.utils after ``import blindai`` alone, and imports SignedResponse
    and Policy from blindai.client."""
    code = (
        "import blindai\n"
        "assert blindai.client.BlindAiClient is blindai.BlindAiClient\n"
        "assert blindai.dcap_attestation.Policy is blindai.Policy\n"
        "assert blindai.utils.errors.SignatureError is blindai.SignatureError\n"
        "from blindai.client import SignedResponse, Policy\n"
        "assert SignedResponse is blindai.SignedResponse and Policy is blindai.Policy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
