from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetCertificateRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetCertificateReply(_message.Message):
    __slots__ = ("enclave_tls_certificate",)
    ENCLAVE_TLS_CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    enclave_tls_certificate: bytes
    def __init__(self, enclave_tls_certificate: _Optional[bytes] = ...) -> None: ...

class GetTokenRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetTokenReply(_message.Message):
    __slots__ = ("token",)
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    token: str
    def __init__(self, token: _Optional[str] = ...) -> None: ...

class GetSgxQuoteWithCollateralRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SgxCollateral(_message.Message):
    __slots__ = ("version", "pck_crl_issuer_chain", "root_ca_crl", "pck_crl", "tcb_info_issuer_chain", "tcb_info", "qe_identity_issuer_chain", "qe_identity", "pck_certificate", "pck_signing_chain")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PCK_CRL_ISSUER_CHAIN_FIELD_NUMBER: _ClassVar[int]
    ROOT_CA_CRL_FIELD_NUMBER: _ClassVar[int]
    PCK_CRL_FIELD_NUMBER: _ClassVar[int]
    TCB_INFO_ISSUER_CHAIN_FIELD_NUMBER: _ClassVar[int]
    TCB_INFO_FIELD_NUMBER: _ClassVar[int]
    QE_IDENTITY_ISSUER_CHAIN_FIELD_NUMBER: _ClassVar[int]
    QE_IDENTITY_FIELD_NUMBER: _ClassVar[int]
    PCK_CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    PCK_SIGNING_CHAIN_FIELD_NUMBER: _ClassVar[int]
    version: int
    pck_crl_issuer_chain: str
    root_ca_crl: str
    pck_crl: str
    tcb_info_issuer_chain: str
    tcb_info: str
    qe_identity_issuer_chain: str
    qe_identity: str
    pck_certificate: str
    pck_signing_chain: str
    def __init__(self, version: _Optional[int] = ..., pck_crl_issuer_chain: _Optional[str] = ..., root_ca_crl: _Optional[str] = ..., pck_crl: _Optional[str] = ..., tcb_info_issuer_chain: _Optional[str] = ..., tcb_info: _Optional[str] = ..., qe_identity_issuer_chain: _Optional[str] = ..., qe_identity: _Optional[str] = ..., pck_certificate: _Optional[str] = ..., pck_signing_chain: _Optional[str] = ...) -> None: ...

class GetSgxQuoteWithCollateralReply(_message.Message):
    __slots__ = ("quote", "collateral", "enclave_held_data")
    QUOTE_FIELD_NUMBER: _ClassVar[int]
    COLLATERAL_FIELD_NUMBER: _ClassVar[int]
    ENCLAVE_HELD_DATA_FIELD_NUMBER: _ClassVar[int]
    quote: bytes
    collateral: SgxCollateral
    enclave_held_data: bytes
    def __init__(self, quote: _Optional[bytes] = ..., collateral: _Optional[_Union[SgxCollateral, _Mapping]] = ..., enclave_held_data: _Optional[bytes] = ...) -> None: ...

class GetServerInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetServerInfoReply(_message.Message):
    __slots__ = ("version", "product_version", "capabilities", "mode")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_VERSION_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    version: str
    product_version: str
    capabilities: _containers.RepeatedScalarFieldContainer[str]
    mode: str
    def __init__(self, version: _Optional[str] = ..., product_version: _Optional[str] = ..., capabilities: _Optional[_Iterable[str]] = ..., mode: _Optional[str] = ...) -> None: ...
