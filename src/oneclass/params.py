"""Parameters declared once per estimator, in scikit-learn's way.

Each estimator lists its parameters in ``__init__`` (names and defaults) and declares, next to
the class, one :class:`Param` per name: the constraint a value must meet and a one-line help
text. From these come ``get_params`` (the signature's names), the validation (one-line errors
that name the parameter) and the command line's options (types, choices, defaults and help:
``cli.py`` builds them from the same declarations), so a parameter is written down once.
"""

from __future__ import annotations

import inspect
import math
import numbers
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from .errors import OneClassError


class Constraint:
    """What a parameter's value must be; ``check`` raises a one-line :class:`OneClassError`."""

    none_ok: bool = False

    def check(self, name: str, value: Any) -> None:
        if value is None and self.none_ok:
            return
        if not self.accepts(value):
            raise OneClassError(f"{name} must be {self.describe()}, got {value!r}")

    def accepts(self, value: Any) -> bool:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError


@dataclass(frozen=True)
class Interval(Constraint):
    """A number in an interval: ``kind`` int or float, ``low`` / ``high`` None for unbounded,
    ``closed`` one of "both", "left", "right", "neither"."""

    kind: type
    low: float | None = None
    high: float | None = None
    closed: str = "both"
    none_ok: bool = False

    def accepts(self, value: Any) -> bool:
        if isinstance(value, bool):
            return False
        wanted = numbers.Integral if self.kind is int else numbers.Real
        if not isinstance(value, wanted) or (self.kind is float and not math.isfinite(value)):
            return False
        if self.low is not None and not (
            value >= self.low if self.closed in ("both", "left") else value > self.low
        ):
            return False
        return self.high is None or (
            value <= self.high if self.closed in ("both", "right") else value < self.high
        )

    def describe(self) -> str:
        noun = "an integer" if self.kind is int else "a number"
        if self.low is not None and self.high is not None:
            left = "[" if self.closed in ("both", "left") else "("
            right = "]" if self.closed in ("both", "right") else ")"
            return f"{noun} in {left}{self.low:g}, {self.high:g}{right}"
        if self.low is not None:
            return f"{noun} {'>=' if self.closed in ('both', 'left') else '>'} {self.low:g}"
        if self.high is not None:
            return f"{noun} {'<=' if self.closed in ('both', 'right') else '<'} {self.high:g}"
        return noun


@dataclass(frozen=True)
class Options(Constraint):
    """One of a set of names; a registry (a dict) can be passed and is read when checking, so
    what is registered later counts too."""

    choices: Collection[str] | Mapping[str, Any]
    none_ok: bool = False

    def names(self) -> list[str]:
        return list(self.choices)

    def accepts(self, value: Any) -> bool:
        return isinstance(value, str) and value in self.names()

    def describe(self) -> str:
        return "one of " + ", ".join(self.names())


@dataclass(frozen=True)
class Boolean(Constraint):
    def accepts(self, value: Any) -> bool:
        return isinstance(value, bool)

    def describe(self) -> str:
        return "True or False"


@dataclass(frozen=True)
class PositiveInts(Constraint):
    """A non-empty sequence of integers >= 1 (e.g. channels per network stage)."""

    none_ok: bool = False

    def accepts(self, value: Any) -> bool:
        return (
            isinstance(value, (tuple, list))
            and len(value) > 0
            and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 1 for v in value)
        )

    def describe(self) -> str:
        return "a non-empty sequence of integers >= 1"


@dataclass(frozen=True)
class Param:
    """A declared parameter: its constraint and the help text the command line shows."""

    constraint: Constraint
    help: str = ""


class Estimator:
    """Base of every estimator: ``parameters`` declares each ``__init__`` argument."""

    parameters: ClassVar[dict[str, Param]] = {}

    @classmethod
    def param_names(cls) -> list[str]:
        signature = inspect.signature(cls.__init__)
        return [
            name
            for name, p in signature.parameters.items()
            if name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
        ]

    @classmethod
    def param_defaults(cls) -> dict[str, Any]:
        signature = inspect.signature(cls.__init__).parameters
        return {name: signature[name].default for name in cls.param_names()}

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Every ``__init__`` argument and its value, as scikit-learn's ``get_params`` (so that
        ``sklearn.base.clone`` and its search tools work; ``deep`` changes nothing: no parameter is
        itself an estimator)."""
        return {name: getattr(self, name) for name in self.param_names()}

    def set_params(self, **params: Any) -> Estimator:
        """Set ``__init__`` arguments by name, as scikit-learn's ``set_params``; returns self. The
        values are checked when ``fit`` runs, as scikit-learn does."""
        unknown = sorted(set(params) - set(self.param_names()))
        if unknown:
            raise OneClassError(
                f"{type(self).__name__} has no parameter {', '.join(map(repr, unknown))}; "
                f"its parameters: {', '.join(self.param_names())}"
            )
        for name, value in params.items():
            setattr(self, name, value)
        return self

    def model_params(self) -> dict[str, Any]:
        """The declared parameters: the settings a saved model is rebuilt from (not ``quiet``)."""
        return {name: getattr(self, name) for name in self.param_names() if name in self.parameters}

    def validate_params(self) -> None:
        for name, param in self.parameters.items():
            param.constraint.check(name, getattr(self, name))


def construct(cls: type, **settings: Any) -> Any:
    """``cls(**settings)`` keeping only the settings its ``__init__`` takes; a None setting means
    "the class's own default"."""
    accepted = set(inspect.signature(cls.__init__).parameters)
    return cls(**{k: v for k, v in settings.items() if k in accepted and v is not None})
