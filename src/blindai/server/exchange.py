"""The attested port: ``securedexchange.Exchange`` (SendModel, RunModel).

Every refusal is a gRPC status naming the problem. Logs carry sizes, durations,
hashes and error classes, never model bytes, inputs or outputs.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import grpc
import numpy as np
from google.protobuf.timestamp_pb2 import Timestamp

from blindai.pb import securedexchange_pb2 as pb
from blindai.pb import securedexchange_pb2_grpc as pb_grpc
from blindai.server import inputs, upload
from blindai.server.config import ServerConfig
from blindai.server.guard import guarded
from blindai.server.keys import EnclaveIdentity
from blindai.server.models import (
    ModelStore,
    RequestError,
    exhausted,
    invalid,
    load_model,
    session_maker,
)
from blindai.server.watchdog import StreamWatchdog
from blindai.tensors import ModelDatumType, encode_array

log = logging.getLogger(__name__)


class ExchangeService(pb_grpc.ExchangeServicer):
    """Model upload and inference."""

    def __init__(
        self, config: ServerConfig, identity: EnclaveIdentity, store: ModelStore
    ) -> None:
        self._config = config
        self._identity = identity
        self._store = store
        self._uploads = threading.BoundedSemaphore(config.max_concurrent_uploads)
        self._watchdog = StreamWatchdog(config.idle_timeout)

    # --- SendModel -------------------------------------------------------------

    @guarded
    def SendModel(  # noqa: N802 (gRPC method name)
        self, request_iterator: Iterator[pb.SendModelRequest], context: Any
    ) -> pb.SendModelReply:
        started = time.perf_counter()
        try:
            if not self._uploads.acquire(blocking=False):
                count = self._config.max_concurrent_uploads
                busy = "an upload is" if count == 1 else f"{count} uploads are"
                raise exhausted(f"{busy} already in progress; try again later")
            try:
                first, data = self._receive_model(
                    self._watchdog.watch(request_iterator, context)
                )
                try:
                    model = load_model(
                        data,  # already loaded when it was streamed
                        list(first.input_fact),
                        first.datum,
                        first.datum_output,
                        inference_threads=self._config.inference_threads,
                        spinning=self._config.inference_spinning,
                        max_elements=self._config.max_input_size,
                    )
                finally:
                    # The session holds its own copy: no model file outlives it.
                    data.discard()
            finally:
                self._uploads.release()
        except RequestError as err:
            return _abort(context, "SendModel", err)
        self._store.replace(model)
        log.info(
            "model loaded: %d bytes, sha256 %s, input %s %s, output %s, %.0f ms",
            model.size,
            model.model_hash.hex(),
            model.datum.name,
            list(model.shape),
            model.datum_output.name,
            (time.perf_counter() - started) * 1e3,
        )
        payload = pb.Payload(
            header=_header(),
            send_model_payload=pb.SendModelPayload(
                model_hash=model.model_hash, input_fact=list(model.shape)
            ),
        ).SerializeToString()
        return pb.SendModelReply(
            payload=payload, signature=self._sign(first.sign, payload)
        )

    def _receiver(self, length: int) -> upload.ModelWriter | upload.StreamingLoad:
        """Where the upload goes: onnxruntime, through a pipe, while it arrives
        (simulation mode), or a file of the model directory (hardware mode:
        named pipes may cross the host under a library OS)."""
        model_dir = self._config.model_dir
        if self._config.simulation and model_dir is not None:
            create = session_maker(
                self._config.inference_threads, self._config.inference_spinning
            )
            with contextlib.suppress(OSError):  # no named pipes here
                return upload.StreamingLoad(length, model_dir, create)
        return upload.ModelWriter(length, model_dir)

    def _receive_model(
        self, requests: Iterator[pb.SendModelRequest]
    ) -> tuple[pb.SendModelRequest, upload.ReceivedModel | upload.StreamedModel]:
        limit = self._config.max_model_size
        first = next(requests, None)
        if first is None:
            raise invalid("the upload stream was empty")
        length = first.length
        # The limit comes first, whatever else is wrong with the request.
        if length > limit or len(first.data) > limit:
            size = max(length, len(first.data))
            raise exhausted(
                f"the model is {size} bytes; this server accepts at most {limit}"
            )
        if length == 0:
            raise invalid("the upload declared a length of 0 bytes")
        writer = self._receiver(length)
        try:
            for request in itertools.chain((first,), requests):
                chunk = request.data
                end = writer.received + len(chunk)
                if end > length:
                    if end > limit:
                        raise exhausted(
                            f"the model exceeds this server's limit of {limit} bytes"
                        )
                    raise invalid(
                        f"more model bytes arrived than the declared length of {length}"
                    )
                writer.write(chunk)
            if writer.received != length:
                raise invalid(
                    f"the upload ended after {writer.received} of the "
                    f"declared {length} bytes"
                )
        except BaseException:
            writer.abort()
            raise
        return first, writer.finish()

    # --- RunModel --------------------------------------------------------------

    @guarded
    def RunModel(  # noqa: N802 (gRPC method name)
        self, request_iterator: Iterator[pb.RunModelRequest], context: Any
    ) -> pb.RunModelReply:
        requests = self._watchdog.watch(request_iterator, context)
        return self._run(requests, context, "RunModel")

    @guarded
    def RunModelUnary(  # noqa: N802 (gRPC method name)
        self, request: pb.RunModelRequest, context: Any
    ) -> pb.RunModelReply:
        """RunModel with the whole input in one message ("unary-run-v1"): a
        stream of one, with the same checks and the same reply. Its callers
        are newer than 0.3, so no reply is too large for them."""
        return self._run(iter((request,)), context, "RunModelUnary")

    def _run(
        self, requests: Iterator[pb.RunModelRequest], context: Any, rpc: str
    ) -> pb.RunModelReply:
        started = time.perf_counter()
        model = self._store.current
        try:
            if model is None:
                raise RequestError(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    "no model has been uploaded yet; call upload_model first",
                )
            received = inputs.receive(requests, self._config.max_input_size)
            array = inputs.to_model_array(received, model)
            output = model.run(
                array, timeout=self._config.run_timeout, on_end=context.add_callback
            )
            out_bytes = encode_array(_as_type(output, model.datum_output))
            payload = pb.Payload(
                header=_header(),
                run_model_payload=pb.RunModelPayload(
                    output=out_bytes,
                    datum_output=model.datum_output.value,
                    model_hash=model.model_hash,
                    output_shape=list(output.shape),
                    **received.commitments(),  # type: ignore[arg-type]
                ),
            ).SerializeToString()
            if rpc == "RunModel":
                # The signature and the reply's framing add under 100 bytes.
                limit = inputs.reply_limit(received, context.invocation_metadata())
                inputs.check_reply_size(len(payload) + 100, limit)
        except RequestError as err:
            return _abort(context, rpc, err)
        log.info(
            "run: %d input bytes (%s), %d output bytes, %.1f ms",
            len(received.raw),
            "tensor" if received.tensor else "CBOR",
            len(out_bytes),
            (time.perf_counter() - started) * 1e3,
        )
        first = received.first
        return pb.RunModelReply(
            payload=payload, signature=self._sign(first.sign, payload)
        )

    def _sign(self, requested: bool, payload: bytes) -> bytes:
        return self._identity.sign(payload) if requested else b""


def _as_type(output: np.ndarray, datum: ModelDatumType) -> np.ndarray:
    if output.dtype != datum.numpy_dtype:
        return output.astype(datum.numpy_dtype)
    return output


def _header() -> pb.PayloadHeader:
    # From the clock's nanoseconds: Timestamp.GetCurrentTime goes through a
    # datetime and costs ~11 µs of a small model's ~120 µs handler (measured).
    now = time.time_ns()
    stamp = Timestamp(seconds=now // 1_000_000_000, nanos=now % 1_000_000_000)
    return pb.PayloadHeader(issued_at=stamp)


def _abort(context: Any, rpc: str, err: RequestError) -> Any:
    log.info("%s refused: %s", rpc, err.code.name)
    context.abort(err.code, err.message)
