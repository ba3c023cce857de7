"""``tokenlib.analysis`` exports resolve lazily, are documented, and cover every model module."""

from __future__ import annotations

import importlib
import inspect

import pytest

import tokenlib.analysis as analysis


@pytest.mark.parametrize("name", analysis.__all__)
def test_export_resolves_and_is_documented(name: str) -> None:
    value = getattr(analysis, name)
    if inspect.isfunction(value) or inspect.isclass(value):
        assert inspect.getdoc(value), f"{name} has no docstring"


def test_unknown_name_raises_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_model"):
        getattr(analysis, "no_such_model")  # noqa: B009


@pytest.mark.parametrize(
    "module",
    [
        "inventory",
        "reference",
        "params",
        "models",
        "models.mechanisms",
        "models.context",
        "models.support",
        "models._math",
        "models.components",
        "models.time_to_use",
        "models.exposure",
        "models.simulation",
        "uncertainty",
        "blast",
        "deploy",
        "controls",
        "recommend",
        "sensitivity",
        "headline",
        "plots",
        "report",
    ],
)
def test_every_model_module_is_documented(module: str) -> None:
    mod = importlib.import_module(f"tokenlib.analysis.{module}")
    assert inspect.getdoc(mod)


def test_models_public_names_are_documented() -> None:
    models = importlib.import_module("tokenlib.analysis.models")
    for name in models.__all__:
        value = getattr(models, name)
        if inspect.isfunction(value) or inspect.isclass(value):
            assert inspect.getdoc(value), f"models.{name} has no docstring"
