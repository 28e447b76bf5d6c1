"""Loading ONNX models and running them with onnxruntime.

One model is served at a time, as in BlindAI 0.3. A new upload replaces it
atomically: runs hold a reference to the model they started with and finish on it.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
import numpy as np
import onnxruntime as ort

from blindai.server import upload
from blindai.server.upload import ReceivedModel
from blindai.tensors import ModelDatumType

log = logging.getLogger(__name__)

#: The largest number of dimensions an input shape may have.
MAX_RANK = 16
#: onnxruntime's FATAL level: its messages may quote tensor values (an
#: out-of-range index, say), and what it logs goes to the server's log.
_ORT_SILENT = 4


class RequestError(Exception):
    """A request that is refused with a gRPC status and a message for the client."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def invalid(message: str) -> RequestError:
    return RequestError(grpc.StatusCode.INVALID_ARGUMENT, message)


def exhausted(message: str) -> RequestError:
    return RequestError(grpc.StatusCode.RESOURCE_EXHAUSTED, message)


@dataclass(frozen=True)
class ModelSpec:
    """What the uploader declared about the model."""

    shape: tuple[int, ...]
    datum: ModelDatumType
    datum_output: ModelDatumType


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """A model ready to run; ``session.run`` is safe to call from many threads."""

    session: ort.InferenceSession = field(repr=False)
    model_hash: bytes
    size: int
    input_name: str
    output_name: str
    shape: tuple[int, ...]
    datum: ModelDatumType
    datum_output: ModelDatumType

    @property
    def element_count(self) -> int:
        return math.prod(self.shape)

    def run(
        self,
        array: np.ndarray,
        *,
        timeout: float = 0.0,
        on_end: Callable[[Callable[[], None]], object] | None = None,
    ) -> np.ndarray:
        """Run on ``array`` (already of the model's shape and type).

        ``on_end`` registers a callback to be called when the call ends (gRPC's
        ``context.add_callback``): a caller that gives up stops its inference,
        which would otherwise hold its worker thread until the model finishes.
        """
        options = ort.RunOptions()
        options.log_severity_level = _ORT_SILENT
        if on_end is not None and on_end(lambda: _end(options)) is False:
            _end(options)  # the call has ended already
        _IN_FLIGHT.add(options)
        if timeout > 0:
            _DEADLINES.add(options, timeout)
        started = time.perf_counter()
        try:
            (out,) = self.session.run(
                [self.output_name], {self.input_name: array}, run_options=options
            )
        except Exception as exc:  # noqa: BLE001 (onnxruntime raises its own types)
            if _SHUTDOWN.is_set():
                raise RequestError(
                    grpc.StatusCode.UNAVAILABLE, "the server is shutting down"
                ) from None
            if options in _ENDED:
                raise RequestError(
                    grpc.StatusCode.CANCELLED,
                    "the call ended before its inference finished",
                ) from None
            if options.terminate:
                raise RequestError(
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                    f"inference stopped after the server's limit of {timeout:g} s",
                ) from None
            log.info("inference failed: %s", type(exc).__name__)
            raise invalid(f"the model failed on this input: {_short(exc)}") from None
        finally:
            _IN_FLIGHT.discard(options)
            _ENDED.discard(options)
            _DEADLINES.discard(options)
        log.debug("inference took %.1f ms", (time.perf_counter() - started) * 1e3)
        return np.asarray(out)


def _terminate(options: ort.RunOptions) -> None:
    options.terminate = True


def _end(options: ort.RunOptions) -> None:
    """Stop the inference of a call that has ended (its client gave up)."""
    _ENDED.add(options)
    options.terminate = True


class _Deadlines:
    """Stops inferences that pass their time limit, late by at most a tick.

    One thread checks every run: a ``threading.Timer`` per run started and
    stopped a thread on each call, about 0.3 ms of a small model's call
    (measured in-process: 405 µs per call with timers, see benchmarks/README.md).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: dict[ort.RunOptions, float] = {}
        self._tick = 1.0
        self._thread: threading.Thread | None = None

    def add(self, options: ort.RunOptions, timeout: float) -> None:
        with self._lock:
            self._runs[options] = time.monotonic() + timeout
            # A tick of a tenth of the shortest limit keeps every stop close.
            self._tick = min(self._tick, timeout / 10)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._watch, daemon=True, name="run-deadlines"
                )
                self._thread.start()

    def discard(self, options: ort.RunOptions) -> None:
        with self._lock:
            self._runs.pop(options, None)

    def _watch(self) -> None:
        while True:
            time.sleep(self._tick)
            now = time.monotonic()
            with self._lock:
                late = [o for o, end in self._runs.items() if end <= now]
                for options in late:
                    del self._runs[options]
            for options in late:
                _terminate(options)


#: The options of the inferences in progress (set operations are atomic).
_IN_FLIGHT: set[ort.RunOptions] = set()
#: Those of them whose call has ended.
_ENDED: set[ort.RunOptions] = set()
_DEADLINES = _Deadlines()
_SHUTDOWN = threading.Event()


def terminate_runs() -> int:
    """Stop every inference in progress, for shutdown; returns how many.

    A cancelled call does not stop its inference: the thread would run on, and
    hold the process's exit, until the model finishes.
    """
    _SHUTDOWN.set()
    running = list(_IN_FLIGHT)
    for options in running:
        options.terminate = True
    return len(running)


def _short(exc: Exception, limit: int = 300) -> str:
    text = " ".join(str(exc).split())
    # onnxruntime names the file it loaded: the client need not learn where
    # this server keeps its uploads.
    text = _UPLOAD_PATH.sub("the upload", text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


_UPLOAD_PATH = re.compile(r"/\S*" + re.escape(upload.UPLOAD_PREFIX) + r"[^\s:]*")


class ModelStore:
    """Holds the current model; replacing it is atomic."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._model: LoadedModel | None = None

    @property
    def current(self) -> LoadedModel | None:
        return self._model

    def replace(self, model: LoadedModel) -> None:
        with self._lock:
            self._model = model


def session_options(
    inference_threads: int, spinning: bool = False
) -> ort.SessionOptions:
    """onnxruntime settings of every session: ``inference_threads`` intra-op
    threads (0 = one per core), one inter-op thread, and no busy-waiting by
    idle threads unless ``spinning``: with several calls at once on few cores,
    spinning threads take the CPU that the other calls need (measured with
    ``make bench``, see benchmarks/README.md)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = inference_threads
    options.add_session_config_entry(
        "session.intra_op.allow_spinning", "1" if spinning else "0"
    )
    options.add_session_config_entry(
        "session.inter_op.allow_spinning", "1" if spinning else "0"
    )
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = _ORT_SILENT
    return options


def session_maker(
    inference_threads: int = 0, spinning: bool = False
) -> Callable[[str | bytes], ort.InferenceSession]:
    """What creates a session of a model (its path or bytes)."""
    options = session_options(inference_threads, spinning)
    return lambda onnx: ort.InferenceSession(
        onnx, sess_options=options, providers=["CPUExecutionProvider"]
    )


def load_model(
    data: bytes | ReceivedModel | upload.StreamedModel,
    spec_shape: list[int],
    datum: int,
    datum_output: int,
    *,
    inference_threads: int = 0,
    max_elements: int | None = None,
    spinning: bool = False,
) -> LoadedModel:
    """Check and load a model; raises :class:`RequestError` with the reason.

    ``max_elements`` bounds the input's element count (an input of more elements
    than the input size limit allows could never be sent).
    """
    in_type = _datum(datum, "input")
    out_type = _datum(datum_output, "output")
    source: ReceivedModel | upload.StreamedModel
    if isinstance(data, upload.StreamedModel):
        source = data  # checked and loaded while it arrived
    else:
        source = (
            data if isinstance(data, ReceivedModel) else ReceivedModel.of_bytes(data)
        )
        check_no_external_data(source)
    try:
        if isinstance(source, upload.StreamedModel):
            session = source.session()
        else:
            session = upload.create_session(
                source, session_maker(inference_threads, spinning)
            )
    except upload.ModelFormatError as exc:
        raise invalid(str(exc)) from None
    except Exception as exc:  # noqa: BLE001 (onnxruntime raises its own types)
        log.info("model rejected by onnxruntime: %s", type(exc).__name__)
        raise invalid(f"the model could not be loaded: {_short(exc)}") from None
    inputs = session.get_inputs()
    if len(inputs) != 1:
        names = ", ".join(i.name for i in inputs)
        raise invalid(
            f"the model must have exactly one input; it has {len(inputs)} ({names})"
        )
    model_in = inputs[0]
    model_out = session.get_outputs()[0]
    _check_type(model_in.type, in_type, "input", "dtype")
    _check_type(model_out.type, out_type, "output", "dtype_out")
    shape = resolve_shape(spec_shape, model_in.shape, max_elements)
    return LoadedModel(
        session=session,
        model_hash=source.sha256,
        size=source.size,
        input_name=model_in.name,
        output_name=model_out.name,
        shape=shape,
        datum=in_type,
        datum_output=out_type,
    )


def _datum(value: int, what: str) -> ModelDatumType:
    try:
        return ModelDatumType(value)
    except ValueError:
        raise invalid(f"unknown {what} element type {value}") from None


def _check_type(onnx_type: str, declared: ModelDatumType, what: str, arg: str) -> None:
    try:
        actual = ModelDatumType.from_onnx(onnx_type)
    except ValueError as exc:
        raise invalid(f"the model's {what} type is not supported: {exc}") from None
    if actual != declared:
        raise invalid(
            f"the model's first {what} is {actual.name} ({onnx_type}) but the "
            f"upload declared {declared.name}; upload with {arg}="
            f"ModelDatumType.{actual.name}"
        )


def resolve_shape(
    declared: list[int], model_shape: list[Any], max_elements: int | None = None
) -> tuple[int, ...]:
    """The input shape: the uploader's, checked against the model's declaration.

    Without a declared shape the model's own is used, with a symbolic leading
    (batch) dimension taken as 1. A shape of more than ``max_elements`` elements
    is refused with OUT_OF_RANGE.
    """
    shape = _resolve(declared, model_shape)
    if max_elements is not None:
        _check_element_count(shape, max_elements)
    return shape


def _check_element_count(shape: tuple[int, ...], max_elements: int) -> None:
    count = 1
    for dim in shape:
        count *= dim
        # Stop at once: the product of 16 int32 dimensions is a 496-bit number.
        if count > max_elements:
            raise RequestError(
                grpc.StatusCode.OUT_OF_RANGE,
                f"input shape {list(shape)} has more elements than the "
                f"{max_elements} an input within this server's size limit can hold",
            )


def _resolve(declared: list[int], model_shape: list[Any]) -> tuple[int, ...]:
    if len(declared) > MAX_RANK:
        raise invalid(
            f"the input shape has {len(declared)} dimensions; at most "
            f"{MAX_RANK} are allowed"
        )
    for dim in declared:
        if dim <= 0:
            raise invalid(
                f"input shape {list(declared)} has a dimension that is not positive"
            )
    if not declared:
        return _shape_from_model(model_shape)
    if len(declared) != len(model_shape):
        raise invalid(
            f"input shape {list(declared)} has {len(declared)} dimensions "
            f"but the model's input has {len(model_shape)} ({model_shape})"
        )
    for dim, model_dim in zip(declared, model_shape, strict=True):
        if isinstance(model_dim, int) and model_dim > 0 and dim != model_dim:
            raise invalid(
                f"input shape {list(declared)} does not fit the model's "
                f"input shape {model_shape}"
            )
    return tuple(declared)


def _shape_from_model(model_shape: list[Any]) -> tuple[int, ...]:
    shape = []
    for index, dim in enumerate(model_shape):
        if isinstance(dim, int) and dim > 0:
            shape.append(dim)
        elif index == 0:
            shape.append(1)
        else:
            raise invalid(
                f"the model's input shape {model_shape} has a symbolic "
                f"dimension {dim!r}; send the input shape with the upload"
            )
    return tuple(shape)


def check_no_external_data(data: bytes | ReceivedModel) -> None:
    """Refuse models whose tensors name external files: a model may not read the
    server's files. Reads only the protobuf's headers (no ``ModelProto`` copy)."""
    source = (
        data
        if isinstance(data, ReceivedModel)
        else ReceivedModel(b"", len(data), data=data)
    )
    try:
        upload.check_no_external_data(source)
    except upload.ModelFormatError as exc:
        raise invalid(str(exc)) from None
