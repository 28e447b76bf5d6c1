"""Unexpected handler failures become INTERNAL, and their text stays out of logs."""

from __future__ import annotations

import logging

import grpc
import pytest

from blindai.server.guard import guarded


class Aborted(Exception):
    pass


class FakeContext:
    def __init__(self) -> None:
        self._code = None
        self.details = None

    def code(self):
        return self._code

    def abort(self, code, details):
        self._code, self.details = code, details
        raise Aborted()  # grpc's server context raises a bare Exception


class Service:
    @guarded
    def Fails(self, request, context):  # noqa: N802
        raise ValueError(f"could not use value {request}")

    @guarded
    def Refuses(self, request, context):  # noqa: N802
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, "bad input")

    @guarded
    def Works(self, request, context):  # noqa: N802
        return request * 2


def test_unexpected_error_is_internal_with_reference(caplog):
    context = FakeContext()
    with caplog.at_level(logging.DEBUG), pytest.raises(Aborted):
        Service().Fails(31337.4242, context)
    assert context._code == grpc.StatusCode.INTERNAL
    assert "reference" in context.details and "31337" not in context.details
    assert "ValueError" in caplog.text
    assert "31337" not in caplog.text


def test_deliberate_refusals_pass_through():
    context = FakeContext()
    with pytest.raises(Aborted):
        Service().Refuses(1, context)
    assert context._code == grpc.StatusCode.INVALID_ARGUMENT
    assert context.details == "bad input"


def test_success_is_untouched():
    assert Service().Works(21, FakeContext()) == 42
