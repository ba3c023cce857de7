"""The public API is exactly what ``__all__`` lists, and every error is exported."""

from __future__ import annotations

import inspect

import tokenlib
from tokenlib import errors


def test_all_names_exist() -> None:
    for name in tokenlib.__all__:
        assert hasattr(tokenlib, name), name


def test_every_error_is_exported() -> None:
    classes = {
        name
        for name, obj in vars(errors).items()
        if inspect.isclass(obj) and issubclass(obj, errors.TokenError)
    }
    assert classes <= set(tokenlib.__all__)
    assert set(errors.__all__) == classes


def test_every_error_has_an_rfc_code_and_status() -> None:
    for name in errors.__all__:
        cls = getattr(errors, name)
        assert isinstance(cls.error, str)
        assert cls.error
        assert cls.default_status in (400, 401, 403, 429, 503)


def test_public_objects_are_documented() -> None:
    for name in tokenlib.__all__:
        obj = getattr(tokenlib, name)
        if callable(obj):
            assert inspect.getdoc(obj), f"{name} has no docstring"
