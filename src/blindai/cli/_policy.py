"""``blindai policy show`` and ``blindai policy create``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from blindai.attestation import Policy
from blindai.attestation.claims import DEBUG_FLAG, INIT_FLAG
from blindai.cli._common import CommandError, add_json_option, emit

EXAMPLES = """\
examples:
  blindai policy show policy.toml
  blindai policy create --mr-enclave 4000659c...7247 --output policy.toml
  blindai policy create --sigstruct blindai.sig --min-isv-svn 2 -o policy.toml
"""

#: Defaults of ``policy create``: the values BlindAI 0.3's generated policies used
#: for a 64-bit enclave (MODE64BIT set, DEBUG decided by ``allow_debug`` alone).
DEFAULTS = {
    "misc_select_hex": "0x0",
    "misc_mask_hex": "0xffffffff",
    "attributes_flags_hex": "0x4",
    "attributes_xfrm_hex": "0x3",
    "attributes_mask_flags_hex": "0xfffffffffffffffd",
    "attributes_mask_xfrm_hex": "0xffffffffffffff1b",
}

_FLAG_NAMES = [
    (INIT_FLAG, "INIT"),
    (DEBUG_FLAG, "DEBUG"),
    (0x4, "MODE64BIT"),
    (0x10, "PROVISIONKEY"),
    (0x20, "EINITTOKEN_KEY"),
    (0x80, "KSS"),
]


def add_parser(subparsers: Any) -> None:
    """Register ``policy show`` and ``policy create``."""
    policy = subparsers.add_parser(
        "policy",
        help="explain or write a policy.toml",
        description="A policy says which attested enclaves a client accepts.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = policy.add_subparsers(dest="action", required=True, metavar="ACTION")
    show = actions.add_parser(
        "show",
        help="explain a policy in words",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    show.add_argument("file", type=Path, help="the policy.toml")
    add_json_option(show)
    show.set_defaults(handler=show_command)
    create = actions.add_parser(
        "create",
        help="write a policy from explicit values or a SIGSTRUCT",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_create_options(create)
    create.set_defaults(handler=create_command)


def _add_create_options(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--mr-enclave", help="the enclave measurement, 64 hex digits")
    add(
        "--sigstruct",
        type=Path,
        help="take MRENCLAVE, MRSIGNER, ISVPRODID, ISVSVN and the attributes "
        "from an enclave's SIGSTRUCT (.sig) file",
    )
    add("--mr-signer", help="accept only this signer (64 hex digits)")
    add("--isv-prod-id", type=int, help="accept only this ISVPRODID")
    add("--min-isv-svn", type=int, help="lowest ISVSVN accepted")
    add(
        "--allow-debug",
        action="store_true",
        help="accept DEBUG enclaves (their memory is readable: never for real data)",
    )
    add(
        "--accept-tcb-status",
        action="append",
        metavar="STATUS",
        help="a TCB status to accept (repeatable; default UpToDate and "
        "SWHardeningNeeded)",
    )
    add(
        "--accept-advisory",
        action="append",
        metavar="ID",
        help="an advisory ID to accept (repeatable; when given, any other "
        "advisory is refused)",
    )
    for key, default in DEFAULTS.items():
        option = "--" + key.removesuffix("_hex").replace("_", "-")
        add(option, dest=key, help=f"hex (default {default})")
    add("-o", "--output", type=Path, help="file to write (default: stdout)")
    add("--force", action="store_true", help="overwrite --output if it exists")


def show_command(args: argparse.Namespace) -> int:
    """Explain the policy file in words."""
    policy = Policy.from_file(args.file)
    result = {
        "file": str(args.file),
        "toml": policy.to_toml(),
        "explanation": explain(policy),
    }
    emit(
        args,
        result,
        [
            f"{args.file} accepts an enclave when:",
            *("  - " + line for line in explain(policy)),
        ],
    )
    return 0


def explain(policy: Policy) -> list[str]:
    """One sentence per condition the policy imposes."""
    lines = [f"its MRENCLAVE is {policy.mr_enclave.hex()} (this exact build)"]
    if policy.mr_signer is None:
        lines.append("its MRSIGNER is anything (the signer is not constrained)")
    else:
        lines.append(f"its MRSIGNER is {policy.mr_signer.hex()}")
    if policy.isv_prod_id is not None:
        lines.append(f"its ISVPRODID is {policy.isv_prod_id}")
    if policy.min_isv_svn is not None:
        lines.append(f"its ISVSVN is at least {policy.min_isv_svn}")
    lines.append(
        "it may be a DEBUG enclave: its memory is readable by the host; never "
        "for real data"
        if policy.allow_debug
        else "it is not a debug enclave"
    )
    lines.append(f"MISCSELECT & {policy.misc_mask:#x} == {policy.misc_select:#x}")
    flags = policy.attributes_flags | INIT_FLAG
    lines.append(
        f"ATTRIBUTES.FLAGS & {policy.attributes_mask_flags:#x} == "
        f"{flags:#x} ({_flag_names(flags)})"
    )
    lines.append(
        f"ATTRIBUTES.XFRM & {policy.attributes_mask_xfrm:#x} == "
        f"{policy.attributes_xfrm:#x}"
    )
    statuses = ", ".join(s.value for s in policy.accepted_tcb_statuses)
    lines.append(f"the platform's TCB status is one of: {statuses}")
    if policy.accepted_advisory_ids is None:
        lines.append("any security advisory listed for the platform is tolerated")
    else:
        ids = ", ".join(policy.accepted_advisory_ids) or "none"
        lines.append(f"the platform's advisories are all among: {ids}")
    if policy.min_tcb_evaluation_data_number is not None:
        lines.append(
            "the TCB info comes from Intel's evaluation number "
            f"{policy.min_tcb_evaluation_data_number} or later"
        )
    else:
        lines.append(
            "TCB info of any evaluation is accepted while valid (the host may relay "
            "an older one with a kinder status)"
        )
    return lines


def _flag_names(flags: int) -> str:
    names = [name for bit, name in _FLAG_NAMES if flags & bit]
    return " | ".join(names) or "none"


def create_command(args: argparse.Namespace) -> int:
    """Build the policy (validated by :meth:`Policy.from_dict`) and write it."""
    table = _from_sigstruct(args) if args.sigstruct else {}
    table.update(_explicit_values(args, table))
    if "mr_enclave" not in table:
        raise CommandError("give --mr-enclave HEX or --sigstruct FILE.sig")
    text = Policy.from_dict(table).to_toml()
    if args.output is None:
        sys.stdout.write(text)
        return 0
    if args.output.exists() and not args.force:
        raise CommandError(f"{args.output} exists; pass --force to overwrite it")
    args.output.write_text(text)
    print(f"policy written to {args.output}", file=sys.stderr)
    return 0


def _explicit_values(args: argparse.Namespace, base: dict[str, Any]) -> dict[str, Any]:
    table: dict[str, Any] = {}
    for key, default in DEFAULTS.items():
        value = getattr(args, key)
        if value is not None or key not in base:
            table[key] = value if value is not None else default
    for key in ("mr_enclave", "mr_signer", "isv_prod_id", "min_isv_svn"):
        if getattr(args, key) is not None:
            table[key] = getattr(args, key)
    if args.allow_debug or "allow_debug" not in base:
        table["allow_debug"] = args.allow_debug
    if args.accept_tcb_status:
        table["accepted_tcb_statuses"] = args.accept_tcb_status
    if args.accept_advisory:
        table["accepted_advisory_ids"] = args.accept_advisory
    return table


def _from_sigstruct(args: argparse.Namespace) -> dict[str, Any]:
    try:
        from blindai._sigstruct import Sigstruct
    except ImportError:
        raise CommandError(
            "--sigstruct is not available in this installation (no SIGSTRUCT "
            "reader); give --mr-enclave and the other values explicitly"
        ) from None
    values: dict[str, Any] = Sigstruct.from_file(args.sigstruct).policy_values(
        allow_debug=args.allow_debug
    )
    return values
