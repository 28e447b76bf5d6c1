"""A test PKI with the shape of Intel's SGX provisioning hierarchy.

::

    Test SGX Root CA  (self-signed, issues the root CA CRL)
     ├── Test SGX PCK Processor CA  ── PCK certificates, PCK CRL (ca=processor)
     ├── Test SGX PCK Platform CA   ── PCK certificates, PCK CRL (ca=platform)
     └── Test SGX TCB Signing       ── signs TCB info and QE identity documents

Everything is ECDSA P-256 with SHA-256, like Intel's. The names say "Test" and the
organisation says it is not Intel, so nothing made here can be mistaken for real
evidence; ``intel_names=True`` uses Intel's common names (still our own keys) for
verifiers that check them. Validity windows and CRL update times are parameters,
so tests can make expired or not-yet-valid collateral.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from . import _der

SGX_EXTENSION_OID = "1.2.840.113741.1.13.1"
TEST_ORGANIZATION = "BlindAI test PKI (not Intel)"
# ".invalid" never resolves (RFC 6761): the URLs only give the certificates the
# same fields as Intel's.
TEST_PCS_URL = "https://pcs.test.invalid/sgx/certification/v4"
CA_TYPES = ("processor", "platform")


def utc_now() -> dt.datetime:
    """The current time, timezone-aware UTC, truncated to the second."""
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


@dataclass(frozen=True)
class Issued:
    """A certificate and its private key."""

    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def pem(self) -> bytes:
        """The certificate as PEM."""
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    @property
    def der(self) -> bytes:
        """The certificate as DER."""
        return self.certificate.public_bytes(serialization.Encoding.DER)

    @property
    def serial(self) -> int:
        """The certificate's serial number."""
        return self.certificate.serial_number


@dataclass(frozen=True)
class PckInfo:
    """What a PCK certificate's SGX extension states about a platform.

    Defaults mirror the BlindAI 0.3 fixture's platform (FMSPC 00906EA10000,
    components 17,17,2,4,1,128,7,0..., PCESVN 11).
    """

    fmspc: bytes = bytes.fromhex("00906ea10000")
    pce_id: bytes = b"\x00\x00"
    cpusvn: tuple[int, ...] = (17, 17, 2, 4, 1, 128, 7) + (0,) * 9
    pcesvn: int = 11
    ppid: bytes = bytes(range(0x40, 0x50))
    platform_instance_id: bytes = bytes(range(0x60, 0x70))

    def __post_init__(self) -> None:
        if len(self.fmspc) != 6 or len(self.pce_id) != 2 or len(self.ppid) != 16:
            raise ValueError("expected a 6-byte FMSPC, 2-byte PCE-ID, 16-byte PPID")
        if len(self.cpusvn) != 16 or not all(0 <= c <= 255 for c in self.cpusvn):
            raise ValueError(f"expected 16 component SVNs in 0..255: {self.cpusvn}")

    def extension_der(self, ca: str) -> bytes:
        """The DER value of the SGX extension, laid out as Intel's.

        A Processor-CA certificate has PPID, TCB, PCE-ID, FMSPC and SGX Type 0; a
        Platform-CA certificate adds Platform Instance ID and Configuration and has
        SGX Type 1, as in the fixtures.
        """
        items = [
            _pair("1", _der.octet_string(self.ppid)),
            _pair("2", _der.sequence(*self._tcb_items())),
            _pair("3", _der.octet_string(self.pce_id)),
            _pair("4", _der.octet_string(self.fmspc)),
            _pair("5", _der.enumerated(1 if ca == "platform" else 0)),
        ]
        if ca == "platform":
            items.append(_pair("6", _der.octet_string(self.platform_instance_id)))
            config = [
                _pair("7.1", _der.boolean(True)),
                _pair("7.2", _der.boolean(False)),
                _pair("7.3", _der.boolean(False)),
            ]
            items.append(_pair("7", _der.sequence(*config)))
        return _der.sequence(*items)

    def _tcb_items(self) -> list[bytes]:
        items = [
            _pair(f"2.{index}", _der.integer(svn))
            for index, svn in enumerate(self.cpusvn, start=1)
        ]
        items.append(_pair("2.17", _der.integer(self.pcesvn)))
        items.append(_pair("2.18", _der.octet_string(bytes(self.cpusvn))))
        return items


def _pair(suffix: str, value: bytes) -> bytes:
    return _der.sequence(_der.oid(f"{SGX_EXTENSION_OID}.{suffix}"), value)


@dataclass
class TestPki:
    """Root CA, the two PCK CAs and the TCB signing certificate, plus CRLs.

    ``at`` is the reference instant: certificates start an hour before it and last
    ``lifetime``; CRLs default to ``this_update = at - 1 h`` and
    ``next_update = at + 30 days``.
    """

    __test__ = False  # not a pytest test class

    at: dt.datetime = field(default_factory=utc_now)
    lifetime: dt.timedelta = dt.timedelta(days=3650)
    intel_names: bool = False
    root: Issued = field(init=False)
    processor_ca: Issued = field(init=False)
    platform_ca: Issued = field(init=False)
    tcb_signing: Issued = field(init=False)
    revoked: dict[str, set[int]] = field(init=False)

    def __post_init__(self) -> None:
        self.revoked = {"root": set(), "processor": set(), "platform": set()}
        root_key = ec.generate_private_key(ec.SECP256R1())
        root_name = self.name("Root CA")
        self.root = self._issue(
            root_name, root_key.public_key(), issuer=None, key=root_key, ca_path=1
        )
        self.processor_ca = self._issue_ca("PCK Processor CA")
        self.platform_ca = self._issue_ca("PCK Platform CA")
        self.tcb_signing = self.issue_tcb_signing()

    # -- names and certificates ------------------------------------------------

    def name(self, role: str) -> x509.Name:
        """The subject name for ``role`` ("Root CA", "PCK Platform CA", ...)."""
        prefix = "Intel SGX" if self.intel_names else "Test SGX"
        return x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, f"{prefix} {role}"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, TEST_ORGANIZATION),
                x509.NameAttribute(NameOID.LOCALITY_NAME, "Santa Clara"),
                x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "CA"),
                x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            ]
        )

    def ca(self, ca_type: str) -> Issued:
        """The PCK CA for ``ca_type`` ("processor" or "platform")."""
        if ca_type not in CA_TYPES:
            raise ValueError(f"expected a CA type in {CA_TYPES}, got {ca_type!r}")
        return self.processor_ca if ca_type == "processor" else self.platform_ca

    def issue_tcb_signing(
        self,
        *,
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
        key: ec.EllipticCurvePrivateKey | None = None,
    ) -> Issued:
        """A TCB signing certificate; pass ``key`` to re-issue an existing key.

        The new certificate is returned, not installed: assign it to
        ``tcb_signing`` to make documents carry it.
        """
        key = key or ec.generate_private_key(ec.SECP256R1())
        return self._issue(
            self.name("TCB Signing"),
            key.public_key(),
            issuer=self.root,
            key=key,
            not_before=not_before,
            not_after=not_after,
        )

    def issue_pck(
        self,
        info: PckInfo | None = None,
        *,
        ca: str = "processor",
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
    ) -> Issued:
        """A PCK leaf certificate carrying ``info`` in the SGX extension."""
        info = info or PckInfo()
        key = ec.generate_private_key(ec.SECP256R1())
        extension = x509.UnrecognizedExtension(
            x509.ObjectIdentifier(SGX_EXTENSION_OID), info.extension_der(ca)
        )
        return self._issue(
            self.name("PCK Certificate"),
            key.public_key(),
            issuer=self.ca(ca),
            key=key,
            not_before=not_before,
            not_after=not_after,
            crl_url=f"{TEST_PCS_URL}/pckcrl?ca={ca}&encoding=der",
            extra=extension,
        )

    def _issue_ca(self, role: str) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        return self._issue(
            self.name(role), key.public_key(), issuer=self.root, key=key, ca_path=0
        )

    def _issue(
        self,
        subject: x509.Name,
        public_key: ec.EllipticCurvePublicKey,
        *,
        issuer: Issued | None,
        key: ec.EllipticCurvePrivateKey,
        ca_path: int | None = None,
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
        crl_url: str = "https://certificates.test.invalid/TestSGXRootCA.der",
        extra: x509.UnrecognizedExtension | None = None,
    ) -> Issued:
        issuer_name = issuer.certificate.subject if issuer else subject
        signer = issuer.key if issuer else key
        signer_public = signer.public_key()
        is_ca = ca_path is not None
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer_name)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or self.at - dt.timedelta(hours=1))
            .not_valid_after(not_after or self.at + self.lifetime)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(signer_public),
                critical=False,
            )
            .add_extension(_crl_distribution_point(crl_url), critical=False)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False
            )
            .add_extension(_key_usage(is_ca), critical=True)
            .add_extension(
                x509.BasicConstraints(ca=is_ca, path_length=ca_path), critical=True
            )
        )
        if extra is not None:
            builder = builder.add_extension(extra, critical=False)
        return Issued(builder.sign(signer, hashes.SHA256()), key)

    # -- revocation --------------------------------------------------------------

    def revoke(self, serial: int, *, issuer: str) -> None:
        """Put ``serial`` on the CRL of ``issuer`` ("root", "processor", "platform")."""
        if issuer not in self.revoked:
            raise ValueError(
                f"expected an issuer in {sorted(self.revoked)}: {issuer!r}"
            )
        self.revoked[issuer].add(serial)

    def crl(
        self,
        issuer: str,
        *,
        this_update: dt.datetime | None = None,
        next_update: dt.datetime | None = None,
        signer: Issued | None = None,
    ) -> x509.CertificateRevocationList:
        """A freshly signed CRL for ``issuer`` listing what was revoked.

        ``signer`` replaces the issuing CA (to make a CRL from the wrong CA).
        """
        ca = signer or (self.root if issuer == "root" else self.ca(issuer))
        this_update = this_update or self.at - dt.timedelta(hours=1)
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(ca.certificate.subject)
            .last_update(this_update)
            .next_update(next_update or self.at + dt.timedelta(days=30))
            .add_extension(x509.CRLNumber(1), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
                critical=False,
            )
        )
        for serial in sorted(self.revoked[issuer]):
            entry = (
                x509.RevokedCertificateBuilder()
                .serial_number(serial)
                .revocation_date(this_update)
                .build()
            )
            builder = builder.add_revoked_certificate(entry)
        return builder.sign(ca.key, hashes.SHA256())

    # -- chains ----------------------------------------------------------------

    def pck_ca_chain_pem(self, ca_type: str) -> bytes:
        """PCK CA then root, PEM: the PCK CRL issuer chain."""
        return self.ca(ca_type).pem + self.root.pem

    def tcb_chain_pem(self) -> bytes:
        """TCB signing certificate then root, PEM: the TCB info issuer chain."""
        return self.tcb_signing.pem + self.root.pem


def _key_usage(is_ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not is_ca,
        content_commitment=not is_ca,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=is_ca,
        crl_sign=is_ca,
        encipher_only=False,
        decipher_only=False,
    )


def _crl_distribution_point(url: str) -> x509.CRLDistributionPoints:
    point = x509.DistributionPoint(
        full_name=[x509.UniformResourceIdentifier(url)],
        relative_name=None,
        reasons=None,
        crl_issuer=None,
    )
    return x509.CRLDistributionPoints([point])


def crl_pem(crl: x509.CertificateRevocationList) -> bytes:
    """PEM text of a CRL."""
    return crl.public_bytes(serialization.Encoding.PEM)


def crl_der(crl: x509.CertificateRevocationList) -> bytes:
    """DER of a CRL."""
    return crl.public_bytes(serialization.Encoding.DER)
