"""``blindai verify``: check a saved proof and explain the verdict field by field.

The verdict is the library's: the attestation is checked by
:func:`~blindai.attestation.verify_attestation`, the content by the response's
own ``validate``. This module only collects what each step saw, for a person.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from blindai._certs import signing_key_from_certificate
from blindai.cli._common import (
    CommandError,
    add_json_option,
    add_trusted_root_option,
    emit,
    iso,
    load_input,
    parse_hex,
    parse_instant,
    read_signing_key,
    read_trusted_root,
)
from blindai.cli._proofs import load_proof
from blindai.errors import AttestationError, SignatureError
from blindai.responses import RunModelResponse, SignedResponse, UploadModelResponse

EXAMPLES = """\
examples:
  blindai verify upload.proof --policy policy.toml --model model.onnx
  blindai verify run.proof --policy policy.toml --input image.npy \\
      --at 2022-04-11T13:05:28Z
  blindai verify run.proof --input image.npy --allow-simulation \\
      --signing-key run.proof.key
  blindai verify upload.proof --policy policy.toml --skip-content-check

exit status: 0 when every check passed, 1 otherwise. The content is part of
the check: without --input (run proof) or --model/--model-hash (upload proof)
the proof is NOT VALID, unless --skip-content-check is given.
"""

SKIPPED_CONTENT_NOTICE = (
    "CONTENT NOT CHECKED (--skip-content-check): this proof was compared with "
    "no input and no model. It shows only that the signing key signed some "
    "content, not that it is yours."
)

SIMULATION_NOTICE = (
    "SIMULATION PROOF: no enclave attested the key that signed it. It proves only "
    "that whoever held that key produced this payload, NOT which code ran, NOT "
    "that the data stayed confidential."
)


@dataclass
class Check:
    """One step of the verification: ``ok`` is None when it was not run."""

    name: str
    ok: bool | None
    summary: str
    details: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ok": self.ok,
            "summary": self.summary,
            "details": self.details,
        }


def add_parser(subparsers: Any) -> None:
    """Register ``verify``."""
    parser = subparsers.add_parser(
        "verify",
        help="check a saved proof (exit 0 valid, 1 not)",
        description="Check a proof saved by `blindai upload/run --proof` or by "
        "save_to_file(): the attestation against a policy at an instant, the "
        "signature, and the content against the model or input you name.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("proof", type=Path, help="the proof file")
    add("--policy", type=Path, help="policy.toml (required for an attested proof)")
    add(
        "--at",
        help="instant at which the attestation must be valid, ISO-8601 "
        "with a timezone (default: now)",
    )
    model = parser.add_mutually_exclusive_group()
    model.add_argument("--model", type=Path, help="the ONNX model that was uploaded")
    model.add_argument("--model-hash", help="its SHA-256, in hex")
    add("--input", type=Path, help="the input of a run proof (.npy or .json)")
    add(
        "--allow-simulation",
        action="store_true",
        help="accept a simulation-mode proof (it proves nothing about the code)",
    )
    add(
        "--signing-key",
        help="a simulation proof's key: 64 hex digits or a "
        ".key file saved beside the proof",
    )
    add(
        "--skip-content-check",
        action="store_true",
        help="accept the proof without comparing it with any input or model: "
        "it then proves only that an enclave signed some content",
    )
    add_trusted_root_option(parser)
    add_json_option(parser)
    parser.set_defaults(handler=verify_command)


def verify_command(args: argparse.Namespace) -> int:
    """Run the checks, print them, return 0 when all that ran passed."""
    proof, kind = load_proof(args.proof)
    _refuse_unused(args, kind, proof.is_simulation_mode())
    at = parse_instant(args.at)
    model_hash = _model_hash(args)
    checks = [
        Check(
            "signed",
            proof.is_signed(),
            "yes" if proof.is_signed() else "no: the response is unsigned",
        )
    ]
    if proof.is_simulation_mode():
        key, check = _simulation_key(args)
    else:
        key, check = _attestation(proof, args, at)
    checks.append(check)
    signature = _signature(proof, key)
    checks.append(signature)
    # Content is compared only under a signature that holds.
    trusted = key if signature.ok else None
    checks.append(_content(proof, kind, trusted, args, model_hash))
    valid = all(c.ok is not False for c in checks) and checks[2].ok is True
    if checks[3].ok is None and not args.skip_content_check:
        # Fail closed: a script's `blindai verify ... && trust` must not accept
        # a proof whose content nobody compared.
        valid = False
    _report(args, kind, proof, checks, valid)
    return 0 if valid else 1


def _refuse_unused(args: argparse.Namespace, kind: str, simulation: bool) -> None:
    """An option this proof would not use is a mistake to name, not to drop."""
    if kind == "upload" and args.input is not None:
        raise CommandError(
            "--input is for run proofs; an upload proof is compared with "
            "--model or --model-hash"
        )
    if simulation and args.at is not None:
        raise CommandError(
            "--at dates an attestation's collateral; a simulation proof has "
            "none: leave --at out"
        )
    if not simulation and args.signing_key is not None:
        raise CommandError(
            "--signing-key is for simulation proofs; an attested proof's key "
            "comes from its attestation: leave --signing-key out"
        )


def _model_hash(args: argparse.Namespace) -> bytes | None:
    if args.model is not None:
        return hashlib.sha256(args.model.read_bytes()).digest()
    if args.model_hash is not None:
        return parse_hex(args.model_hash, "--model-hash", 32)
    return None


# --- the steps -------------------------------------------------------------------


def _simulation_key(args: argparse.Namespace) -> tuple[Ed25519PublicKey | None, Check]:
    if not args.allow_simulation:
        raise CommandError(
            "this is a simulation-mode proof; pass --allow-simulation (and "
            "--signing-key) to check it anyway: it proves nothing about the code"
        )
    if args.policy is not None:
        raise CommandError(
            "this is a simulation-mode proof: it has no attestation to check "
            f"against --policy {args.policy}; leave --policy out"
        )
    if args.signing_key is None:
        raise CommandError(
            "a simulation proof is checked against the key its server printed: "
            f"--signing-key HEX or --signing-key {args.proof}.key"
        )
    key = Ed25519PublicKey.from_public_bytes(read_signing_key(args.signing_key))
    check = Check(
        "attestation",
        None,
        "NONE: simulation-mode proof",
        ["no quote: the key checked is the one given with --signing-key"],
    )
    return key, check


def _attestation(
    proof: SignedResponse, args: argparse.Namespace, at: dt.datetime | None
) -> tuple[Ed25519PublicKey | None, Check]:
    from blindai.attestation import Policy, verify_attestation

    if args.policy is None:
        raise CommandError(
            "an attested proof is checked against a policy: --policy policy.toml"
        )
    policy = Policy.from_file(args.policy)
    assert proof.attestation is not None
    try:
        verified = verify_attestation(
            proof.attestation,
            policy,
            at=at,
            trusted_root=read_trusted_root(args.trusted_root),
        )
    except AttestationError as err:
        details = [f"{type(err).__name__}: {err}", *_unverified_identity(proof, policy)]
        return None, Check("attestation", False, "FAILED", details)
    key = signing_key_from_certificate(verified.enclave_certificate_der)
    return key, Check(
        "attestation", True, "verified", _claims_details(verified.quote, policy)
    )


def _claims_details(quote: Any, policy: Any) -> list[str]:
    statuses = ", ".join(s.value for s in policy.accepted_tcb_statuses)
    signer = (
        policy.mr_signer.hex()
        if policy.mr_signer is not None
        else "any (not constrained)"
    )
    root = (
        "Intel SGX Root CA"
        if quote.uses_intel_root
        else f"a NON-Intel root (sha256 {quote.trusted_root_sha256})"
    )
    return [
        f"verified at {iso(quote.verified_at)} against {root}",
        f"TCB status {quote.tcb_status} (platform {quote.platform_tcb_status}, "
        f"QE {quote.qe_tcb_status}); policy accepts {statuses}",
        "advisories: " + (", ".join(quote.advisory_ids) or "none"),
        f"MRENCLAVE {quote.mr_enclave.hex()} (policy {policy.mr_enclave.hex()})",
        f"MRSIGNER  {quote.mr_signer.hex()} (policy {signer})",
        f"debug enclave: {'YES' if quote.debug else 'no'} (policy "
        f"{'allows' if policy.allow_debug else 'refuses'} debug)",
        f"ISVPRODID {quote.isv_prod_id}, ISVSVN {quote.isv_svn}, FMSPC {quote.fmspc}",
        f"collateral valid from {iso(quote.collateral_valid_from)} until "
        f"{iso(quote.collateral_expires)}",
    ]


def _unverified_identity(proof: SignedResponse, policy: Any) -> list[str]:
    from blindai.attestation import Quote

    assert proof.attestation is not None
    try:
        quote = Quote.from_bytes(proof.attestation.quote)
    except AttestationError:
        return []
    return [
        f"MRENCLAVE {quote.report.mr_enclave.hex()} (unverified; policy "
        f"{policy.mr_enclave.hex()})"
    ]


def _signature(proof: SignedResponse, key: Ed25519PublicKey | None) -> Check:
    if not proof.is_signed():
        return Check("signature", False, "absent")
    if key is None:
        return Check("signature", None, "not checked: no trusted key")
    try:
        key.verify(proof.signature or b"", proof.payload or b"")
    except InvalidSignature:
        return Check("signature", False, "INVALID for this payload and key")
    return Check("signature", True, "valid (Ed25519 over the payload)")


def _content(
    proof: SignedResponse,
    kind: str,
    key: Ed25519PublicKey | None,
    args: argparse.Namespace,
    model_hash: bytes | None,
) -> Check:
    if key is None or not proof.is_signed():
        return Check("content", None, "not checked: the signature does not hold")
    try:
        if isinstance(proof, UploadModelResponse):
            return _upload_content(proof, key, model_hash)
        if isinstance(proof, RunModelResponse):
            return _run_content(proof, key, args, model_hash)
    except SignatureError as err:
        return Check("content", False, "MISMATCH", [str(err)])
    return Check("content", False, f"unknown payload kind {kind!r}")


def _upload_content(
    proof: UploadModelResponse, key: Ed25519PublicKey, model_hash: bytes | None
) -> Check:
    seen = proof.model_hash.hex()
    if model_hash is None:
        return Check(
            "content",
            None,
            "not checked (give --model or --model-hash)",
            [f"the proof names model sha256 {seen}"],
        )
    proof.validate(
        model_hash,
        validate_quote=False,
        enclave_signing_key=key,
        allow_simulation_mode=True,
        _warn=False,
    )
    return Check("content", True, "model hash matches", [f"model sha256 {seen}"])


def _run_content(
    proof: RunModelResponse,
    key: Ed25519PublicKey,
    args: argparse.Namespace,
    model_hash: bytes | None,
) -> Check:
    if args.input is None:
        return Check("content", None, "not checked (give --input)")
    proof.validate(
        load_input(args.input),
        validate_quote=False,
        enclave_signing_key=key,
        allow_simulation_mode=True,
        model_hash=model_hash,
        _warn=False,
    )
    details = ["input hash matches " + str(args.input)]
    if model_hash is not None:
        details.append(f"model sha256 {model_hash.hex()} matches")
    else:
        details.append("model not checked (give --model or --model-hash)")
    return Check("content", True, "input matches", details)


# --- the report ------------------------------------------------------------------


_MARKS = {True: "ok  ", False: "FAIL", None: "--  "}


def _report(
    args: argparse.Namespace,
    kind: str,
    proof: SignedResponse,
    checks: list[Check],
    valid: bool,
) -> None:
    mode = "simulation" if proof.is_simulation_mode() else "attested"
    result = {
        "proof": str(args.proof),
        "kind": kind,
        "mode": mode,
        "valid": valid,
        "checks": [c.as_dict() for c in checks],
    }
    lines = [f"{args.proof}: {kind} proof ({mode})"]
    if proof.is_simulation_mode():
        lines.append("WARNING: " + SIMULATION_NOTICE)
    for check in checks:
        lines.append(f"  [{_MARKS[check.ok]}] {check.name}: {check.summary}")
        lines.extend(f"         {detail}" for detail in check.details)
    content_unchecked = checks[3].ok is None
    result["content_check_skipped"] = content_unchecked and args.skip_content_check
    if result["content_check_skipped"] and valid:
        lines.append("WARNING: " + SKIPPED_CONTENT_NOTICE)
    verdict = _verdict(checks, valid, proof.is_simulation_mode())
    if content_unchecked and not args.skip_content_check and checks[2].ok:
        verdict += ": " + _content_hint(kind)
    lines.append(verdict)
    emit(args, result, lines)


def _content_hint(kind: str) -> str:
    what = "--model or --model-hash" if kind == "upload" else "--input"
    return (
        f"the content was not checked; give {what} to compare the proof with "
        "it, or --skip-content-check to accept it unchecked"
    )


def _verdict(checks: list[Check], valid: bool, simulation: bool) -> str:
    if not valid:
        return "NOT VALID"
    unchecked = [c.name for c in checks if c.ok is None and c.name != "attestation"]
    verdict = "VALID"
    if simulation:
        verdict += " as a SIMULATION proof (nothing about the code is proven)"
    if unchecked:
        verdict += f"; not checked: {', '.join(unchecked)}"
    return verdict
