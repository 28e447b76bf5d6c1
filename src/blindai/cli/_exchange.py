"""``blindai upload`` and ``blindai run``: one connection per process."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np

from blindai.cli._common import (
    add_connection_options,
    add_json_option,
    check_writable,
    connection_kwargs,
    emit,
    key_bytes,
    load_input,
    save_signing_key,
)
from blindai.cli._progress import progress_bar
from blindai.client import SIMULATION_WARNING, BlindAiClient
from blindai.responses import SignedResponse
from blindai.tensors import ModelDatumType

log = logging.getLogger(__name__)

_DTYPES = [member.name for member in ModelDatumType]

UPLOAD_EXAMPLES = """\
examples:
  blindai upload model.onnx --shape 1,64 --dtype F32 --dtype-out I64 --simulation
  blindai upload model.onnx --shape 1,64 --policy policy.toml \\
      --certificate host_server.pem --host server.example --proof upload.proof
"""

RUN_EXAMPLES = """\
examples:
  blindai run --input image.npy --simulation --proof run.proof
  blindai run --input image.json --policy policy.toml \\
      --certificate host_server.pem --host server.example --json
"""


def add_parsers(subparsers: Any) -> None:
    """Register ``upload`` and ``run``."""
    upload = subparsers.add_parser(
        "upload",
        help="upload an ONNX model to the server",
        description="Connect (attesting the server unless --simulation) and "
        "upload an ONNX model. The server holds one model: this replaces it.",
        epilog=UPLOAD_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    upload.add_argument("model", type=Path, help="the ONNX model file")
    upload.add_argument(
        "--shape",
        type=_shape,
        help="input shape, comma-separated (default: the model's)",
    )
    upload.add_argument(
        "--dtype",
        choices=_DTYPES,
        default="F32",
        help="input element type (default %(default)s)",
    )
    upload.add_argument(
        "--dtype-out",
        choices=_DTYPES,
        default="F32",
        help="output element type (default %(default)s)",
    )
    _add_proof_options(upload)
    upload.set_defaults(handler=upload_command)

    run = subparsers.add_parser(
        "run",
        help="run the uploaded model on one input",
        description="Connect (attesting the server unless --simulation), send "
        "one input and print the model's first output.",
        epilog=RUN_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument(
        "--input",
        type=Path,
        required=True,
        help="the input: FILE.npy (numpy array) or FILE.json (list)",
    )
    _add_proof_options(run)
    run.set_defaults(handler=run_command)


def _add_proof_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sign", action="store_true", help="ask for a response signed by the enclave"
    )
    parser.add_argument(
        "--proof",
        type=Path,
        help="save the signed response here (implies --sign); "
        "in simulation mode the signing key goes to FILE.key",
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="never draw a progress bar"
    )
    add_json_option(parser)
    add_connection_options(parser)


def _shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a shape like 1,64") from None
    if any(dim <= 0 for dim in shape):
        raise argparse.ArgumentTypeError(f"{text!r}: dimensions must be positive")
    return shape


def _connect(args: argparse.Namespace) -> BlindAiClient:
    client = BlindAiClient()
    client.connect_server(args.host, **connection_kwargs(args))
    if client.simulation_mode:
        # The client's SimulationModeWarning is filtered here: one plain line.
        log.warning(SIMULATION_WARNING)
    return client


def upload_command(args: argparse.Namespace) -> int:
    """Upload a model; print its hash and, with ``--proof``, save the proof."""
    sign = args.sign or args.proof is not None
    if args.proof is not None:
        check_writable(args.proof)
    bar = progress_bar("uploading", sys.stderr, not (args.no_progress or args.json))
    with _connect(args) as client:
        try:
            response = client.upload_model(
                args.model,
                shape=args.shape,
                dtype=ModelDatumType[args.dtype],
                dtype_out=ModelDatumType[args.dtype_out],
                sign=sign,
                progress=bar,
            )
        finally:
            if bar is not None:
                bar.close()
        result: dict[str, Any] = {
            "model": str(args.model),
            "model_hash": response.model_hash.hex(),
            "input_shape": list(response.input_shape),
            "signed": response.is_signed(),
            "simulation": client.simulation_mode,
        }
        lines = [
            f"uploaded {args.model}: sha256 {result['model_hash']}, "
            f"input shape {result['input_shape']}"
        ]
        _save(args, client, response, result, lines)
    emit(args, result, lines)
    return 0


def run_command(args: argparse.Namespace) -> int:
    """Run the model on the input file; print the output."""
    data = load_input(args.input)
    sign = args.sign or args.proof is not None
    if args.proof is not None:
        check_writable(args.proof)
    with _connect(args) as client:
        response = client.run_model(data, sign=sign)
        output = response.output_array()
        result: dict[str, Any] = {
            "output": np.asarray(output).ravel().tolist(),
            "output_shape": list(output.shape),
            "output_dtype": response.output_datum.name,
            "signed": response.is_signed(),
            "simulation": client.simulation_mode,
        }
        lines = [
            f"output ({response.output_datum.name}, shape {list(output.shape)}):",
            np.array2string(output),
        ]
        _save(args, client, response, result, lines)
    emit(args, result, lines)
    return 0


def _save(
    args: argparse.Namespace,
    client: BlindAiClient,
    response: SignedResponse,
    result: dict[str, Any],
    lines: list[str],
) -> None:
    """Save the proof (and a simulation server's key beside it)."""
    if args.proof is None:
        return
    response.save_to_file(args.proof)
    result["proof"] = str(args.proof)
    lines.append(f"proof saved to {args.proof}")
    if client.simulation_mode and client.enclave_signing_key is not None:
        key_path = save_signing_key(args.proof, client.enclave_signing_key)
        key_hex = key_bytes(client.enclave_signing_key).hex()
        result["signing_key"] = key_hex
        result["signing_key_file"] = str(key_path)
        lines.append(f"signing key (simulation, NOT attested): {key_hex}")
        lines.append(
            f"  saved to {key_path}; verify with --allow-simulation "
            f"--signing-key {key_path}"
        )
