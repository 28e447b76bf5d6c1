"""``blindai inspect``: what a proof or a quote file holds, unverified."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from blindai.cli._common import add_json_option, emit
from blindai.cli._proofs import QUOTE_MAGIC, describe_proof, describe_quote, load_proof

EXAMPLES = """\
examples:
  blindai inspect run.proof
  blindai inspect quote.bin --json

Nothing is verified here: use `blindai verify` for a verdict.
"""

_QUOTE_LABELS = [
    ("mr_enclave", "MRENCLAVE"),
    ("mr_signer", "MRSIGNER"),
    ("attributes", "ATTRIBUTES"),
    ("attributes_flags", "  FLAGS"),
    ("attributes_xfrm", "  XFRM"),
    ("debug", "debug enclave"),
    ("misc_select", "MISCSELECT"),
    ("isv_prod_id", "ISVPRODID"),
    ("isv_svn", "ISVSVN"),
    ("report_data", "report data"),
    ("qe_svn", "QE SVN"),
    ("pce_svn", "PCE SVN"),
    ("fmspc", "FMSPC"),
]


def add_parser(subparsers: Any) -> None:
    """Register ``inspect``."""
    parser = subparsers.add_parser(
        "inspect",
        help="show what a proof or an SGX quote holds (unverified)",
        description="Print the fields of a proof file or of a raw SGX quote, "
        "WITHOUT verifying anything.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("file", type=Path, help="a proof file or a raw quote")
    add_json_option(parser)
    parser.set_defaults(handler=inspect_command)


def inspect_command(args: argparse.Namespace) -> int:
    """Describe the file; exit 0 when it could be read."""
    data = args.file.read_bytes()
    if data.startswith(QUOTE_MAGIC):
        info = {"type": "quote", **describe_quote(data)}
        lines = [f"{args.file}: SGX quote (UNVERIFIED)", *_quote_lines(info)]
    else:
        proof, kind = load_proof(args.file)
        info = describe_proof(proof, kind)
        lines = [f"{args.file}: {kind} proof ({info['mode']})", *_proof_lines(info)]
    emit(args, info, lines)
    return 0


def _proof_lines(info: dict[str, Any]) -> list[str]:
    lines = [
        f"  issued at:      {info['issued_at']} (server host's clock, not verified)",
        f"  signed:         {'yes' if info['signed'] else 'no'}"
        + (f" ({info['signature_bytes']}-byte signature)" if info["signed"] else ""),
    ]
    for key, label in [
        ("model_hash", "model sha256"),
        ("input_shape", "input shape"),
        ("input_hash", "input sha256"),
        ("input_tensor", "input tensor"),
        ("output_shape", "output shape"),
        ("output_dtype", "output type"),
    ]:
        if key in info:
            lines.append(f"  {label + ':':<15} {_text(info[key])}")
    if info.get("output_decodable") is False:
        lines.append("  output:         not of the 0.3.0 layout (cannot be decoded)")
    if "attestation" in info:
        lines.extend(_attestation_lines(info["attestation"]))
    else:
        lines.append(
            "  attestation:    NONE (simulation mode: proves nothing about the code)"
        )
    return lines


def _attestation_lines(att: dict[str, Any]) -> list[str]:
    lines = ["  attestation (UNVERIFIED, read as found in the file):"]
    lines.extend("  " + line for line in _quote_lines(att["quote"]))
    binds = "yes" if att["report_data_binds_certificate"] else "NO"
    lines.append(
        f"    enclave certificate sha256 {att['enclave_certificate_sha256']}"
        f" (report data starts with it: {binds})"
    )
    for name in ("tcb_info", "qe_identity"):
        doc = att[name]
        if "error" in doc:
            lines.append(f"    {name}: {doc['error']}")
        else:
            lines.append(
                f"    {name} v{doc['version']}: issued {doc['issue_date']},"
                f" next update {doc['next_update']}"
            )
    return lines


def _quote_lines(quote: dict[str, Any]) -> list[str]:
    if "error" in quote:
        return [f"  not a readable SGX quote: {quote['error']}"]
    return [f"  {label + ':':<15} {_text(quote[key])}" for key, label in _QUOTE_LABELS]


def _text(value: Any) -> str:
    if value is None:
        return "(absent)"
    if isinstance(value, dict):
        return ", ".join(f"{key} {item}" for key, item in value.items())
    if isinstance(value, bool):
        return "YES" if value else "no"
    return str(value)
