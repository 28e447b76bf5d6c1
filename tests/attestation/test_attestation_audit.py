"""Attacks found by an audit of the trust decision, each named after the attack.

The evidence is the synthetic SGX platform's (``tests/sgxsim``): its test PKI
stands in for Intel's keys, so "Intel signed it" cases can be built. Every attack
must end in an :class:`AttestationError` subclass, never in a verdict and never in
a foreign exception that a caller catching ``AttestationError`` would miss.
"""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from sgxsim import SgxPlatform
from sgxsim.documents import QeTcbLevel, default_tcb_levels
from sgxsim.pki import SGX_EXTENSION_OID, Issued
from sgxsim.quote import TEST_QE

from blindai.attestation import Policy, TcbStatus, verify_quote
from blindai.errors import CollateralError, PolicyMismatchError

pytestmark = pytest.mark.sgx_sim

DAY = dt.timedelta(days=1)


@pytest.fixture(scope="module")
def platform() -> SgxPlatform:
    return SgxPlatform()


def _verify(platform: SgxPlatform, **fields: str):
    return verify_quote(
        platform.make_quote(),
        platform.collateral(**fields),
        at=platform.at,
        trusted_root=platform.root_pem,
    )


# --- the QE identity's TCB status ----------------------------------------------------

# Intel's enclave identity schema knows three QE statuses. Intel's convergence rule
# only looks at OutOfDate and Revoked, so any other status would silently leave the
# platform's status standing: a QE "OutOfDateConfigurationNeeded" came out UpToDate.
NOT_A_QE_STATUS = [
    "SWHardeningNeeded",
    "ConfigurationNeeded",
    "ConfigurationAndSWHardeningNeeded",
    "OutOfDateConfigurationNeeded",
]


@pytest.mark.parametrize("status", NOT_A_QE_STATUS)
def test_attack_qe_status_outside_the_qe_vocabulary_vanishes(
    platform: SgxPlatform, status: str
) -> None:
    levels = [QeTcbLevel(TEST_QE.isv_svn, status, platform.at - 3 * DAY)]
    identity = platform.qe_identity(levels=levels)
    with pytest.raises(CollateralError, match=status):
        _verify(platform, qe_identity=identity)


# --- hostile input must raise AttestationError, not a foreign exception ---------------


@pytest.mark.parametrize(
    ("field", "member"),
    [("tcb_info", "tcbInfo"), ("qe_identity", "enclaveIdentity")],
)
def test_attack_deeply_nested_json_escapes_as_recursion_error(
    platform: SgxPlatform, field: str, member: str
) -> None:
    """The envelope is scanned before any signature is checked."""
    nested = "[" * 100_000 + "]" * 100_000
    document = f'{{"{member}":{nested},"signature":"{"00" * 64}"}}'
    with pytest.raises(CollateralError, match="JSON"):
        _verify(platform, **{field: document})


def _oid_der(dotted: str) -> bytes:
    arcs = [int(a) for a in dotted.split(".")]
    content = b""
    for arc in [40 * arcs[0] + arcs[1], *arcs[2:]]:
        chunk = [arc & 0x7F]
        while arc > 0x7F:
            arc >>= 7
            chunk.insert(0, 0x80 | (arc & 0x7F))
        content += bytes(chunk)
    return b"\x06" + bytes([len(content)]) + content


def _with_duplicated_extension(cert: x509.Certificate, issuer: Issued, oid: str) -> str:
    """``cert`` carrying its extension ``oid`` twice (PEM).

    cryptography refuses to build that, so a placeholder extension whose OID has
    the same encoded length is added and its OID bytes are then overwritten: the
    result is what a hostile host can hand over (its signature no longer holds).
    """
    builder = (
        x509.CertificateBuilder()
        .subject_name(cert.subject)
        .issuer_name(cert.issuer)
        .public_key(cert.public_key())
        .serial_number(cert.serial_number)
        .not_valid_before(cert.not_valid_before_utc)
        .not_valid_after(cert.not_valid_after_utc)
    )
    for extension in cert.extensions:
        builder = builder.add_extension(extension.value, extension.critical)
    placeholder = oid.rsplit(".", 1)[0] + ".99"
    value = cert.extensions.get_extension_for_oid(x509.ObjectIdentifier(oid))
    builder = builder.add_extension(
        x509.UnrecognizedExtension(
            x509.ObjectIdentifier(placeholder), value.value.public_bytes()
        ),
        critical=False,
    )
    der = builder.sign(issuer.key, hashes.SHA256()).public_bytes(Encoding.DER)
    assert der.count(_oid_der(placeholder)) == 1
    forged = der.replace(_oid_der(placeholder), _oid_der(oid))
    return x509.load_der_x509_certificate(forged).public_bytes(Encoding.PEM).decode()


def test_attack_pck_certificate_with_a_duplicated_sgx_extension(
    platform: SgxPlatform,
) -> None:
    leaf = _with_duplicated_extension(
        platform.pck.certificate, platform.pki.ca("processor"), SGX_EXTENSION_OID
    )
    with pytest.raises(CollateralError):
        _verify(platform, pck_certificate=leaf)


BC = x509.ExtensionOID.BASIC_CONSTRAINTS.dotted_string


def test_attack_pck_ca_and_tcb_signer_with_duplicated_basic_constraints(
    platform: SgxPlatform,
) -> None:
    pki = platform.pki
    ca = _with_duplicated_extension(pki.ca("processor").certificate, pki.root, BC)
    signer = _with_duplicated_extension(pki.tcb_signing.certificate, pki.root, BC)
    with pytest.raises(CollateralError):
        _verify(platform, pck_signing_chain=ca)
    with pytest.raises(CollateralError):
        _verify(platform, tcb_info_issuer_chain=signer)
    with pytest.raises(CollateralError):
        _verify(platform, qe_identity_issuer_chain=signer)


# --- the advisory restriction ---------------------------------------------------------


def test_attack_tcb_info_v2_downgrade_strips_the_advisory_ids() -> None:
    """The host relays the TCB info of PCS API v3 (version 2) instead of v4's.

    Both are genuine and valid at once, but only version 3 lists advisory IDs: a
    policy that refuses every advisory accepted an affected platform once the
    host chose version 2.
    """
    platform = SgxPlatform()
    info = platform.pck_info
    platform.tcb_levels = default_tcb_levels(
        info.cpusvn, info.pcesvn + 1, at=platform.at
    )  # the platform is at the SWHardeningNeeded level, INTEL-SA-00615
    quote = platform.make_quote()
    policy = Policy(
        mr_enclave=quote[112:144],
        misc_select=0,
        misc_mask=0,
        attributes_flags=0,
        attributes_xfrm=0,
        attributes_mask_flags=0x1,
        attributes_mask_xfrm=0,
        allow_debug=False,
        accepted_advisory_ids=(),
    )
    for api_version in (4, 3):
        collateral = platform.collateral(api_version=api_version)
        verified = verify_quote(
            quote, collateral, at=platform.at, trusted_root=platform.root_pem
        )
        assert verified.tcb_status == TcbStatus.SW_HARDENING_NEEDED
        with pytest.raises(PolicyMismatchError, match="advisor"):
            policy.check(verified)
