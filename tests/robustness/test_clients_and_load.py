"""Broken clients, concurrency, load and shutdown, against real server processes.

A client that stops half-way or vanishes costs the server nothing lasting;
uploads at once are bounded; runs finish on the model they started with; 64
callers get correct answers; SIGTERM lets calls in flight finish, then exits 0.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import cbor2
import grpc
import pytest
from robust_support import (
    assert_serves_reference,
    connect,
    output_of,
    raw_stub,
    reference_model,
    refusal,
    run,
    sim_server,
    slow_model,
    upload,
)

from blindai.pb import securedexchange_pb2 as pb

# Clients connect from many threads at once, and warnings.catch_warnings is
# not thread-safe: silence the simulation warning for the whole module.
pytestmark = pytest.mark.filterwarnings("ignore::blindai.SimulationModeWarning")

MIB = 1024 * 1024
#: Iterations of the slow model per second, roughly (see slow_model).
SLOW_PER_SECOND = 10_000


def stalled_upload(stub, release: threading.Event, declared: int) -> grpc.Future:
    """An upload that sends one chunk, then waits for ``release`` (at most 30 s)."""

    def requests() -> Iterator[pb.SendModelRequest]:
        yield pb.SendModelRequest(data=b"x" * 1024, length=declared, input_fact=[1, 4])
        release.wait(30)

    return stub.SendModel.future(requests(), timeout=30)


def wait_for_refusal_to_stop(stub, model: bytes, limit: float = 10.0) -> None:
    """Upload ``model``, retrying while the server still counts a dead upload."""
    deadline = time.monotonic() + limit
    while True:
        try:
            upload(stub, model)
            return
        except grpc.RpcError as err:
            if err.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
                raise
            if time.monotonic() > deadline:
                raise AssertionError("the upload slot was never released") from err
            time.sleep(0.1)


# --- broken clients ---------------------------------------------------------------


def test_client_cancels_mid_upload():
    with (
        sim_server("--max-concurrent-uploads", "1") as server,
        raw_stub(server) as stub,
    ):
        upload(stub, reference_model())
        release = threading.Event()
        future = stalled_upload(stub, release, declared=4 * MIB)
        time.sleep(0.3)
        code, _ = refusal(upload, stub, reference_model())
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED  # the slot is taken
        future.cancel()
        release.set()
        assert future.cancelled() or future.exception() is not None
        wait_for_refusal_to_stop(stub, reference_model())
        assert_serves_reference(stub)


KILLED_CLIENT = textwrap.dedent("""
    import sys, time
    sys.path[:0] = [sys.argv[1], sys.argv[1] + "/.."]
    from robust_support import raw_channel
    from blindai.server.launcher import LocalServer
    from blindai.pb import securedexchange_pb2 as pb
    from blindai.pb.securedexchange_pb2_grpc import ExchangeStub

    server = LocalServer()
    server.info = {"untrusted_port": int(sys.argv[2]),
                   "attested_port": int(sys.argv[3])}
    server.state_dir = __import__("pathlib").Path(sys.argv[4])
    stub = ExchangeStub(raw_channel(server))

    def requests():
        for _ in range(1000):
            yield pb.SendModelRequest(data=b"x" * 65536, length=400 << 20,
                                      input_fact=[1, 4])
            print("sent", flush=True)
            time.sleep(0.01)
    stub.SendModel(requests(), timeout=60)
""")


def test_client_process_killed_mid_upload(tmp_path):
    from pathlib import Path

    here = str(Path(__file__).parent)
    with (
        sim_server("--max-concurrent-uploads", "1") as server,
        raw_stub(server) as stub,
    ):
        upload(stub, reference_model())
        child = subprocess.Popen(
            [
                sys.executable,
                "-c",
                KILLED_CLIENT,
                here,
                str(server.untrusted_port),
                str(server.attested_port),
                str(server.state_dir),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        try:
            for _ in range(5):  # a few chunks are in flight
                assert child.stdout is not None and child.stdout.readline()
        finally:
            child.kill()
            child.wait(10)
        wait_for_refusal_to_stop(stub, reference_model())
        assert_serves_reference(stub)
        assert server.process is not None and server.process.poll() is None


def test_uploads_at_once_are_bounded():
    # Two uploads declaring the maximum size hold the two slots; a third is
    # refused at once instead of reserving a third maximum-size buffer.
    with (
        sim_server(
            "--max-concurrent-uploads", "2", "--max-model-size", str(64 * MIB)
        ) as server,
        raw_stub(server) as stub,
    ):
        upload(stub, reference_model())
        release = threading.Event()
        futures = [stalled_upload(stub, release, declared=64 * MIB) for _ in range(2)]
        try:
            time.sleep(0.5)
            code, details = refusal(upload, stub, reference_model())
            assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "2 uploads are already in progress" in details
            assert_serves_reference(stub)  # runs are not blocked by uploads
        finally:
            release.set()
        for future in futures:
            assert (
                future.exception(timeout=30).code() == grpc.StatusCode.INVALID_ARGUMENT
            )  # ended short of its length
        upload(stub, reference_model())
        assert_serves_reference(stub)


def test_upload_while_runs_are_in_flight():
    with sim_server() as server, raw_stub(server) as stub:
        slow = slow_model()
        upload(stub, slow, shape=(1, 1))
        with ThreadPoolExecutor(2) as pool:
            started = time.monotonic()
            pending = pool.submit(run, stub, cbor2.dumps([1.5 * SLOW_PER_SECOND]))
            time.sleep(0.3)
            upload(stub, reference_model())  # does not wait for the run
            assert time.monotonic() - started < 1.0
            assert_serves_reference(stub)
            reply = pending.result(timeout=30)
        # The run finished on the model it started with, and says so.
        assert output_of(reply) == [1.5 * SLOW_PER_SECOND]
        payload = pb.Payload.FromString(reply.payload).run_model_payload
        assert payload.model_hash == hashlib.sha256(slow).digest()


# --- load ---------------------------------------------------------------------------


def test_64_callers_each_with_its_own_connection():
    callers, calls = 64, 10
    with sim_server() as server:
        with connect(server) as owner:
            owner.upload_model(reference_model(), shape=(1, 4))

        def caller(index: int) -> list[list[float]]:
            with connect(server) as client:
                return [
                    client.run_model(
                        [float(index), float(i), 0.0, 1.0], timeout=60
                    ).output
                    for i in range(calls)
                ]

        with ThreadPoolExecutor(callers) as pool:
            results = list(pool.map(caller, range(callers), timeout=120))
    for index, outputs in enumerate(results):
        assert outputs == [
            [2.0 * index + 1, 2.0 * i + 1, 1.0, 3.0] for i in range(calls)
        ]


# --- shutdown -----------------------------------------------------------------------


def test_sigterm_lets_a_run_in_flight_finish_then_exits_0():
    with sim_server("--grace-period", "10") as server, raw_stub(server) as stub:
        upload(stub, slow_model(), shape=(1, 1))
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(run, stub, cbor2.dumps([3.0 * SLOW_PER_SECOND]))
            time.sleep(0.5)
            assert not pending.done()  # SIGTERM comes while the run is in flight
            started = time.monotonic()
            code = server.stop(timeout=20)
            assert output_of(pending.result(timeout=20)) == [3.0 * SLOW_PER_SECOND]
        assert code == 0
        assert time.monotonic() - started < 10
        assert "stopped" in server.log_text()


def test_sigterm_stops_a_run_longer_than_the_grace_period():
    # About an hour of work, no run time limit: the grace period still bounds
    # how long the server takes to exit.
    with sim_server("--grace-period", "1") as server, raw_stub(server) as stub:
        upload(stub, slow_model(), shape=(1, 1))
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(run, stub, cbor2.dumps([1.5e8]))
            time.sleep(0.5)
            started = time.monotonic()
            code = server.stop(timeout=20)
            elapsed = time.monotonic() - started
            with pytest.raises(grpc.RpcError):
                pending.result(timeout=20)
        assert code == 0
        assert elapsed < 5


# --- stalled streams --------------------------------------------------------------


def stalled_input(release: threading.Event) -> Iterator[pb.RunModelRequest]:
    yield pb.RunModelRequest(input=b"\x84")
    release.wait(30)


def test_stalled_upload_is_cancelled_and_frees_its_slot():
    with (
        sim_server("--max-concurrent-uploads", "1", "--idle-timeout", "1") as server,
        raw_stub(server) as stub,
    ):
        upload(stub, reference_model())
        release = threading.Event()
        try:
            future = stalled_upload(stub, release, declared=4 * MIB)
            time.sleep(0.3)
            code, details = refusal(upload, stub, reference_model())
            assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "an upload is already in progress" in details
            assert future.exception(timeout=10).code() == grpc.StatusCode.CANCELLED
            # The client learns of the cancellation while the server's handler
            # is still unwinding: the slot frees a moment later, not never.
            wait_for_refusal_to_stop(stub, reference_model())
        finally:
            release.set()
        assert_serves_reference(stub)
        assert "idle for more than 1 s" in server.log_text()


def test_stalled_input_streams_do_not_starve_other_callers():
    # Without a limit, `workers` silent streams would hold every worker.
    with (
        sim_server("--workers", "2", "--idle-timeout", "1") as server,
        raw_stub(server) as stub,
    ):
        upload(stub, reference_model())
        release = threading.Event()
        try:
            stalls = [
                stub.RunModel.future(stalled_input(release), timeout=30)
                for _ in range(2)
            ]
            time.sleep(0.3)
            started = time.monotonic()
            assert_serves_reference(stub)
            assert time.monotonic() - started < 5
            for stall in stalls:
                assert stall.exception(timeout=10) is not None
        finally:
            release.set()


def test_calls_past_the_queue_are_refused_not_left_waiting():
    from blindai.server.app import CALLS_PER_WORKER

    # --workers 1: one call served, CALLS_PER_WORKER in all admitted, the rest
    # refused.
    with (
        sim_server("--workers", "1", "--idle-timeout", "20") as server,
        raw_stub(server) as stub,
    ):
        upload(stub, reference_model())
        release = threading.Event()
        try:
            held = [
                stub.RunModel.future(stalled_input(release), timeout=30)
                for _ in range(CALLS_PER_WORKER)
            ]
            time.sleep(0.5)
            started = time.monotonic()
            code, _ = refusal(run, stub, cbor2.dumps([1.0, 2.0, 3.0, 4.0]))
            assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert time.monotonic() - started < 5
        finally:
            release.set()
        for call in held:
            call.exception(timeout=30)  # each ends once its client goes on
        assert_serves_reference(stub)


def test_a_caller_giving_up_stops_its_inference():
    # No server run limit, one worker: the inference of a caller whose deadline
    # passed must stop, or it would hold the only worker for about an hour.
    with sim_server("--workers", "1") as server, raw_stub(server) as stub:
        upload(stub, slow_model(), shape=(1, 1))
        code, _ = refusal(
            stub.RunModel,
            iter([pb.RunModelRequest(input=cbor2.dumps([1.5e8]))]),
            timeout=0.5,
        )
        assert code == grpc.StatusCode.DEADLINE_EXCEEDED
        started = time.monotonic()
        reply = stub.RunModel(
            iter([pb.RunModelRequest(input=cbor2.dumps([5.0]))]), timeout=10
        )
        assert output_of(reply) == [5.0]
        assert time.monotonic() - started < 3
        # The log says the call ended, not that a server limit was reached.
        log = server.log_text()
        assert "RunModel refused: CANCELLED" in log
        assert "refused: DEADLINE_EXCEEDED" not in log


def test_an_idle_stream_is_logged_as_what_its_client_sees():
    with (
        sim_server("--idle-timeout", "1") as server,
        raw_stub(server) as stub,
    ):
        release = threading.Event()
        try:
            future = stalled_upload(stub, release, declared=4 * MIB)
            assert future.exception(timeout=10).code() == grpc.StatusCode.CANCELLED
        finally:
            release.set()
        deadline = time.monotonic() + 5
        while "SendModel refused" not in server.log_text():
            assert time.monotonic() < deadline, server.log_text()
            time.sleep(0.05)
        assert "SendModel refused: CANCELLED" in server.log_text()


def test_garbage_and_idle_connections_on_both_ports():
    import socket

    with sim_server() as server, raw_stub(server) as stub:
        upload(stub, reference_model())
        idle: list[socket.socket] = []
        try:
            for port in (server.untrusted_port, server.attested_port):
                for payload in (
                    b"",
                    b"GET / HTTP/1.1\r\n\r\n",
                    b"\x16\x03\x01" + b"\xff" * 4096,
                    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\0" * 64,
                ):
                    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                        s.sendall(payload)
                for _ in range(100):  # connections that never handshake
                    idle.append(
                        socket.create_connection(("127.0.0.1", port), timeout=5)
                    )
            assert_serves_reference(stub)
            with connect(server) as client:  # a new client connects and is served
                assert client.run_model([1.0, 2.0, 3.0, 4.0]).output == [
                    3.0,
                    5.0,
                    7.0,
                    9.0,
                ]
        finally:
            for s in idle:
                s.close()
        assert server.process is not None and server.process.poll() is None
