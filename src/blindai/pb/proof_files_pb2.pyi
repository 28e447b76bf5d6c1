from blindai.pb import untrusted_pb2 as _untrusted_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ResponseProof(_message.Message):
    __slots__ = ("attestation", "payload", "signature")
    ATTESTATION_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    attestation: _untrusted_pb2.GetSgxQuoteWithCollateralReply
    payload: bytes
    signature: bytes
    def __init__(self, attestation: _Optional[_Union[_untrusted_pb2.GetSgxQuoteWithCollateralReply, _Mapping]] = ..., payload: _Optional[bytes] = ..., signature: _Optional[bytes] = ...) -> None: ...
