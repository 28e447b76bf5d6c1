"""Signed TCB info and QE identity documents, as Intel's PCS serves them.

Each document is the envelope ``{"tcbInfo":{...},"signature":"<hex r||s>"}`` (or
``"enclaveIdentity"``), where the signature is ECDSA P-256/SHA-256 by the TCB
signing key over the exact compact bytes of the inner object as emitted here. The
inner object is written once with ``json.dumps(..., separators=(",", ":"))`` and
spliced into the envelope unchanged, so the signed bytes are a substring of the
served text (what a strict verifier hashes).

TCB info version 2 is what PCS API v3 serves (components named
``sgxtcbcomp01svn``...), version 3 what API v4 serves (``sgxtcbcomponents`` and
per-level ``advisoryIDs``); see DCAP-FORMATS.md section 4.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature


@dataclass(frozen=True)
class TcbLevel:
    """One platform TCB level: 16 component SVNs, PCESVN, status, date, advisories."""

    components: tuple[int, ...]
    pcesvn: int
    status: str
    tcb_date: dt.datetime
    advisory_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class QeTcbLevel:
    """One QE TCB level: the QE's ISVSVN and its status."""

    isvsvn: int
    status: str
    tcb_date: dt.datetime
    advisory_ids: tuple[str, ...] = ()


def rfc3339(moment: dt.datetime) -> str:
    """``2022-04-11T08:24:28Z`` as in Intel's documents."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def default_tcb_levels(
    components: Sequence[int], pcesvn: int, *, at: dt.datetime
) -> list[TcbLevel]:
    """Levels around a platform: it is UpToDate at exactly ``components``/``pcesvn``.

    Below it (as in real TCB info, newest first): a SWHardeningNeeded level with an
    advisory reached by a lower PCESVN, and OutOfDate levels further down.
    """
    comps = tuple(components)
    lowered = tuple(max(c - 1, 0) for c in comps)
    day = dt.timedelta(days=1)
    return [
        TcbLevel(comps, pcesvn, "UpToDate", at - 30 * day),
        TcbLevel(
            comps,
            max(pcesvn - 1, 0),
            "SWHardeningNeeded",
            at - 200 * day,
            ("INTEL-SA-00615",),
        ),
        TcbLevel(
            lowered,
            max(pcesvn - 1, 0),
            "OutOfDate",
            at - 400 * day,
            ("INTEL-SA-00615", "INTEL-SA-00657"),
        ),
        TcbLevel((0,) * 16, 0, "OutOfDate", at - 800 * day, ("INTEL-SA-00219",)),
    ]


def tcb_info_body(
    *,
    fmspc: bytes,
    pce_id: bytes,
    levels: Sequence[TcbLevel],
    issue_date: dt.datetime,
    next_update: dt.datetime,
    version: int = 3,
    evaluation_number: int = 17,
) -> dict[str, Any]:
    """The ``tcbInfo`` object, members in Intel's order."""
    if version not in (2, 3):
        raise ValueError(f"expected TCB info version 2 or 3, got {version}")
    body: dict[str, Any] = {}
    if version == 3:
        body["id"] = "SGX"
    body.update(
        version=version,
        issueDate=rfc3339(issue_date),
        nextUpdate=rfc3339(next_update),
        fmspc=fmspc.hex(),
        pceId=pce_id.hex(),
        tcbType=0,
        tcbEvaluationDataNumber=evaluation_number,
        tcbLevels=[_tcb_level(level, version) for level in levels],
    )
    return body


def _tcb_level(level: TcbLevel, version: int) -> dict[str, Any]:
    if version == 2:
        tcb: dict[str, Any] = {
            f"sgxtcbcomp{index:02d}svn": svn
            for index, svn in enumerate(level.components, start=1)
        }
        tcb["pcesvn"] = level.pcesvn
    else:
        components = [{"svn": svn} for svn in level.components]
        tcb = {"sgxtcbcomponents": components, "pcesvn": level.pcesvn}
    entry: dict[str, Any] = {
        "tcb": tcb,
        "tcbDate": rfc3339(level.tcb_date),
        "tcbStatus": level.status,
    }
    if version == 3 and level.advisory_ids:
        entry["advisoryIDs"] = list(level.advisory_ids)
    return entry


def qe_identity_body(
    *,
    mrsigner: bytes,
    isvprodid: int,
    levels: Sequence[QeTcbLevel],
    issue_date: dt.datetime,
    next_update: dt.datetime,
    miscselect: bytes = bytes(4),
    miscselect_mask: bytes = b"\xff" * 4,
    attributes: bytes = bytes.fromhex("11") + bytes(15),
    attributes_mask: bytes = bytes.fromhex("fbffffffffffffff") + bytes(8),
    evaluation_number: int = 17,
) -> dict[str, Any]:
    """The ``enclaveIdentity`` object of a QE identity v2 (id "QE").

    Hex strings are the bytes in memory order, upper case as Intel writes them.
    """
    return {
        "id": "QE",
        "version": 2,
        "issueDate": rfc3339(issue_date),
        "nextUpdate": rfc3339(next_update),
        "tcbEvaluationDataNumber": evaluation_number,
        "miscselect": miscselect.hex().upper(),
        "miscselectMask": miscselect_mask.hex().upper(),
        "attributes": attributes.hex().upper(),
        "attributesMask": attributes_mask.hex().upper(),
        "mrsigner": mrsigner.hex().upper(),
        "isvprodid": isvprodid,
        "tcbLevels": [_qe_level(level) for level in levels],
    }


def _qe_level(level: QeTcbLevel) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "tcb": {"isvsvn": level.isvsvn},
        "tcbDate": rfc3339(level.tcb_date),
        "tcbStatus": level.status,
    }
    if level.advisory_ids:
        entry["advisoryIDs"] = list(level.advisory_ids)
    return entry


def raw_signature(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    """ECDSA P-256/SHA-256 signature as raw ``r || s`` (64 bytes)."""
    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def signed_document(
    member: str, body: dict[str, Any], key: ec.EllipticCurvePrivateKey
) -> str:
    """The PCS envelope: ``{"<member>":<body>,"signature":"<hex>"}``.

    The signature covers exactly the compact body text that appears in the result.
    """
    inner = json.dumps(body, separators=(",", ":"))
    signature = raw_signature(key, inner.encode()).hex()
    return f'{{"{member}":{inner},"signature":"{signature}"}}'


def signed_body_bytes(document: str, member: str) -> bytes:
    """The signed bytes of an envelope made by :func:`signed_document`.

    For tests: finds the raw substring of the member's value.
    """
    prefix = f'{{"{member}":'
    if not document.startswith(prefix):
        raise ValueError(f"expected the document to start with {prefix!r}")
    end = document.rindex(',"signature":"')
    return document[len(prefix) : end].encode()
