import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DatumTypeEnum(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    F32: _ClassVar[DatumTypeEnum]
    F64: _ClassVar[DatumTypeEnum]
    I32: _ClassVar[DatumTypeEnum]
    I64: _ClassVar[DatumTypeEnum]
    U32: _ClassVar[DatumTypeEnum]
    U64: _ClassVar[DatumTypeEnum]
F32: DatumTypeEnum
F64: DatumTypeEnum
I32: DatumTypeEnum
I64: DatumTypeEnum
U32: DatumTypeEnum
U64: DatumTypeEnum

class ClientInfo(_message.Message):
    __slots__ = ("uid", "platform_name", "platform_arch", "platform_version", "platform_release", "user_agent", "user_agent_version")
    UID_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_NAME_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_ARCH_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_VERSION_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_RELEASE_FIELD_NUMBER: _ClassVar[int]
    USER_AGENT_FIELD_NUMBER: _ClassVar[int]
    USER_AGENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    uid: str
    platform_name: str
    platform_arch: str
    platform_version: str
    platform_release: str
    user_agent: str
    user_agent_version: str
    def __init__(self, uid: _Optional[str] = ..., platform_name: _Optional[str] = ..., platform_arch: _Optional[str] = ..., platform_version: _Optional[str] = ..., platform_release: _Optional[str] = ..., user_agent: _Optional[str] = ..., user_agent_version: _Optional[str] = ...) -> None: ...

class SendModelRequest(_message.Message):
    __slots__ = ("data", "length", "input_fact", "datum", "sign", "client_info", "model_name", "datum_output")
    DATA_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    INPUT_FACT_FIELD_NUMBER: _ClassVar[int]
    DATUM_FIELD_NUMBER: _ClassVar[int]
    SIGN_FIELD_NUMBER: _ClassVar[int]
    CLIENT_INFO_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    DATUM_OUTPUT_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    length: int
    input_fact: _containers.RepeatedScalarFieldContainer[int]
    datum: DatumTypeEnum
    sign: bool
    client_info: ClientInfo
    model_name: str
    datum_output: DatumTypeEnum
    def __init__(self, data: _Optional[bytes] = ..., length: _Optional[int] = ..., input_fact: _Optional[_Iterable[int]] = ..., datum: _Optional[_Union[DatumTypeEnum, str]] = ..., sign: _Optional[bool] = ..., client_info: _Optional[_Union[ClientInfo, _Mapping]] = ..., model_name: _Optional[str] = ..., datum_output: _Optional[_Union[DatumTypeEnum, str]] = ...) -> None: ...

class SendModelReply(_message.Message):
    __slots__ = ("payload", "signature")
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    payload: bytes
    signature: bytes
    def __init__(self, payload: _Optional[bytes] = ..., signature: _Optional[bytes] = ...) -> None: ...

class TensorInfo(_message.Message):
    __slots__ = ("datum", "shape")
    DATUM_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    datum: DatumTypeEnum
    shape: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, datum: _Optional[_Union[DatumTypeEnum, str]] = ..., shape: _Optional[_Iterable[int]] = ...) -> None: ...

class RunModelRequest(_message.Message):
    __slots__ = ("input", "sign", "client_info", "tensor", "tensor_data")
    INPUT_FIELD_NUMBER: _ClassVar[int]
    SIGN_FIELD_NUMBER: _ClassVar[int]
    CLIENT_INFO_FIELD_NUMBER: _ClassVar[int]
    TENSOR_FIELD_NUMBER: _ClassVar[int]
    TENSOR_DATA_FIELD_NUMBER: _ClassVar[int]
    input: bytes
    sign: bool
    client_info: ClientInfo
    tensor: TensorInfo
    tensor_data: bytes
    def __init__(self, input: _Optional[bytes] = ..., sign: _Optional[bool] = ..., client_info: _Optional[_Union[ClientInfo, _Mapping]] = ..., tensor: _Optional[_Union[TensorInfo, _Mapping]] = ..., tensor_data: _Optional[bytes] = ...) -> None: ...

class RunModelReply(_message.Message):
    __slots__ = ("payload", "signature")
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    payload: bytes
    signature: bytes
    def __init__(self, payload: _Optional[bytes] = ..., signature: _Optional[bytes] = ...) -> None: ...

class PayloadHeader(_message.Message):
    __slots__ = ("issued_at",)
    ISSUED_AT_FIELD_NUMBER: _ClassVar[int]
    issued_at: _timestamp_pb2.Timestamp
    def __init__(self, issued_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SendModelPayload(_message.Message):
    __slots__ = ("model_hash", "input_fact")
    MODEL_HASH_FIELD_NUMBER: _ClassVar[int]
    INPUT_FACT_FIELD_NUMBER: _ClassVar[int]
    model_hash: bytes
    input_fact: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, model_hash: _Optional[bytes] = ..., input_fact: _Optional[_Iterable[int]] = ...) -> None: ...

class RunModelPayload(_message.Message):
    __slots__ = ("output", "datum_output", "input_hash", "model_hash", "input_tensor", "input_tensor_hash", "output_shape")
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    DATUM_OUTPUT_FIELD_NUMBER: _ClassVar[int]
    INPUT_HASH_FIELD_NUMBER: _ClassVar[int]
    MODEL_HASH_FIELD_NUMBER: _ClassVar[int]
    INPUT_TENSOR_FIELD_NUMBER: _ClassVar[int]
    INPUT_TENSOR_HASH_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_SHAPE_FIELD_NUMBER: _ClassVar[int]
    output: bytes
    datum_output: DatumTypeEnum
    input_hash: bytes
    model_hash: bytes
    input_tensor: TensorInfo
    input_tensor_hash: bytes
    output_shape: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, output: _Optional[bytes] = ..., datum_output: _Optional[_Union[DatumTypeEnum, str]] = ..., input_hash: _Optional[bytes] = ..., model_hash: _Optional[bytes] = ..., input_tensor: _Optional[_Union[TensorInfo, _Mapping]] = ..., input_tensor_hash: _Optional[bytes] = ..., output_shape: _Optional[_Iterable[int]] = ...) -> None: ...

class Payload(_message.Message):
    __slots__ = ("header", "send_model_payload", "run_model_payload")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    SEND_MODEL_PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    RUN_MODEL_PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    header: PayloadHeader
    send_model_payload: SendModelPayload
    run_model_payload: RunModelPayload
    def __init__(self, header: _Optional[_Union[PayloadHeader, _Mapping]] = ..., send_model_payload: _Optional[_Union[SendModelPayload, _Mapping]] = ..., run_model_payload: _Optional[_Union[RunModelPayload, _Mapping]] = ...) -> None: ...
