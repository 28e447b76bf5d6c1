"""Reading proof and quote files for ``inspect`` and ``verify`` (no verification)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

from blindai.cli._common import iso
from blindai.errors import AttestationError, SignatureError
from blindai.pb.securedexchange_pb2 import Payload
from blindai.responses import RunModelResponse, SignedResponse, UploadModelResponse

#: First bytes of an SGX ECDSA quote v3: version 3, attestation key type 2.
QUOTE_MAGIC = bytes.fromhex("03000200")

_KINDS = {"send_model_payload": "upload", "run_model_payload": "inference"}


def load_proof(path: Path) -> tuple[SignedResponse, str]:
    """The proof in ``path`` as the response class of its kind, and that kind.

    Raises :class:`SignatureError` when the file is not a proof.
    """
    data = path.read_bytes()
    generic = SignedResponse().load_from_bytes(data)
    try:
        oneof = Payload.FromString(generic.payload or b"").WhichOneof("payload")
    except Exception:  # noqa: BLE001 (protobuf raises DecodeError and others)
        oneof = None
    if oneof is None:
        raise SignatureError(
            f"{path} is not a proof: its payload is neither an "
            "upload nor an inference payload"
        )
    kind = _KINDS[oneof]
    cls = UploadModelResponse if kind == "upload" else RunModelResponse
    return cls().load_from_bytes(data), kind


def describe_proof(proof: SignedResponse, kind: str) -> dict[str, Any]:
    """What a proof holds, read without verifying anything."""
    info: dict[str, Any] = {
        "type": "proof",
        "kind": kind,
        "mode": "simulation" if proof.is_simulation_mode() else "attested",
        "issued_at": iso(_issued_at(proof)),
        "issued_at_source": "the server host's clock (not verified)",
        "signed": proof.is_signed(),
        "signature_bytes": len(proof.signature or b""),
    }
    if isinstance(proof, UploadModelResponse):
        info["model_hash"] = proof.model_hash.hex()
        info["input_shape"] = list(proof.input_shape)
    elif isinstance(proof, RunModelResponse):
        info.update(_run_fields(proof))
    if proof.attestation is not None:
        info["attestation"] = describe_attestation(proof.attestation)
    return info


def _issued_at(proof: SignedResponse) -> dt.datetime | None:
    try:
        return proof.issued_at
    except SignatureError:
        return None


def _run_fields(proof: RunModelResponse) -> dict[str, Any]:
    run = Payload.FromString(proof.payload or b"").run_model_payload
    fields: dict[str, Any] = {
        "input_hash": run.input_hash.hex() or None,
        "model_hash": run.model_hash.hex() or None,
        "output_shape": list(run.output_shape) or None,
        "output_dtype": _datum_name(run.datum_output),
        "output_decodable": proof.output is not None,
    }
    if run.HasField("input_tensor"):
        fields["input_hash"] = run.input_tensor_hash.hex() or None
        fields["input_tensor"] = {
            "dtype": _datum_name(run.input_tensor.datum),
            "shape": list(run.input_tensor.shape),
        }
    return fields


def _datum_name(value: int) -> str:
    from blindai.tensors import ModelDatumType

    try:
        return ModelDatumType(value).name
    except ValueError:
        return f"unknown ({value})"


def describe_attestation(reply: Any) -> dict[str, Any]:
    """The quote's and the collateral's fields, unverified."""
    held = bytes(reply.enclave_held_data)
    info: dict[str, Any] = {"verified": False}
    info["quote"] = describe_quote(bytes(reply.quote))
    report_data = info["quote"].get("report_data", "")
    held_hash = hashlib.sha256(held).hexdigest()
    info["enclave_certificate_sha256"] = held_hash
    info["report_data_binds_certificate"] = report_data.startswith(held_hash)
    info["tcb_info"] = _document_dates(reply.collateral.tcb_info, "tcbInfo")
    info["qe_identity"] = _document_dates(
        reply.collateral.qe_identity, "enclaveIdentity"
    )
    return info


def _document_dates(text: str, key: str) -> dict[str, Any]:
    try:
        body = json.loads(text)[key]
        return {
            "issue_date": body.get("issueDate"),
            "next_update": body.get("nextUpdate"),
            "version": body.get("version"),
        }
    except (ValueError, KeyError, TypeError, AttributeError):
        return {"error": "absent or not a JSON document"}


def describe_quote(raw: bytes) -> dict[str, Any]:
    """An SGX quote's fields read with :meth:`Quote.from_bytes`, NOT verified."""
    from blindai.attestation import Quote

    try:
        quote = Quote.from_bytes(raw)
    except AttestationError as err:
        return {"verified": False, "error": str(err)}
    report = quote.report
    flags = int.from_bytes(report.attributes[:8], "little")
    return {
        "verified": False,
        "version": quote.version,
        "mr_enclave": report.mr_enclave.hex(),
        "mr_signer": report.mr_signer.hex(),
        "attributes": report.attributes.hex(),
        "attributes_flags": f"{flags:#x}",
        "attributes_xfrm": f"{int.from_bytes(report.attributes[8:], 'little'):#x}",
        "debug": bool(flags & 0x2),
        "misc_select": f"{report.misc_select:#x}",
        "isv_prod_id": report.isv_prod_id,
        "isv_svn": report.isv_svn,
        "report_data": report.report_data.hex(),
        "qe_svn": quote.qe_svn,
        "pce_svn": quote.pce_svn,
        "fmspc": _fmspc(quote),
    }


def _fmspc(quote: Any) -> str | None:
    from blindai.attestation import pki
    from blindai.attestation.pck import read_pck_extension
    from blindai.attestation.quote import CERT_DATA_PCK_CHAIN

    if quote.cert_data_type != CERT_DATA_PCK_CHAIN:
        return None
    try:
        leaf = pki.load_pem_chain(quote.cert_data, "PCK chain")[0]
        return read_pck_extension(leaf).fmspc.hex()
    except (AttestationError, IndexError, ValueError):
        return None
