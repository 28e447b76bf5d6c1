"""What gRPC and TLS alone cost: lower bounds for the rows of the table.

A child process serves two methods that do no work of ours, over TLS on
127.0.0.1 with the server's gRPC options: ``Sink`` takes a stream of raw byte
messages and drops them, ``Empty`` answers a unary call with nothing. Timing
the same bytes through them tells how much of a row's time is the transport,
which no change to our code can remove. Run as ``python -m benchmarks._transport``
it is that child: it prints its port and certificate as one JSON line, then
serves until its standard input closes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent import futures
from typing import Any

import grpc

NAME = "bench-transport"
_SERVICE = "benchmarks.Transport"
#: The server's own per-message limit (blindai.server.app.MAX_MESSAGE).
_MAX_MESSAGE = 8 * 1024 * 1024


def _identity() -> tuple[bytes, bytes]:
    """A throwaway P-256 key and self-signed certificate for ``NAME``."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from blindai._certs import self_signed_certificate

    key = ec.generate_private_key(ec.SECP256R1())
    cert = self_signed_certificate(key, NAME, dns_name=NAME, days=1)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return key_pem, cert.public_bytes(serialization.Encoding.PEM)


def _sink(requests: Iterator[bytes], context: Any) -> bytes:
    received = 0
    for message in requests:
        received += len(message)
    return received.to_bytes(8, "big")


def _empty(request: bytes, context: Any) -> bytes:
    return b""


def serve() -> None:
    """The child: serve until standard input closes."""
    key_pem, cert_pem = _identity()
    handler = grpc.method_handlers_generic_handler(
        _SERVICE,
        {
            "Sink": grpc.stream_unary_rpc_method_handler(_sink),
            "Empty": grpc.unary_unary_rpc_method_handler(_empty),
        },
    )
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=16),
        handlers=[handler],
        options=[
            ("grpc.max_receive_message_length", _MAX_MESSAGE),
            ("grpc.max_send_message_length", -1),
            ("grpc.so_reuseport", 0),
        ],
    )
    credentials = grpc.ssl_server_credentials([(key_pem, cert_pem)])
    port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    print(json.dumps({"port": port, "cert": cert_pem.decode()}), flush=True)
    sys.stdin.read()
    server.stop(0)


class TransportServer:
    """The child process, as a context manager; ``channel()`` connects to it."""

    def __init__(self) -> None:
        self._process = subprocess.Popen(  # noqa: S603 (our own interpreter)
            [sys.executable, "-m", "benchmarks._transport"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            raise RuntimeError("the transport server did not start")
        info = json.loads(line)
        self.port = int(info["port"])
        self.cert = info["cert"].encode()

    def channel(self) -> grpc.Channel:
        return grpc.secure_channel(
            f"127.0.0.1:{self.port}",
            grpc.ssl_channel_credentials(self.cert),
            [
                ("grpc.ssl_target_name_override", NAME),
                ("grpc.max_receive_message_length", -1),
            ],
        )

    def close(self) -> None:
        if self._process.stdin is not None:
            self._process.stdin.close()
        try:
            self._process.wait(10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def __enter__(self) -> TransportServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def sink_call(channel: grpc.Channel, data: bytes, chunk: int) -> Callable[[], object]:
    """A call that streams ``data`` in messages of ``chunk`` bytes to ``Sink``."""
    method = channel.stream_unary(f"/{_SERVICE}/Sink")
    view = memoryview(data)

    def call() -> object:
        messages = (
            bytes(view[start : start + chunk]) for start in range(0, len(data), chunk)
        )
        reply = method(messages, timeout=600)
        if int.from_bytes(reply, "big") != len(data):
            raise RuntimeError("the transport server lost bytes")
        return reply

    return call


def empty_call(channel: grpc.Channel, request: bytes) -> Callable[[], object]:
    """A unary call of ``request`` (raw bytes) to ``Empty``, with a deadline as
    our client sets one."""
    method = channel.unary_unary(f"/{_SERVICE}/Empty")
    return lambda: method(request, timeout=300)


if __name__ == "__main__":
    serve()
