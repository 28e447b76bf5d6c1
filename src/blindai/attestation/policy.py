"""The enclave policy: which verified enclaves a client accepts (DCAP-FORMATS.md §8).

Reads and writes ``policy.toml`` in the BlindAI 0.3 format, plus optional keys:

=============================  ======================================================
``mr_enclave``                 64 hex digits; the enclave measurement (required)
``misc_select_hex``            ``(MISCSELECT & misc_mask) == misc_select`` (required)
``misc_mask_hex``              32-bit mask for the above (required)
``attributes_flags_hex``       ``(FLAGS & mask_flags) == flags | INIT`` (required)
``attributes_xfrm_hex``        ``(XFRM & mask_xfrm) == xfrm`` (required)
``attributes_mask_flags_hex``  64-bit mask (required)
``attributes_mask_xfrm_hex``   64-bit mask (required)
``allow_debug``                accept enclaves with ATTRIBUTES.DEBUG set (required)
``mr_signer``                  64 hex digits (optional)
``isv_prod_id``                exact ISVPRODID (optional)
``min_isv_svn``                lowest ISVSVN accepted (optional)
``accepted_tcb_statuses``      default ``["UpToDate", "SWHardeningNeeded"]`` (0.3's)
``accepted_advisory_ids``      when given, any other advisory ID is refused, and
                               so is TCB info v2 (which lists no advisory IDs)
``min_tcb_evaluation_data_``   lowest TCB evaluation data number accepted
``number``                     (optional): older collateral stays valid for a while
                               after Intel re-evaluates, and the host chooses which
                               to relay
=============================  ======================================================

The ``*_hex`` values are integers written in hex, compared with the report's
little-endian fields, exactly as 0.3 did with ``int(x, 16).to_bytes(n, "little")``.
"""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from blindai.attestation.claims import INIT_FLAG, VerifiedQuote
from blindai.attestation.tcb import TcbStatus
from blindai.errors import PolicyFormatError, PolicyMismatchError

DEFAULT_TCB_STATUSES = (TcbStatus.UP_TO_DATE, TcbStatus.SW_HARDENING_NEEDED)

_HEX_KEYS = {  # toml key -> (attribute, bit width)
    "misc_select_hex": ("misc_select", 32),
    "misc_mask_hex": ("misc_mask", 32),
    "attributes_flags_hex": ("attributes_flags", 64),
    "attributes_xfrm_hex": ("attributes_xfrm", 64),
    "attributes_mask_flags_hex": ("attributes_mask_flags", 64),
    "attributes_mask_xfrm_hex": ("attributes_mask_xfrm", 64),
}
_REQUIRED = ("mr_enclave", *_HEX_KEYS, "allow_debug")
_OPTIONAL = (
    "mr_signer",
    "isv_prod_id",
    "min_isv_svn",
    "accepted_tcb_statuses",
    "accepted_advisory_ids",
    "min_tcb_evaluation_data_number",
)


@dataclass(frozen=True)
class Policy:
    """Which enclaves to accept, checked against a :class:`VerifiedQuote`.

    Load it with :meth:`from_file`, :meth:`from_toml` or :meth:`from_dict`; they
    raise :class:`PolicyFormatError` (also a ``ValueError``) naming the bad key.
    """

    mr_enclave: bytes
    misc_select: int
    misc_mask: int
    attributes_flags: int
    attributes_xfrm: int
    attributes_mask_flags: int
    attributes_mask_xfrm: int
    allow_debug: bool
    mr_signer: bytes | None = None
    isv_prod_id: int | None = None
    min_isv_svn: int | None = None
    accepted_tcb_statuses: tuple[TcbStatus, ...] = DEFAULT_TCB_STATUSES
    accepted_advisory_ids: tuple[str, ...] | None = None
    min_tcb_evaluation_data_number: int | None = None

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Policy:
        """Load a ``policy.toml``; ``FileNotFoundError`` when it does not exist."""
        data = Path(path).read_bytes()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PolicyFormatError(f"policy file {path} is not UTF-8") from exc
        return cls.from_toml(text)

    @classmethod
    def from_toml(cls, text: str) -> Policy:
        """Parse a policy from TOML text."""
        try:
            table = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise PolicyFormatError(f"the policy is not valid TOML: {exc}") from exc
        return cls.from_dict(table)

    @classmethod
    def from_dict(cls, table: dict[str, Any]) -> Policy:
        """Build a policy from a mapping with the ``policy.toml`` keys."""
        unknown = sorted(set(table) - set(_REQUIRED) - set(_OPTIONAL))
        if unknown:
            raise PolicyFormatError(
                f"unknown policy key {unknown[0]!r} (known keys: "
                f"{', '.join(_REQUIRED + _OPTIONAL)})"
            )
        for key in _REQUIRED:
            if key not in table:
                raise PolicyFormatError(f"the policy lacks the required key {key!r}")
        values: dict[str, Any] = {
            attribute: _hex_int(table[key], key, bits)
            for key, (attribute, bits) in _HEX_KEYS.items()
        }
        values["mr_enclave"] = _measurement(table["mr_enclave"], "mr_enclave")
        values["allow_debug"] = _bool(table["allow_debug"], "allow_debug")
        if "mr_signer" in table:
            values["mr_signer"] = _measurement(table["mr_signer"], "mr_signer")
        for key in ("isv_prod_id", "min_isv_svn"):
            if key in table:
                values[key] = _u16(table[key], key)
        if "accepted_tcb_statuses" in table:
            values["accepted_tcb_statuses"] = _statuses(table["accepted_tcb_statuses"])
        if "accepted_advisory_ids" in table:
            values["accepted_advisory_ids"] = _names(
                table["accepted_advisory_ids"], "accepted_advisory_ids"
            )
        key = "min_tcb_evaluation_data_number"
        if key in table:
            values[key] = _count(table[key], key)
        return cls(**values)

    def to_toml(self) -> str:
        """The policy as ``policy.toml`` text that :meth:`from_toml` reads back."""
        lines = [
            "# Enclave policy: which attested enclaves this client accepts.",
            f'mr_enclave = "{self.mr_enclave.hex()}"',
        ]
        for key, (attribute, _) in _HEX_KEYS.items():
            lines.append(f'{key} = "{getattr(self, attribute):#x}"')
        lines.append(f"allow_debug = {'true' if self.allow_debug else 'false'}")
        if self.mr_signer is not None:
            lines.append(f'mr_signer = "{self.mr_signer.hex()}"')
        for key in ("isv_prod_id", "min_isv_svn"):
            if getattr(self, key) is not None:
                lines.append(f"{key} = {getattr(self, key)}")
        statuses = [str(s) for s in self.accepted_tcb_statuses]
        lines.append(f"accepted_tcb_statuses = {json.dumps(statuses)}")
        if self.accepted_advisory_ids is not None:
            ids = list(self.accepted_advisory_ids)
            lines.append(f"accepted_advisory_ids = {json.dumps(ids)}")
        if self.min_tcb_evaluation_data_number is not None:
            number = self.min_tcb_evaluation_data_number
            lines.append(f"min_tcb_evaluation_data_number = {number}")
        return "\n".join(lines) + "\n"

    def check(self, quote: VerifiedQuote) -> None:
        """Accept ``quote`` or raise :class:`PolicyMismatchError` naming the field
        and both values."""
        self._check_identity(quote)
        self._check_attributes(quote)
        self._check_tcb(quote)

    def _check_identity(self, quote: VerifiedQuote) -> None:
        if quote.mr_enclave != self.mr_enclave:
            raise PolicyMismatchError(
                f"MRENCLAVE {quote.mr_enclave.hex()} is not the policy's "
                f"{self.mr_enclave.hex()}"
            )
        if self.mr_signer is not None and quote.mr_signer != self.mr_signer:
            raise PolicyMismatchError(
                f"MRSIGNER {quote.mr_signer.hex()} is not the policy's "
                f"{self.mr_signer.hex()}"
            )
        if self.isv_prod_id is not None and quote.isv_prod_id != self.isv_prod_id:
            raise PolicyMismatchError(
                f"ISVPRODID {quote.isv_prod_id} is not the policy's {self.isv_prod_id}"
            )
        if self.min_isv_svn is not None and quote.isv_svn < self.min_isv_svn:
            raise PolicyMismatchError(
                f"ISVSVN {quote.isv_svn} is below the policy's minimum "
                f"{self.min_isv_svn}"
            )

    def _check_attributes(self, quote: VerifiedQuote) -> None:
        if quote.debug and not self.allow_debug:
            raise PolicyMismatchError(
                f"the enclave runs in debug mode (FLAGS {quote.flags:#x}) and the "
                "policy does not allow debug enclaves"
            )
        misc = quote.misc_select & self.misc_mask
        if misc != self.misc_select:
            raise PolicyMismatchError(
                f"MISCSELECT {quote.misc_select:#x} masked with {self.misc_mask:#x} "
                f"is {misc:#x}, not the policy's {self.misc_select:#x}"
            )
        flags = quote.flags & self.attributes_mask_flags
        wanted_flags = self.attributes_flags | INIT_FLAG
        if flags != wanted_flags:
            raise PolicyMismatchError(
                f"ATTRIBUTES.FLAGS {quote.flags:#x} masked with "
                f"{self.attributes_mask_flags:#x} is {flags:#x}, not the policy's "
                f"{wanted_flags:#x} (flags | INIT)"
            )
        xfrm = quote.xfrm & self.attributes_mask_xfrm
        if xfrm != self.attributes_xfrm:
            raise PolicyMismatchError(
                f"ATTRIBUTES.XFRM {quote.xfrm:#x} masked with "
                f"{self.attributes_mask_xfrm:#x} is {xfrm:#x}, not the policy's "
                f"{self.attributes_xfrm:#x}"
            )

    def _check_tcb(self, quote: VerifiedQuote) -> None:
        minimum = self.min_tcb_evaluation_data_number
        if minimum is not None and quote.tcb_evaluation_data_number < minimum:
            raise PolicyMismatchError(
                f"the TCB info has evaluation data number "
                f"{quote.tcb_evaluation_data_number}, below the policy's minimum "
                f"{minimum}: older collateral can give a kinder TCB status"
            )
        if quote.tcb_status not in self.accepted_tcb_statuses:
            accepted = [s.value for s in self.accepted_tcb_statuses]
            raise PolicyMismatchError(
                f"TCB status {quote.tcb_status} (platform "
                f"{quote.platform_tcb_status}, QE {quote.qe_tcb_status}) is not "
                f"one the policy accepts: {accepted}"
            )
        if self.accepted_advisory_ids is None:
            return
        if quote.tcb_info_version < 3:
            # TCB info v2 (PCS API v3) lists no advisory IDs at all, and the host
            # chooses which version to relay: an empty list proves nothing.
            raise PolicyMismatchError(
                f"the policy restricts advisory IDs, but the TCB info is version "
                f"{quote.tcb_info_version}, which lists none; version 3 (PCS API "
                "v4) is needed to check them"
            )
        refused = [a for a in quote.advisory_ids if a not in self.accepted_advisory_ids]
        if refused:
            raise PolicyMismatchError(
                f"advisory IDs {refused} are not among the policy's accepted "
                f"{list(self.accepted_advisory_ids)}"
            )


def _hex_int(value: Any, key: str, bits: int) -> int:
    if not isinstance(value, str):
        raise PolicyFormatError(f"policy key {key!r} must be a hex string like '0x3'")
    try:
        number = int(value, 16)
    except ValueError:
        raise PolicyFormatError(
            f"policy key {key!r} is {value!r}, not a hex integer"
        ) from None
    if not 0 <= number < 1 << bits:
        raise PolicyFormatError(
            f"policy key {key!r} is {value!r}, which does not fit {bits} bits"
        )
    return number


def _measurement(value: Any, key: str) -> bytes:
    text = value.removeprefix("0x") if isinstance(value, str) else ""
    try:
        digest = bytes.fromhex(text)
    except ValueError:
        digest = b""
    if len(digest) != 32 or len(text) != 64:
        raise PolicyFormatError(f"policy key {key!r} is {value!r}, not 64 hex digits")
    return digest


def _bool(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        raise PolicyFormatError(f"policy key {key!r} is {value!r}, not true or false")
    return value


def _u16(value: Any, key: str) -> int:
    is_int = isinstance(value, int) and not isinstance(value, bool)
    if not is_int or not 0 <= value < 1 << 16:
        raise PolicyFormatError(f"policy key {key!r} is {value!r}, not 0..65535")
    return value


def _count(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise PolicyFormatError(f"policy key {key!r} is {value!r}, not a count")
    return value


def _names(value: Any, key: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PolicyFormatError(f"policy key {key!r} must be a list of strings")
    return tuple(value)


def _statuses(value: Any) -> tuple[TcbStatus, ...]:
    key = "accepted_tcb_statuses"
    names = _names(value, key)
    if not names:
        raise PolicyFormatError(f"policy key {key!r} is empty: nothing would pass")
    statuses = []
    for name in names:
        try:
            status = TcbStatus(name)
        except ValueError:
            raise PolicyFormatError(
                f"policy key {key!r} names unknown status {name!r} (known: "
                f"{', '.join(s.value for s in TcbStatus)})"
            ) from None
        if status is TcbStatus.REVOKED:
            raise PolicyFormatError(f"policy key {key!r}: Revoked is never accepted")
        statuses.append(status)
    return tuple(statuses)
