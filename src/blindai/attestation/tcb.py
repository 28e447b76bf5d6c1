"""TCB statuses, TCB-level matching and Intel's convergence rule (DCAP-FORMATS.md §6).

The platform level is chosen from the 16 component SVNs and the PCESVN that the
PCK certificate states (§3), never from the CPUSVN in the quote: the first level,
in the order the TCB info lists them, whose every component is lower or equal.
The quoting enclave's level is the first whose ISVSVN is lower or equal to the QE
report's (§5). The two are folded together the way Intel's QVL does.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum

from blindai.errors import QuoteVerificationError


class TcbStatus(StrEnum):
    """A TCB level's status, with Intel's names (the JSON values)."""

    UP_TO_DATE = "UpToDate"
    SW_HARDENING_NEEDED = "SWHardeningNeeded"
    CONFIGURATION_NEEDED = "ConfigurationNeeded"
    CONFIGURATION_AND_SW_HARDENING_NEEDED = "ConfigurationAndSWHardeningNeeded"
    OUT_OF_DATE = "OutOfDate"
    OUT_OF_DATE_CONFIGURATION_NEEDED = "OutOfDateConfigurationNeeded"
    REVOKED = "Revoked"


@dataclass(frozen=True)
class PlatformTcbLevel:
    """One ``tcbLevels`` entry of a TCB info document (v2 or v3)."""

    components: tuple[int, ...]
    pce_svn: int
    status: TcbStatus
    tcb_date: dt.datetime
    advisory_ids: tuple[str, ...]


@dataclass(frozen=True)
class QeTcbLevel:
    """One ``tcbLevels`` entry of a QE identity document."""

    isv_svn: int
    status: TcbStatus
    tcb_date: dt.datetime
    advisory_ids: tuple[str, ...]


@dataclass(frozen=True)
class PlatformTcb:
    """The TCB a PCK certificate states: 16 component SVNs and the PCESVN."""

    components: tuple[int, ...]
    pce_svn: int


def match_platform_level(
    levels: tuple[PlatformTcbLevel, ...], platform: PlatformTcb
) -> tuple[int, PlatformTcbLevel]:
    """Index and value of the first level the platform reaches (§6, step 2).

    Raises :class:`QuoteVerificationError` when the platform is below every level.
    """
    for index, level in enumerate(levels):
        components_ok = all(
            have >= need
            for have, need in zip(platform.components, level.components, strict=True)
        )
        if components_ok and platform.pce_svn >= level.pce_svn:
            return index, level
    raise QuoteVerificationError(
        f"no TCB level of the TCB info matches the platform (PCK component SVNs "
        f"{list(platform.components)}, PCESVN {platform.pce_svn}): TCB not supported"
    )


def match_qe_level(
    levels: tuple[QeTcbLevel, ...], isv_svn: int
) -> tuple[int, QeTcbLevel]:
    """Index and value of the first QE level with ISVSVN <= the QE's (§5)."""
    for index, level in enumerate(levels):
        if isv_svn >= level.isv_svn:
            return index, level
    raise QuoteVerificationError(
        f"the quoting enclave's ISVSVN {isv_svn} is below every TCB level of the "
        "QE identity"
    )


_OUT_OF_DATE_OF = {
    TcbStatus.UP_TO_DATE: TcbStatus.OUT_OF_DATE,
    TcbStatus.SW_HARDENING_NEEDED: TcbStatus.OUT_OF_DATE,
    TcbStatus.CONFIGURATION_NEEDED: TcbStatus.OUT_OF_DATE_CONFIGURATION_NEEDED,
    TcbStatus.CONFIGURATION_AND_SW_HARDENING_NEEDED: (
        TcbStatus.OUT_OF_DATE_CONFIGURATION_NEEDED
    ),
}


def converge(platform: TcbStatus, qe: TcbStatus) -> TcbStatus:
    """Combined status by Intel QVL's ``convergeTcbStatus`` (§6).

    A revoked QE makes the whole Revoked; an out-of-date QE turns UpToDate and
    SWHardeningNeeded into OutOfDate, and the two Configuration* statuses into
    OutOfDateConfigurationNeeded; otherwise the platform status stands. (dcap-qvl
    takes the more severe of the two instead; the rules differ only for an
    out-of-date QE on a ConfigurationNeeded platform.)
    """
    if qe is TcbStatus.REVOKED:
        return TcbStatus.REVOKED
    if qe is TcbStatus.OUT_OF_DATE:
        return _OUT_OF_DATE_OF.get(platform, platform)
    return platform
