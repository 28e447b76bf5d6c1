"""SGX enclave signature structures (SIGSTRUCT), as ``gramine-sgx-sign`` writes
them to ``<app>.sig``, and the ``policy.toml`` values that follow from one.

Layout: Intel SDM Vol. 3D, section "Enclave Signature Structure (SIGSTRUCT)",
1808 bytes, little-endian, field offsets as in Gramine's ``sgx_arch.h``
(``sgx_sigstruct_t``) and Open Enclave's ``sgx_sigstruct_t`` (which annotates
each offset), checked against both:

====== ==== =========================================================
offset size field
====== ==== =========================================================
0      12   HEADER ``06000000 E1000000 00000100``
12     4    type (bit 31: debug-signed, informational)
16     4    VENDOR (0x8086 for Intel's enclaves, else 0)
20     4    DATE (BCD ``yyyymmdd``)
24     16   HEADER2 ``01010000 60000000 60000000 01000000``
40     4    SWDEFINED
44     84   reserved
128    384  MODULUS (RSA-3072, little-endian)
512    4    EXPONENT (3)
516    384  SIGNATURE
900    4    MISCSELECT
904    4    MISCMASK
908    4    CET attributes and mask, reserved
912    16   ISV family ID
928    16   ATTRIBUTES (FLAGS u64, XFRM u64)
944    16   ATTRIBUTEMASK
960    32   ENCLAVEHASH (MRENCLAVE)
992    16   reserved
1008   16   ISV extended product ID
1024   2    ISVPRODID
1026   2    ISVSVN
1028   12   reserved
1040   384  Q1
1424   384  Q2
====== ==== =========================================================

MRSIGNER is SHA-256 of MODULUS in the byte order stored here (little-endian).
The signature is not checked: the SIGSTRUCT only tells an operator which values
to expect; the hardware and the DCAP quote prove them.
"""

from __future__ import annotations

import hashlib
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SIGSTRUCT_SIZE = 1808
HEADER = bytes.fromhex("06000000e10000000000010000000000")[:12]
HEADER2 = bytes.fromhex("01010000600000006000000001000000")
FLAG_INIT = 0x1
FLAG_DEBUG = 0x2
_MASK64 = (1 << 64) - 1


@dataclass(frozen=True)
class Sigstruct:
    """The identity fields of a SIGSTRUCT. Build it with :meth:`from_bytes`."""

    vendor: int
    date: int
    modulus: bytes
    exponent: int
    misc_select: int
    misc_mask: int
    attributes: bytes
    attribute_mask: bytes
    mr_enclave: bytes
    isv_prod_id: int
    isv_svn: int

    @classmethod
    def from_bytes(cls, data: bytes) -> Sigstruct:
        """Parse a SIGSTRUCT; raises ``ValueError`` naming what is wrong."""
        if len(data) != SIGSTRUCT_SIZE:
            raise ValueError(
                f"a SIGSTRUCT is {SIGSTRUCT_SIZE} bytes, this one is {len(data)}"
            )
        if data[0:12] != HEADER:
            raise ValueError(
                f"expected the SIGSTRUCT header {HEADER.hex()}, "
                f"found {data[0:12].hex()}"
            )
        if data[24:40] != HEADER2:
            raise ValueError(
                f"expected the SIGSTRUCT HEADER2 {HEADER2.hex()}, "
                f"found {data[24:40].hex()}"
            )
        vendor, date = struct.unpack_from("<II", data, 16)
        (exponent,) = struct.unpack_from("<I", data, 512)
        misc_select, misc_mask = struct.unpack_from("<II", data, 900)
        isv_prod_id, isv_svn = struct.unpack_from("<HH", data, 1024)
        return cls(
            vendor=vendor,
            date=date,
            modulus=data[128:512],
            exponent=exponent,
            misc_select=misc_select,
            misc_mask=misc_mask,
            attributes=data[928:944],
            attribute_mask=data[944:960],
            mr_enclave=data[960:992],
            isv_prod_id=isv_prod_id,
            isv_svn=isv_svn,
        )

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Sigstruct:
        """Read a ``.sig`` file; ``FileNotFoundError`` or ``ValueError``."""
        with open(path, "rb") as source:
            data = source.read(SIGSTRUCT_SIZE + 1)
        try:
            return cls.from_bytes(data)
        except ValueError as exc:
            raise ValueError(f"{Path(path)}: {exc}") from None

    @property
    def mr_signer(self) -> bytes:
        """SHA-256 of the signer's modulus as stored (little-endian)."""
        return hashlib.sha256(self.modulus).digest()

    @property
    def flags(self) -> int:
        """ATTRIBUTES.FLAGS required by the signer."""
        return int.from_bytes(self.attributes[:8], "little")

    @property
    def xfrm(self) -> int:
        """ATTRIBUTES.XFRM required by the signer."""
        return int.from_bytes(self.attributes[8:], "little")

    @property
    def mask_flags(self) -> int:
        """Which FLAGS bits EINIT enforces."""
        return int.from_bytes(self.attribute_mask[:8], "little")

    @property
    def mask_xfrm(self) -> int:
        """Which XFRM bits EINIT enforces."""
        return int.from_bytes(self.attribute_mask[8:], "little")

    @property
    def debug(self) -> bool:
        """Whether the enclave is signed to run in debug mode."""
        return bool(self.flags & FLAG_DEBUG)

    def policy_values(self, allow_debug: bool = False) -> dict[str, Any]:
        """The ``policy.toml`` keys that accept exactly this enclave.

        The masks are the SIGSTRUCT's (the CPU enforced them at EINIT), plus the
        INIT flag that the verifier always expects, plus DEBUG unless
        ``allow_debug``: a policy made for a production enclave then refuses a
        debug instance even if the signer's mask left that bit free. Raises
        ``ValueError`` for a debug-signed enclave without ``allow_debug``.
        """
        if self.debug and not allow_debug:
            raise ValueError(
                "the SIGSTRUCT describes a debug enclave (ATTRIBUTES.FLAGS "
                f"{self.flags:#x}); a policy for it needs allow_debug=True"
            )
        mask_flags = self.mask_flags | FLAG_INIT
        if not allow_debug:
            mask_flags |= FLAG_DEBUG
        flags = self.flags & self.mask_flags & ~FLAG_INIT & _MASK64
        return {
            "mr_enclave": self.mr_enclave.hex(),
            "misc_select_hex": f"{self.misc_select & self.misc_mask:#x}",
            "misc_mask_hex": f"{self.misc_mask:#x}",
            "attributes_flags_hex": f"{flags:#x}",
            "attributes_xfrm_hex": f"{self.xfrm & self.mask_xfrm:#x}",
            "attributes_mask_flags_hex": f"{mask_flags:#x}",
            "attributes_mask_xfrm_hex": f"{self.mask_xfrm:#x}",
            "allow_debug": allow_debug,
            "mr_signer": self.mr_signer.hex(),
            "isv_prod_id": self.isv_prod_id,
            "min_isv_svn": self.isv_svn,
        }
