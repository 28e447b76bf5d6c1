"""Unit tests of the verifier's parts: CRLs with a self-made CA, DER, envelopes,
validity periods and TCB convergence."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from blindai.attestation import _der, pki
from blindai.attestation.collateral import split_envelope
from blindai.attestation.tcb import TcbStatus, converge
from blindai.errors import CollateralError, CollateralExpiredError

T0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject, issuer, key, issuer_key, *, ca: bool) -> x509.Certificate:
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(T0 - DAY)
        .not_valid_after(T0 + DAY)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(issuer_key, hashes.SHA256())
    )


def _crl(issuer: str, key, serials: list[int]) -> x509.CertificateRevocationList:
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(_name(issuer))
        .last_update(T0 - DAY)
        .next_update(T0 + DAY)
    )
    for serial in serials:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(serial)
            .revocation_date(T0 - DAY)
            .build()
        )
    return builder.sign(key, hashes.SHA256())


@pytest.fixture(scope="module")
def hierarchy():
    """A throwaway root -> CA -> leaf hierarchy, like Intel's (P-256)."""
    keys = [ec.generate_private_key(ec.SECP256R1()) for _ in range(3)]
    root = _cert("Root", "Root", keys[0], keys[0], ca=True)
    ca = _cert("PCK CA", "Root", keys[1], keys[0], ca=True)
    leaf = _cert("PCK", "PCK CA", keys[2], keys[1], ca=False)
    return keys, root, ca, leaf


def test_crl_revoking_the_leaf_is_enforced(hierarchy) -> None:
    keys, _, ca, leaf = hierarchy
    crl = _crl("PCK CA", keys[1], [12345, leaf.serial_number])
    pki.check_crl_issued_by(crl, ca, "pck_crl")
    with pytest.raises(CollateralError, match="is revoked since"):
        pki.check_not_revoked(crl, leaf, "the PCK certificate")


def test_crl_listing_others_passes(hierarchy) -> None:
    keys, _, ca, leaf = hierarchy
    crl = _crl("PCK CA", keys[1], [leaf.serial_number + 1])
    pki.check_crl_issued_by(crl, ca, "pck_crl")
    pki.check_not_revoked(crl, leaf, "the PCK certificate")


def test_crl_by_impostor_key_is_refused(hierarchy) -> None:
    _, _, ca, _ = hierarchy
    crl = _crl("PCK CA", ec.generate_private_key(ec.SECP256R1()), [])
    with pytest.raises(CollateralError, match="not signed by"):
        pki.check_crl_issued_by(crl, ca, "pck_crl")


def test_crl_of_another_issuer_is_refused(hierarchy) -> None:
    keys, root, ca, _ = hierarchy
    with pytest.raises(CollateralError, match="is issued by"):
        pki.check_crl_issued_by(_crl("Root", keys[0], []), ca, "pck_crl")
    pki.check_crl_issued_by(_crl("Root", keys[0], []), root, "root_ca_crl")


def test_chain_checks(hierarchy) -> None:
    _, root, ca, leaf = hierarchy
    pki.check_issued_by(ca, root, "the PCK CA")
    pki.check_issued_by(leaf, ca, "the PCK certificate")
    pki.check_ca(ca, "the PCK CA")
    pki.check_not_ca(leaf, "the PCK certificate")
    with pytest.raises(CollateralError, match="not signed by"):
        pki.check_issued_by(leaf, root, "the PCK certificate")
    with pytest.raises(CollateralError, match="not a CA"):
        pki.check_ca(leaf, "the PCK CA")
    with pytest.raises(CollateralError, match="is a CA"):
        pki.check_not_ca(ca, "the PCK certificate")


def test_periods_bounds_inclusive() -> None:
    periods = [pki.Period("a", T0, T0 + DAY), pki.Period("b", T0 - DAY, T0 + 2 * DAY)]
    window = pki.check_periods(periods, T0)
    assert (window.start, window.end) == (T0, T0 + DAY)
    pki.check_periods(periods, T0 + DAY)
    second = dt.timedelta(seconds=1)
    with pytest.raises(CollateralExpiredError, match="a is not valid before"):
        pki.check_periods(periods, T0 - second)
    with pytest.raises(CollateralExpiredError, match="a expired at"):
        pki.check_periods(periods, T0 + DAY + second)


def test_crl_encodings(hierarchy) -> None:
    keys, _, _, _ = hierarchy
    crl = _crl("PCK CA", keys[1], [])
    der = crl.public_bytes(Encoding.DER)
    pem = crl.public_bytes(Encoding.PEM)
    for form in (
        der,
        pem,
        pem.decode(),
        pem.decode().replace("\n", "\r\n"),
        der.hex(),
        der.decode("latin-1"),
    ):
        assert pki.load_crl(form, "pck_crl") == crl
    with pytest.raises(CollateralError, match="empty"):
        pki.load_crl("", "pck_crl")
    with pytest.raises(CollateralError, match="not a PEM or DER CRL"):
        pki.load_crl(b"\x30\x03\x02\x01", "pck_crl")


def test_der_reader() -> None:
    oid = bytes.fromhex("060a2a864886f84d010d0104")  # 1.2.840.113741.1.13.1.4
    pair = b"\x30" + bytes([len(oid) + 8]) + oid + b"\x04\x06" + bytes(6)
    pairs = _der.oid_value_pairs(pair)
    assert list(pairs) == ["1.2.840.113741.1.13.1.4"]
    assert pairs["1.2.840.113741.1.13.1.4"].content == bytes(6)
    for bad in (
        b"\x30",
        b"\x30\x05\x00",
        b"\x30\x84\x00\x00\x00\x01\x00",
        b"\x1f\x01\x00",
    ):
        with pytest.raises(ValueError):
            _der.read_all(bad)
    with pytest.raises(ValueError, match="negative"):
        _der.decode_unsigned(b"\x80")


ENVELOPE = '{"tcbInfo":{"a":1,"b":[1,2]},"signature":"' + "ab" * 64 + '"}'


def test_envelope_gives_exact_bytes() -> None:
    body, signature = split_envelope(ENVELOPE, "tcbInfo", "doc")
    assert body == b'{"a":1,"b":[1,2]}'
    assert signature == bytes.fromhex("ab" * 64)
    spaced = ENVELOPE.replace('"a":1,', '"a":1, ')
    assert split_envelope(spaced, "tcbInfo", "doc")[0] == b'{"a":1, "b":[1,2]}'
    pretty = '{ "tcbInfo" : {"a":1} ,\n "signature": "' + "00" * 64 + '" }\n'
    assert split_envelope(pretty, "tcbInfo", "doc")[0] == b'{"a":1}'


@pytest.mark.parametrize(
    "document",
    [
        "",
        "[]",
        '{"tcbInfo":{}}',
        '{"tcbInfo":{},"tcbInfo":{},"signature":"00"}',
        '{"tcbInfo":{},"signature":"zz"}',
        '{"tcbInfo":{},"signature":"00"}',
        '{"tcbInfo":{},"signature":"' + "00" * 64 + '","extra":1}',
        '{"tcbInfo":{},"signature":"' + "00" * 64 + '"} trailing',
        '{"tcbInfo":{} "signature":"' + "00" * 64 + '"}',
        '{"tcbInfo":{',
    ],
)
def test_malformed_envelope_is_refused(document: str) -> None:
    with pytest.raises(CollateralError):
        split_envelope(document, "tcbInfo", "doc")


@pytest.mark.parametrize(
    ("platform", "qe", "expected"),
    [
        ("UpToDate", "UpToDate", "UpToDate"),
        ("SWHardeningNeeded", "UpToDate", "SWHardeningNeeded"),
        ("UpToDate", "OutOfDate", "OutOfDate"),
        ("SWHardeningNeeded", "OutOfDate", "OutOfDate"),
        ("ConfigurationNeeded", "OutOfDate", "OutOfDateConfigurationNeeded"),
        (
            "ConfigurationAndSWHardeningNeeded",
            "OutOfDate",
            "OutOfDateConfigurationNeeded",
        ),
        ("OutOfDate", "OutOfDate", "OutOfDate"),
        ("UpToDate", "Revoked", "Revoked"),
        ("Revoked", "UpToDate", "Revoked"),
    ],
)
def test_convergence_follows_intel_qvl(platform, qe, expected) -> None:
    assert converge(TcbStatus(platform), TcbStatus(qe)) is TcbStatus(expected)
