"""Signed JSON collateral: TCB info v2/v3 and QE identity (DCAP-FORMATS.md §4, §5).

A PCS document is an envelope ``{"tcbInfo": {...}, "signature": "<hex r||s>"}``
whose signature covers the exact bytes of the inner value as served. The envelope
is therefore scanned, not re-serialised: :func:`split_envelope` returns the raw
substring, and a single inserted space makes the signature fail (stricter than
Intel's QVL, which re-serialises; the same as dcap-qvl).

No maintained Python library parses TCB info v2 and v3, hence this module.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec

from blindai.attestation._ecdsa import verify_raw_signature
from blindai.attestation.pki import field_bytes
from blindai.attestation.tcb import PlatformTcbLevel, QeTcbLevel, TcbStatus
from blindai.errors import CollateralError

_WHITESPACE = " \t\n\r"
_DECODER = json.JSONDecoder()


def split_envelope(
    document: str | bytes, member: str, name: str
) -> tuple[bytes, bytes]:
    """The raw bytes of ``member``'s value and the 64-byte signature.

    The envelope must be a JSON object with exactly ``member`` and ``signature``.
    """
    try:
        text = field_bytes(document, name).decode("utf-8")
        members = _scan_object(text)
    except (ValueError, IndexError, RecursionError) as exc:
        # RecursionError: json nests by recursion, and this runs before any
        # signature is checked, so a host can send 100,000 brackets.
        raise CollateralError(f"{name} is not a JSON envelope: {exc}") from exc
    if set(members) != {member, "signature"}:
        raise CollateralError(
            f"{name} has members {sorted(members)}, expected ['{member}', 'signature']"
        )
    raw_body = members[member].encode("utf-8")
    try:
        signature = bytes.fromhex(json.loads(members["signature"]))
    except (ValueError, TypeError) as exc:
        raise CollateralError(f"{name}'s signature is not a hex string") from exc
    if len(signature) != 64:
        raise CollateralError(
            f"{name}'s signature is {len(signature)} bytes, expected 64 (r || s)"
        )
    return raw_body, signature


def _scan_object(text: str) -> dict[str, str]:
    """Top-level members of a JSON object, each value as its exact source text."""
    index = _skip(text, 0)
    if text[index] != "{":
        raise ValueError("the document is not a JSON object")
    members: dict[str, str] = {}
    index = _skip(text, index + 1)
    while text[index] != "}":
        if text[index] != '"':
            raise ValueError(f"expected a member name at offset {index}")
        key, index = json.decoder.scanstring(text, index + 1)  # type: ignore[attr-defined]
        index = _skip(text, index)
        if text[index] != ":":
            raise ValueError(f"expected ':' at offset {index}")
        start = _skip(text, index + 1)
        _, end = _DECODER.raw_decode(text, start)
        if key in members:
            raise ValueError(f"duplicate member {key!r}")
        members[key] = text[start:end]
        index = _skip(text, end)
        if text[index] == ",":
            index = _skip(text, index + 1)
        elif text[index] != "}":
            raise ValueError(f"expected ',' or '}}' at offset {index}")
    if _skip(text, index + 1) != len(text):
        raise ValueError("trailing data after the JSON object")
    return members


def _skip(text: str, index: int) -> int:
    while index < len(text) and text[index] in _WHITESPACE:
        index += 1
    return index


def verify_document_signature(
    raw_body: bytes, signature: bytes, signer: x509.Certificate, name: str
) -> None:
    """The TCB signing key signed ``raw_body``; raises :class:`CollateralError`."""
    key = signer.public_key()
    try:
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise InvalidSignature("the signing certificate has no EC key")
        verify_raw_signature(key, signature, raw_body)
    except InvalidSignature as exc:
        raise CollateralError(
            f"{name}'s signature does not verify with the TCB signing key over the "
            "exact bytes served (documents must not be re-serialised)"
        ) from exc


def _load_body(raw_body: bytes, name: str) -> dict[str, Any]:
    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [k for k, _ in pairs]
        if len(keys) != len(set(keys)):
            raise ValueError(f"duplicate member names in {keys}")
        return dict(pairs)

    try:
        body = json.loads(raw_body, object_pairs_hook=no_duplicates)
    except (ValueError, RecursionError) as exc:
        raise CollateralError(f"{name} is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise CollateralError(f"{name} is not a JSON object")
    return body


def _get(obj: dict[str, Any], key: str, kind: type, name: str) -> Any:
    value = obj.get(key)
    # bool is an int in Python; JSON true must not pass for a number.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise CollateralError(
            f"{name}: member {key!r} is {value!r}, expected a {kind.__name__}"
        )
    return value


def _hex(obj: dict[str, Any], key: str, size: int, name: str) -> bytes:
    text = _get(obj, key, str, name)
    try:
        value = bytes.fromhex(text)
    except ValueError:
        value = b""
    if len(value) != size or len(text) != 2 * size:
        raise CollateralError(f"{name}: {key} {text!r} is not {size} bytes of hex")
    return value


def _date(obj: dict[str, Any], key: str, name: str) -> dt.datetime:
    text = _get(obj, key, str, name)
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise CollateralError(f"{name}: {key} {text!r} is not a date") from exc
    if value.tzinfo is None:
        raise CollateralError(f"{name}: {key} {text!r} has no time zone")
    return value.astimezone(dt.UTC)


def _status(obj: dict[str, Any], name: str) -> TcbStatus:
    text = _get(obj, "tcbStatus", str, name)
    try:
        return TcbStatus(text)
    except ValueError:
        raise CollateralError(f"{name}: unknown tcbStatus {text!r}") from None


def _advisories(obj: dict[str, Any], name: str) -> tuple[str, ...]:
    ids = obj.get("advisoryIDs", [])
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise CollateralError(f"{name}: advisoryIDs {ids!r} is not a list of names")
    return tuple(ids)


@dataclass(frozen=True)
class TcbInfo:
    """A parsed TCB info body (version 2 or 3, SGX only); its signature is checked
    separately, over the raw bytes it was parsed from."""

    version: int
    id: str | None
    fmspc: bytes
    pce_id: bytes
    tcb_type: int
    evaluation_data_number: int
    issue_date: dt.datetime
    next_update: dt.datetime
    levels: tuple[PlatformTcbLevel, ...]

    @classmethod
    def from_body(cls, raw_body: bytes) -> TcbInfo:
        """Parse the ``tcbInfo`` value; raises :class:`CollateralError`.

        Refuses versions other than 2 and 3, an ``id`` other than SGX (a TDX TCB
        info), a ``tcbType`` other than 0 and an empty level list.
        """
        name = "the TCB info"
        body = _load_body(raw_body, name)
        version = _get(body, "version", int, name)
        if version not in (2, 3):
            raise CollateralError(f"TCB info version {version} is not 2 or 3")
        tee = body.get("id")
        if (version == 3 or tee is not None) and tee != "SGX":
            raise CollateralError(f"the TCB info is for {tee!r}, not SGX")
        tcb_type = _get(body, "tcbType", int, name)
        if tcb_type != 0:
            raise CollateralError(f"TCB info tcbType {tcb_type} is not 0")
        levels = _get(body, "tcbLevels", list, name)
        if not levels:
            raise CollateralError("the TCB info has no TCB levels")
        return cls(
            version=version,
            id=tee,
            fmspc=_hex(body, "fmspc", 6, name),
            pce_id=_hex(body, "pceId", 2, name),
            tcb_type=tcb_type,
            evaluation_data_number=_get(body, "tcbEvaluationDataNumber", int, name),
            issue_date=_date(body, "issueDate", name),
            next_update=_date(body, "nextUpdate", name),
            levels=tuple(_platform_level(level, version) for level in levels),
        )


def _platform_level(level: Any, version: int) -> PlatformTcbLevel:
    name = "a TCB info level"
    if not isinstance(level, dict):
        raise CollateralError(f"{name} is {level!r}, not an object")
    tcb = _get(level, "tcb", dict, name)
    if version == 2:
        keys = [f"sgxtcbcomp{i:02d}svn" for i in range(1, 17)]
        components = [_get(tcb, key, int, name) for key in keys]
    else:
        entries = _get(tcb, "sgxtcbcomponents", list, name)
        if len(entries) != 16 or not all(isinstance(e, dict) for e in entries):
            raise CollateralError(f"{name} has not 16 sgxtcbcomponents")
        components = [_get(entry, "svn", int, name) for entry in entries]
    pce_svn = _get(tcb, "pcesvn", int, name)
    if any(not 0 <= svn <= 255 for svn in components) or not 0 <= pce_svn <= 0xFFFF:
        raise CollateralError(f"{name} has SVNs out of range: {components}, {pce_svn}")
    return PlatformTcbLevel(
        components=tuple(components),
        pce_svn=pce_svn,
        status=_status(level, name),
        tcb_date=_date(level, "tcbDate", name),
        advisory_ids=_advisories(level, name),
    )


@dataclass(frozen=True)
class QeIdentity:
    """A parsed QE identity body (enclave identity v2 with id ``QE``).

    The hex strings are bytes in memory order (§5): ``miscselect`` "D182B18C" is
    the report bytes d1 82 b1 8c.
    """

    id: str
    version: int
    issue_date: dt.datetime
    next_update: dt.datetime
    evaluation_data_number: int
    miscselect: bytes
    miscselect_mask: bytes
    attributes: bytes
    attributes_mask: bytes
    mrsigner: bytes
    isvprodid: int
    levels: tuple[QeTcbLevel, ...]

    @classmethod
    def from_body(cls, raw_body: bytes) -> QeIdentity:
        """Parse the ``enclaveIdentity`` value; raises :class:`CollateralError`.

        Refuses an ``id`` other than ``QE`` (``TD_QE`` is TDX's, ``QVE`` another
        enclave's), versions other than 2 and an empty level list.
        """
        name = "the QE identity"
        body = _load_body(raw_body, name)
        identity = _get(body, "id", str, name)
        if identity != "QE":
            raise CollateralError(f"the QE identity is for {identity!r}, not 'QE'")
        version = _get(body, "version", int, name)
        if version != 2:
            raise CollateralError(f"QE identity version {version} is not 2")
        levels = _get(body, "tcbLevels", list, name)
        if not levels:
            raise CollateralError("the QE identity has no TCB levels")
        return cls(
            id=identity,
            version=version,
            issue_date=_date(body, "issueDate", name),
            next_update=_date(body, "nextUpdate", name),
            evaluation_data_number=_get(body, "tcbEvaluationDataNumber", int, name),
            miscselect=_hex(body, "miscselect", 4, name),
            miscselect_mask=_hex(body, "miscselectMask", 4, name),
            attributes=_hex(body, "attributes", 16, name),
            attributes_mask=_hex(body, "attributesMask", 16, name),
            mrsigner=_hex(body, "mrsigner", 32, name),
            isvprodid=_get(body, "isvprodid", int, name),
            levels=tuple(_qe_level(level) for level in levels),
        )


# An enclave identity level is UpToDate, OutOfDate or Revoked (§5). The convergence
# rule (§6) reads only the last two, so any other status would vanish from the
# verdict: refuse it instead of letting the platform's status stand.
_QE_STATUSES = (TcbStatus.UP_TO_DATE, TcbStatus.OUT_OF_DATE, TcbStatus.REVOKED)


def _qe_level(level: Any) -> QeTcbLevel:
    name = "a QE identity level"
    if not isinstance(level, dict):
        raise CollateralError(f"{name} is {level!r}, not an object")
    tcb = _get(level, "tcb", dict, name)
    status = _status(level, name)
    if status not in _QE_STATUSES:
        raise CollateralError(
            f"{name} has tcbStatus {status}, not one of "
            f"{', '.join(s.value for s in _QE_STATUSES)}"
        )
    return QeTcbLevel(
        isv_svn=_get(tcb, "isvsvn", int, name),
        status=status,
        tcb_date=_date(level, "tcbDate", name),
        advisory_ids=_advisories(level, name),
    )
