"""SIGSTRUCT parsing and the policy it implies, on SIGSTRUCTs built here."""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path

import pytest
from sgxsim import SgxPlatform, attributes

from blindai._sigstruct import SIGSTRUCT_SIZE, Sigstruct
from blindai.attestation import verify_attestation
from blindai.attestation.policy import Policy
from blindai.errors import PolicyMismatchError
from blindai.pb import untrusted_pb2

pytestmark = pytest.mark.sgx_sim

MODULUS = bytes(range(256)) + bytes(range(128))
MR_ENCLAVE = hashlib.sha256(b"blindai-server manifest").digest()


def build_sigstruct(
    *,
    flags: int = 0x4,
    xfrm: int = 0x3,
    mask_flags: int = 0xFFFFFFFFFFFFFFFD,
    mask_xfrm: int = 0xFFFFFFFFFFFFFF1B,
    isv_prod_id: int = 7,
    isv_svn: int = 2,
) -> bytes:
    """A SIGSTRUCT with the SDM layout (signature and Q1/Q2 left as filler)."""
    data = bytearray(SIGSTRUCT_SIZE)
    data[0:16] = bytes.fromhex("06000000e10000000000010000000000")
    struct.pack_into("<II", data, 16, 0, 0x20260115)
    data[24:40] = bytes.fromhex("01010000600000006000000001000000")
    data[128:512] = MODULUS
    struct.pack_into("<I", data, 512, 3)
    data[516:900] = b"\x5a" * 384
    struct.pack_into("<II", data, 900, 0, 0xFFFFFFFF)
    data[928:944] = attributes(flags, xfrm)
    data[944:960] = attributes(mask_flags, mask_xfrm)
    data[960:992] = MR_ENCLAVE
    struct.pack_into("<HH", data, 1024, isv_prod_id, isv_svn)
    return bytes(data)


def test_fields_are_read_at_their_offsets(tmp_path: Path) -> None:
    path = tmp_path / "blindai-server.sig"
    path.write_bytes(build_sigstruct())
    sig = Sigstruct.from_file(path)
    assert sig.mr_enclave == MR_ENCLAVE
    assert sig.mr_signer == hashlib.sha256(MODULUS).digest()
    assert (sig.isv_prod_id, sig.isv_svn, sig.exponent) == (7, 2, 3)
    assert (sig.flags, sig.xfrm, sig.misc_mask) == (0x4, 0x3, 0xFFFFFFFF)
    assert sig.date == 0x20260115 and not sig.debug


def test_policy_values_match_the_0_3_format() -> None:
    values = Sigstruct.from_bytes(build_sigstruct()).policy_values()
    assert values == {
        "mr_enclave": MR_ENCLAVE.hex(),
        "misc_select_hex": "0x0",
        "misc_mask_hex": "0xffffffff",
        "attributes_flags_hex": "0x4",
        "attributes_xfrm_hex": "0x3",
        "attributes_mask_flags_hex": "0xffffffffffffffff",
        "attributes_mask_xfrm_hex": "0xffffffffffffff1b",
        "allow_debug": False,
        "mr_signer": hashlib.sha256(MODULUS).digest().hex(),
        "isv_prod_id": 7,
        "min_isv_svn": 2,
    }
    Policy.from_dict(values)


@pytest.mark.parametrize(
    "data, message",
    [
        (build_sigstruct()[:-1], "1808 bytes"),
        (build_sigstruct() + b"\0", "1808 bytes"),
        (b"\x07" + build_sigstruct()[1:], "header"),
        (build_sigstruct()[:24] + bytes(16) + build_sigstruct()[40:], "HEADER2"),
    ],
)
def test_malformed_sigstructs_are_refused(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Sigstruct.from_bytes(data)


def test_debug_sigstruct_needs_allow_debug() -> None:
    sig = Sigstruct.from_bytes(build_sigstruct(flags=0x6))
    with pytest.raises(ValueError, match="debug"):
        sig.policy_values()
    assert sig.policy_values(allow_debug=True)["allow_debug"] is True


def _reply(platform: SgxPlatform, **fields: object):
    held = b"enclave certificate"
    quote = platform.make_quote(hashlib.sha256(held).digest() + bytes(32), **fields)
    return untrusted_pb2.GetSgxQuoteWithCollateralReply(
        quote=quote, collateral=platform.collateral(), enclave_held_data=held
    )


def test_policy_from_sigstruct_accepts_the_enclave_it_describes() -> None:
    sig = Sigstruct.from_bytes(build_sigstruct())
    policy = Policy.from_dict(sig.policy_values())
    platform = SgxPlatform()
    identity = {
        "mr_enclave": sig.mr_enclave,
        "mr_signer": sig.mr_signer,
        "isv_prod_id": 7,
        "isv_svn": 2,
    }
    running = attributes(0x4 | 0x1, 0x3)  # INIT is set once the enclave runs
    kw = {"at": platform.at, "trusted_root": platform.root_pem}
    verify_attestation(_reply(platform, attributes=running, **identity), policy, **kw)

    debug = attributes(0x4 | 0x1 | 0x2, 0x3)
    with pytest.raises(PolicyMismatchError, match="debug"):
        verify_attestation(_reply(platform, attributes=debug, **identity), policy, **kw)
    older = {**identity, "isv_svn": 1}
    with pytest.raises(PolicyMismatchError, match="ISVSVN"):
        verify_attestation(_reply(platform, attributes=running, **older), policy, **kw)
