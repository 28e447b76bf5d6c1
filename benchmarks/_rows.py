"""The measurements behind each row of the table, against a live server."""

from __future__ import annotations

import hashlib
import sys
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cbor2
import grpc
import numpy as np
import onnxruntime as ort

import blindai
from benchmarks import _memory
from benchmarks._stats import Summary, timed
from benchmarks._transport import TransportServer, empty_call, sink_call
from benchmarks.models import CNN_SHAPE, image_cnn, large_embedding
from blindai.client import CHUNK_SIZE, RUN_CHUNK_SIZE
from blindai.pb import securedexchange_pb2, untrusted_pb2
from blindai.pb.untrusted_pb2_grpc import AttestationStub
from blindai.server.launcher import LocalServer
from blindai.server.models import session_options

MIB = 1024 * 1024
I64 = blindai.ModelDatumType.I64


@dataclass(frozen=True)
class Row:
    """One line of the table: a measurement against its floor."""

    what: str
    value: str
    floor: str
    ratio: float | None
    target: str
    met: bool | None
    note: str = ""


@dataclass(frozen=True)
class Bound:
    """What the transport alone costs for one row: the same bytes or calls
    through gRPC and TLS to a handler that does nothing (``_transport``)."""

    what: str
    value: str
    meaning: str


def connect(server: LocalServer) -> blindai.BlindAiClient:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", blindai.SimulationModeWarning)
        return blindai.connect("127.0.0.1", simulation=True, **server.ports)


def info_stub(server: LocalServer) -> tuple[AttestationStub, grpc.Channel]:
    """A stub of the untrusted port: GetServerInfo is the TLS round-trip floor."""
    options = [("grpc.ssl_target_name_override", "blindai-srv")]
    channel = grpc.secure_channel(
        f"127.0.0.1:{server.untrusted_port}",
        grpc.ssl_channel_credentials(server.host_certificate.read_bytes()),
        options,
    )
    return AttestationStub(channel), channel


def _ratio_row(
    what: str,
    value: Summary,
    floor: Summary,
    limit: float,
    unit: str = "ms",
    scale: float = 1e3,
) -> Row:
    ratio = value.p50 / floor.p50
    return Row(
        what,
        value.text(unit, scale),
        floor.text(unit, scale),
        ratio,
        f"≤ {limit:g}×",
        ratio <= limit,
    )


# --- rows 1 and 2: the image CNN -------------------------------------------------


def cnn_rows(
    server: LocalServer, transport: TransportServer, rounds: int, bounds: list[Bound]
) -> list[Row]:
    """Rounds alternate floor, numpy input, list input and the transport of
    each input's bytes alone, so that load from elsewhere on the machine falls
    on all alike. The floor session has the server's own onnxruntime settings."""
    model = image_cnn()
    x = np.random.default_rng(1).standard_normal(CNN_SHAPE, dtype=np.float32)
    flat = x.ravel().tolist()
    local = ort.InferenceSession(
        model, sess_options=session_options(0), providers=["CPUExecutionProvider"]
    )
    samples: dict[str, list[float]] = {
        "floor": [],
        "numpy": [],
        "list": [],
        "numpy bytes": [],
        "list bytes": [],
    }
    channel = transport.channel()
    with connect(server) as client:
        client.upload_model(model, shape=CNN_SHAPE)
        calls = {
            "floor": lambda: local.run(None, {"x": x}),
            "numpy": lambda: client.run_model(x),
            "list": lambda: client.run_model(flat),
            "numpy bytes": sink_call(channel, x.tobytes(), RUN_CHUNK_SIZE),
            "list bytes": sink_call(channel, cbor2.dumps(flat), RUN_CHUNK_SIZE),
        }
        for _ in range(3):
            for call in calls.values():
                call()
        for _ in range(rounds):
            for name, call in calls.items():
                samples[name].append(_seconds(call))
    channel.close()
    floor = Summary.of(samples["floor"])
    for name, limit, size in (
        ("numpy", 1.15, x.nbytes),
        ("list", 2.0, len(cbor2.dumps(flat))),
    ):
        moved = Summary.of(samples[f"{name} bytes"])
        allowed = floor.p50 * (limit - 1)
        bounds.append(
            Bound(
                f"the {name} input's {size / 1e6:.1f} MB in "
                f"{RUN_CHUNK_SIZE // 1024} KiB messages, dropped on arrival",
                moved.text("ms", 1e3),
                f"{moved.p50 / allowed:.0%} of the {allowed * 1e3:.1f} ms over "
                f"the floor that ≤ {limit:g}× allows",
            )
        )
    return [
        _ratio_row(
            "image CNN 1×3×480×480 f32, end-to-end p50, numpy input (tensor-v1)",
            Summary.of(samples["numpy"]),
            floor,
            1.15,
        ),
        _ratio_row(
            "the same, flat Python list input (0.3 path, CBOR)",
            Summary.of(samples["list"]),
            floor,
            2.0,
        ),
    ]


def _seconds(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


# --- rows 3 and 4: the small model -----------------------------------------------


def _digits_model() -> tuple[bytes, np.ndarray]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
    from digits import train_digits_model

    onnx_bytes, x_test, _, _ = train_digits_model()
    return onnx_bytes, x_test


def small_model_rows(
    server: LocalServer,
    transport: TransportServer,
    rounds: int,
    seconds: float,
    repeats: int,
    bounds: list[Bound],
) -> list[Row]:
    model, x_test = _digits_model()
    row = x_test[0].reshape(1, 64)
    stub, channel = info_stub(server)
    request = untrusted_pb2.GetServerInfoRequest()
    with connect(server) as client:
        client.upload_model(model, shape=(1, 64), dtype_out=blindai.ModelDatumType.I64)
        floor = timed(lambda: stub.GetServerInfo(request), rounds, warmup=20)
        value = timed(lambda: client.run_model(row), rounds, warmup=20)
    channel.close()
    single = _ratio_row("small model (digits), end-to-end p50", value, floor, 1.5)
    return [single, _concurrent_row(server, transport, row, seconds, repeats, bounds)]


def _throughput(calls: list[Callable[[], object]], seconds: float) -> float:
    """Calls per second of all ``calls`` run at once, each in its own thread."""
    start = threading.Barrier(len(calls) + 1)
    counts = [0] * len(calls)
    deadline = [0.0]

    def worker(index: int) -> None:
        start.wait()
        while time.perf_counter() < deadline[0]:
            calls[index]()
            counts[index] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    began = time.perf_counter()
    deadline[0] = began + seconds
    start.wait()
    for thread in threads:
        thread.join()
    return sum(counts) / (time.perf_counter() - began)


def _concurrent_row(
    server: LocalServer,
    transport: TransportServer,
    row: np.ndarray,
    seconds: float,
    repeats: int,
    bounds: list[Bound],
    callers: int = 16,
) -> Row:
    clients = [connect(server) for _ in range(callers)]
    stubs = [info_stub(server) for _ in range(callers)]
    channels = [transport.channel() for _ in range(callers)]
    request = untrusted_pb2.GetServerInfoRequest()
    runs = [lambda c=c: c.run_model(row) for c in clients]
    infos = [lambda s=s: s.GetServerInfo(request) for s, _ in stubs]
    # A request of the size our client sends for this input.
    size = len(_run_request(clients[0], row).SerializeToString())
    empties = [empty_call(channel, bytes(size)) for channel in channels]
    for calls in (runs, infos, empties):
        _throughput(calls, 0.5)
    rates: dict[str, list[float]] = {"run": [], "info": [], "empty": []}
    for _ in range(repeats):
        rates["info"].append(_throughput(infos, seconds))
        rates["run"].append(_throughput(runs, seconds))
        rates["empty"].append(_throughput(empties, seconds))
    for client in clients:
        client.close_connection()
    for _, channel in stubs:
        channel.close()
    for channel in channels:
        channel.close()
    value, floor = Summary.of(rates["run"]), Summary.of(rates["info"])
    empty = Summary.of(rates["empty"])
    bounds.append(
        Bound(
            f"{callers} callers of a call that does nothing, with a {size}-byte "
            "request and a deadline, as ours",
            empty.text("calls/s", digits=0),
            f"{empty.p50 / floor.p50:.2f}× the GetServerInfo floor; the rest of "
            "the gap is the work of each run, on both sides",
        )
    )
    ratio = value.p50 / floor.p50
    return Row(
        f"{callers} callers at once on the small model",
        value.text("calls/s", digits=0),
        floor.text("calls/s", digits=0),
        ratio,
        "≥ 0.8×",
        ratio >= 0.8,
    )


def _run_request(
    client: blindai.BlindAiClient, row: np.ndarray
) -> securedexchange_pb2.RunModelRequest:
    data, field, meta = client._input(row, False)
    return securedexchange_pb2.RunModelRequest(**{field: bytes(data)}, **meta)


# --- rows 5 and 6: the 400 MB upload ----------------------------------------------


def upload_rows(
    server: LocalServer,
    transport: TransportServer,
    model_dir: Path,
    size: int,
    repeats: int,
    bounds: list[Bound],
) -> list[Row]:
    model = large_embedding(size)
    tiny = large_embedding(4096)
    sessions: list[float] = []

    def floor_once() -> None:
        hashlib.sha256(model).digest()
        started = time.perf_counter()
        ort.InferenceSession(model, providers=["CPUExecutionProvider"])
        sessions.append(time.perf_counter() - started)

    floor = timed(floor_once, repeats, warmup=0)
    channel = transport.channel()
    moved = timed(sink_call(channel, model, CHUNK_SIZE), repeats, warmup=0)
    channel.close()
    # A session cannot be made before the last byte is in: hashing can overlap
    # the transfer, session creation cannot.
    least = moved.p50 + float(np.median(sessions))
    bounds.append(
        Bound(
            f"the {size / 1e6:.0f} MB model in {CHUNK_SIZE // MIB} MiB messages, "
            "dropped on arrival",
            moved.text("s"),
            f"with the floor's session creation after it: {least:.1f} s, "
            f"{least / floor.p50:.2f}× the floor (target ≤ 1.2×)",
        )
    )
    pid = int(server.info["pid"])
    times, peaks = [], []
    with connect(server) as client:
        for _ in range(repeats):
            client.upload_model(tiny, shape=(1, 8), dtype=I64)  # frees the last model
            time.sleep(0.5)
            idle = _memory.footprint(pid, model_dir)
            with _memory.PeakSampler(pid, model_dir) as sampler:
                started = time.perf_counter()
                client.upload_model(model, shape=(1, 8), dtype=I64)
                times.append(time.perf_counter() - started)
            peaks.append(sampler.peak - idle)
        client.upload_model(tiny, shape=(1, 8), dtype=I64)
    value = Summary.of(times)
    memory = Summary.of([p / len(model) for p in peaks])
    mb = len(model) / 1e6
    return [
        _ratio_row(
            f"uploading a {mb:.0f} MB model (wall time)",
            value,
            floor,
            1.2,
            unit="s",
            scale=1.0,
        ),
        Row(
            "server peak memory during that upload, above idle (process tree "
            "RSS + files it wrote)",
            f"{memory.p50 * mb:.0f} MB (max {max(peaks) / 1e6:.0f} MB, n={memory.n})",
            f"{mb:.0f} MB",
            memory.p50,
            "≤ 2.5×",
            memory.p50 <= 2.5,
        ),
    ]


# --- row 7: quote verification ----------------------------------------------------


def verify_row(rounds: int) -> Row:
    what = "verifying one quote with its collateral"
    try:
        from benchmarks import bench_verify
    except ImportError as exc:
        return Row(what, f"not measured ({exc})", "—", None, "report ms", None)
    import tomllib

    for case in sorted(bench_verify.FIXTURES.glob("*")):
        meta = case / "case.toml"
        if not meta.exists() or tomllib.loads(meta.read_text())["tee"] != "sgx":
            continue
        try:
            samples = bench_verify.measure(case, rounds)
        except Exception:  # noqa: BLE001 (a case that does not verify: try the next)
            continue
        ms = Summary.of(samples)
        return Row(
            what,
            ms.text("ms", digits=2) + f" ({case.name})",
            "—",
            None,
            "report ms",
            None,
        )
    return Row(
        what,
        f"not measured (no verifiable case in {bench_verify.FIXTURES})",
        "—",
        None,
        "report ms",
        None,
    )
