"""JsonLogic targeting rules, with flagd's operators, compiled once into Python closures.

A rule is refused at write time unless every node is an operator this module knows: no code
runs, no operator is looked up at evaluation time, and rules are bounded in depth and size.
The PyPI JsonLogic packages were not fit (``json-logic`` and ``json-logic-qubit``: no release
since 2015 and 2018; ``panzi-json-logic``: 2021; ``python-jsonlogic``: young, and none knows
flagd's ``fractional``, ``sem_ver``, ``starts_with`` or ``ends_with``), so this is the
documented subset (jsonlogic.com's operations plus flagd's custom operations), tested whole.

Semantics follow json-logic-js where flagd does not say otherwise: falsy values are ``false``,
``null``, ``0``, ``""`` and ``[]``; ``==`` converts like JavaScript's loose equality for
numbers, strings and booleans; a custom operation given bad arguments yields ``null``.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import mmh3

MAX_DEPTH = 32
MAX_NODES = 2000

# What a compiled rule reads: the evaluation context with ``$flagd`` (flagKey, timestamp)
# and ``targetingKey``, and notes the evaluation leaves behind (``split``).
Context = dict[str, Any]
Rule = Callable[["Evaluation"], Any]


@dataclass(slots=True)
class Evaluation:
    """One evaluation's input, and what a ``fractional`` decided (for the SPLIT reason)."""

    data: Context
    flag_key: str
    split: Any = field(default=None)
    split_used: bool = False
    needs_targeting_key: bool = False


class RuleError(ValueError):
    """A rule this module refuses to run; ``path`` says where, e.g. ``targeting.if[1]``."""

    def __init__(self, message: str, path: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.reason = message


def truthy(value: Any) -> bool:
    if isinstance(value, list):
        return bool(value)
    if isinstance(value, float) and math.isnan(value):
        return False
    return value is not None and value is not False and value != 0 and value != ""


def _number(value: Any) -> float:
    """JavaScript's ``Number(value)`` for JSON values (NaN when it has none)."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        return float(value)
    if value is None:
        return 0.0
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return 0.0
        try:
            return float(text)
        except ValueError:
            return math.nan
    return math.nan


def loose_equal(a: Any, b: Any) -> bool:
    """JavaScript's ``==`` for JSON values."""
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, dict | list) or isinstance(b, dict | list):
        return a is b
    if isinstance(a, str) and isinstance(b, str):
        return a == b
    return _number(a) == _number(b)


def strict_equal(a: Any, b: Any) -> bool:
    """JavaScript's ``===`` for JSON values (1 and 1.0 are one number; true is not 1)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, dict | list) or isinstance(b, dict | list):
        return a is b
    return type(a) is type(b) and a == b


def _less(a: Any, b: Any, *, equal: bool) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        return a <= b if equal else a < b
    x, y = _number(a), _number(b)
    if math.isnan(x) or math.isnan(y):
        return False
    return x <= y if equal else x < y


def lookup(data: Any, path: Any) -> tuple[bool, Any]:
    """``var``'s lookup: dotted path through objects and arrays; (found, value)."""
    if path is None or path == "":
        return True, data
    current = data
    for part in str(path).split(".") if not isinstance(path, int | float) else [path]:
        if isinstance(current, dict):
            if part not in current:
                return False, None
            current = current[part]
        elif isinstance(current, list):
            try:
                current = current[int(part)]
            except (ValueError, IndexError):
                return False, None
        else:
            return False, None
    return True, current


# flagd's custom operations ------------------------------------------------------------------


def bucket(hash_input: str, weights: list[int]) -> int | None:
    """Which of ``weights`` a hashed input falls in: flagd's arithmetic (murmur3 32-bit,
    unsigned, seed 0, over the UTF-8 text; the hash scaled onto [0, total) by a shift)."""
    total = sum(weights)
    if total <= 0:
        return None
    point = (mmh3.hash(hash_input, 0, signed=False) * total) >> 32
    end = 0
    for index, weight in enumerate(weights):
        end += weight
        if point < end:
            return index
    return None  # unreachable: point < total


_SEMVER = re.compile(
    r"^v?(0|[1-9]\d*)(?:\.(0|[1-9]\d*))?(?:\.(0|[1-9]\d*))?"
    r"(?:-((?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*))?"
    r"(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$"
)


def _semver(value: Any) -> tuple[int, int, int, tuple[tuple[int, Any], ...] | None] | None:
    """A version as Go's golang.org/x/mod/semver reads it (which flagd uses): ``v`` optional,
    minor and patch may be left out, pre-release identifiers compared numerically or not."""
    text = value if isinstance(value, str) else _text(value)
    if text[:1] == "V":
        text = text[1:]
    found = _SEMVER.match(text)
    if found is None:
        return None
    major, minor, patch, pre = found.groups()
    pre_key = None
    if pre is not None:
        pre_key = tuple((0, int(p)) if p.isdigit() else (1, p) for p in pre.split("."))
    return int(major), int(minor or 0), int(patch or 0), pre_key


def _semver_cmp(a: tuple[Any, ...], b: tuple[Any, ...]) -> int:
    if a[:3] != b[:3]:
        return -1 if a[:3] < b[:3] else 1
    pa, pb = a[3], b[3]
    if pa == pb:
        return 0
    if pa is None:
        return 1  # a release is above its pre-releases
    if pb is None:
        return -1
    return -1 if pa < pb else 1


def sem_ver(args: list[Any]) -> bool | None:
    if len(args) != 3 or not isinstance(args[1], str):
        return None
    left, op, right = _semver(args[0]), args[1], _semver(args[2])
    if left is None or right is None:
        return None
    order = _semver_cmp(left, right)
    results = {
        "=": order == 0,
        "!=": order != 0,
        "<": order < 0,
        "<=": order <= 0,
        ">": order > 0,
        ">=": order >= 0,
        "^": left[0] == right[0],
        "~": left[:2] == right[:2],
    }
    return results.get(op)


def _text(value: Any) -> str:
    """JavaScript's ``String(value)`` for the JSON values ``cat`` joins."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list):
        return ",".join("" if v is None else _text(v) for v in value)
    return str(value)


# Compilation --------------------------------------------------------------------------------


_NOTHING = object()


@dataclass(slots=True)
class _Budget:
    """A compilation's state: nodes seen, and the literal each constant closure returns (so
    operators can specialise on literal arguments: a ``var`` path split once, a set for
    ``in``)."""

    nodes: int = 0
    constants: dict[int, Any] = field(default_factory=dict)
    reads_clock: bool = False  # the rule may read $flagd.timestamp: its result changes alone
    # The context's top-level attributes the rule reads (targetingKey for a split), and whether
    # it may read others, named only when it runs (``missing``): then ``reads`` is not whole.
    reads: set[str] = field(default_factory=set)
    reads_unnamed: bool = False

    def literal(self, rule: Rule) -> Any:
        return self.constants.get(id(rule), _NOTHING)


Operator = Callable[[list[Rule], str, _Budget], Rule]
_OPERATORS: dict[str, Operator] = {}


def _operator(*names: str) -> Callable[[Operator], Operator]:
    def register(build: Operator) -> Operator:
        for name in names:
            _OPERATORS[name] = build
        return build

    return register


OPERATORS = _OPERATORS  # read-only outside: the operators a rule may use


def compile_rule(
    rule: Any, path: str = "targeting", evaluators: Mapping[str, Any] | None = None
) -> Rule:
    """A closure evaluating ``rule``; raises ``RuleError`` for anything it would not run.

    ``{"$ref": name}`` stands for the shared evaluator ``name`` (flagd's ``$evaluators``);
    without ``evaluators`` a reference is refused.
    """
    return compile_targeting(rule, path, evaluators)[0]


def compile_targeting(
    rule: Any, path: str = "targeting", evaluators: Mapping[str, Any] | None = None
) -> tuple[Rule, bool, tuple[str, ...] | None]:
    """``compile_rule``; whether the rule may read the clock (``$flagd.timestamp``, or the
    context through a path only known when it runs): then its answers cannot be remembered;
    and else the context's top-level attributes its result depends on (None: not known)."""
    budget = _Budget()
    compiled = _compile(rule, path, evaluators, budget, 0, ())
    known = not budget.reads_clock and not budget.reads_unnamed
    return compiled, budget.reads_clock, tuple(sorted(budget.reads)) if known else None


def _compile(
    rule: Any,
    path: str,
    evaluators: Mapping[str, Any] | None,
    budget: _Budget,
    depth: int,
    refs: tuple[str, ...],
) -> Rule:
    budget.nodes += 1
    if budget.nodes > MAX_NODES:
        raise RuleError(f"the rule has more than {MAX_NODES} nodes", path)
    if depth > MAX_DEPTH:
        raise RuleError(f"the rule nests deeper than {MAX_DEPTH} levels", path)
    if isinstance(rule, list) and not _has_operation(rule):
        constant_list: Rule = lambda ev: rule  # noqa: E731
        budget.constants[id(constant_list)] = rule
        return constant_list
    if isinstance(rule, list):
        items = [
            _compile(r, f"{path}[{i}]", evaluators, budget, depth + 1, refs)
            for i, r in enumerate(rule)
        ]
        return lambda ev: [item(ev) for item in items]
    if not isinstance(rule, dict):
        constant: Rule = lambda ev: rule  # noqa: E731
        budget.constants[id(constant)] = rule
        return constant
    if len(rule) != 1:
        raise RuleError(
            "an operation is an object with exactly one key, the operator"
            + (f" (found {', '.join(sorted(rule))})" if rule else ""),
            path,
        )
    ((name, raw_args),) = rule.items()
    if name == "$ref":
        return _reference(raw_args, path, evaluators, budget, depth, refs)
    build = _OPERATORS.get(name)
    if build is None:
        raise RuleError(f"unknown operator {name!r}", path)
    arg_list = raw_args if isinstance(raw_args, list) else [raw_args]
    args = [
        _compile(a, f"{path}.{name}[{i}]", evaluators, budget, depth + 1, refs)
        for i, a in enumerate(arg_list)
    ]
    return build(args, f"{path}.{name}", budget)


def _has_operation(rule: Any) -> bool:
    if isinstance(rule, dict):
        return True
    return isinstance(rule, list) and any(_has_operation(item) for item in rule)


def _reference(
    name: Any,
    path: str,
    evaluators: Mapping[str, Any] | None,
    budget: _Budget,
    depth: int,
    refs: tuple[str, ...],
) -> Rule:
    if not isinstance(name, str):
        raise RuleError("$ref names a shared evaluator: it must be a string", path)
    if evaluators is None:
        return lambda ev: None  # checked at write time alone; resolved with the namespace
    if name not in evaluators:
        raise RuleError(f"$ref names the shared evaluator {name!r}, which is not defined", path)
    if name in refs:
        raise RuleError(f"the shared evaluator {name!r} refers to itself", path)
    return _compile(
        evaluators[name], f"$evaluators.{name}", evaluators, budget, depth + 1, (*refs, name)
    )


def _arity(args: list[Rule], path: str, low: int, high: int | None = None) -> None:
    high = low if high is None else high
    if not low <= len(args) <= high:
        wanted = str(low) if low == high else f"{low} to {high}"
        raise RuleError(f"takes {wanted} argument(s), not {len(args)}", path)


@_operator("var")
def _var(args: list[Rule], path: str, budget: _Budget) -> Rule:
    _arity(args, path, 0, 2)
    if not args:
        budget.reads_clock = True
        return _whole_context
    key, default = args[0], (args[1] if len(args) > 1 else (lambda ev: None))
    literal = budget.literal(key)
    if isinstance(literal, str) and literal.startswith("$flagd."):
        budget.reads_clock |= literal == "$flagd.timestamp"
        return _flagd(literal.removeprefix("$flagd."), default)
    if isinstance(literal, str) and literal and "." not in literal:
        budget.reads.add(literal)

        def field_of(ev: Evaluation) -> Any:  # the common case: one attribute, no copy
            value = ev.data.get(literal)
            return value if value is not None else default(ev)

        return field_of

    if isinstance(literal, str) and literal and not literal.startswith("$flagd"):
        budget.reads.add(literal.split(".", 1)[0])

        def path_of(ev: Evaluation) -> Any:  # a dotted path into the caller's context
            found, value = lookup(ev.data, literal)
            return value if found and value is not None else default(ev)

        return path_of

    budget.reads_clock = True

    def var(ev: Evaluation) -> Any:
        found, value = lookup(_context_of(ev), key(ev))
        return value if found and value is not None else default(ev)

    return var


def _flagd(name: str, default: Rule) -> Rule:
    """``$flagd.flagKey`` and ``$flagd.timestamp``, as flagd adds them to the context."""
    if name == "flagKey":
        return lambda ev: ev.flag_key
    if name == "timestamp":
        return lambda ev: int(time.time())
    return default


def _context_of(ev: Evaluation) -> Any:
    """The context as rules see it whole: the caller's, with ``$flagd`` added."""
    return {**ev.data, "$flagd": {"flagKey": ev.flag_key, "timestamp": int(time.time())}}


def _whole_context(ev: Evaluation) -> Any:
    return _context_of(ev)


@_operator("missing")
def _missing(args: list[Rule], path: str, budget: _Budget) -> Rule:
    budget.reads_unnamed = True

    def missing(ev: Evaluation) -> list[Any]:
        names = [a(ev) for a in args]
        if len(names) == 1 and isinstance(names[0], list):
            names = names[0]
        return [n for n in names if lookup(ev.data, n)[1] in (None, "")]

    return missing


@_operator("missing_some")
def _missing_some(args: list[Rule], path: str, budget: _Budget) -> Rule:
    _arity(args, path, 2)
    need, names = args
    budget.reads_unnamed = True

    def missing_some(ev: Evaluation) -> list[Any]:
        wanted = names(ev) or []
        absent = [n for n in wanted if lookup(ev.data, n)[1] in (None, "")]
        return [] if len(wanted) - len(absent) >= _number(need(ev)) else absent

    return missing_some


@_operator("if", "?:")
def _if(args: list[Rule], path: str, budget: _Budget) -> Rule:
    pairs = [(args[i], args[i + 1]) for i in range(0, len(args) - 1, 2)]
    otherwise = args[-1] if len(args) % 2 else None

    def if_(ev: Evaluation) -> Any:
        for condition, then in pairs:
            if truthy(condition(ev)):
                return then(ev)
        return otherwise(ev) if otherwise is not None else None

    return if_


def _binary(test: Callable[[Any, Any], bool]) -> Operator:
    def build(args: list[Rule], path: str, budget: _Budget) -> Rule:
        _arity(args, path, 2)
        left, right = args
        return lambda ev: test(left(ev), right(ev))

    return build


_operator("==")(_binary(loose_equal))
_operator("!=")(_binary(lambda a, b: not loose_equal(a, b)))
_operator("===")(_binary(strict_equal))
_operator("!==")(_binary(lambda a, b: not strict_equal(a, b)))


def _comparison(equal: bool) -> Operator:
    def build(args: list[Rule], path: str, budget: _Budget) -> Rule:
        _arity(args, path, 2, 3)
        if len(args) == 3:  # between: a < b < c
            a, b, c = args

            def between(ev: Evaluation) -> bool:
                middle = b(ev)
                return _less(a(ev), middle, equal=equal) and _less(middle, c(ev), equal=equal)

            return between
        left, right = args
        return lambda ev: _less(left(ev), right(ev), equal=equal)

    return build


_operator("<")(_comparison(False))
_operator("<=")(_comparison(True))
_operator(">")(_binary(lambda a, b: _less(b, a, equal=False)))
_operator(">=")(_binary(lambda a, b: _less(b, a, equal=True)))


@_operator("!")
def _not(args: list[Rule], path: str, budget: _Budget) -> Rule:
    _arity(args, path, 1)
    (value,) = args
    return lambda ev: not truthy(value(ev))


@_operator("!!")
def _truthy(args: list[Rule], path: str, budget: _Budget) -> Rule:
    _arity(args, path, 1)
    (value,) = args
    return lambda ev: truthy(value(ev))


@_operator("and")
def _and(args: list[Rule], path: str, budget: _Budget) -> Rule:
    _arity(args, path, 1, MAX_NODES)

    def and_(ev: Evaluation) -> Any:
        value = None
        for arg in args:
            value = arg(ev)
            if not truthy(value):
                return value
        return value

    return and_


@_operator("or")
def _or(args: list[Rule], path: str, budget: _Budget) -> Rule:
    _arity(args, path, 1, MAX_NODES)

    def or_(ev: Evaluation) -> Any:
        value = None
        for arg in args:
            value = arg(ev)
            if truthy(value):
                return value
        return value

    return or_


@_operator("in")
def _in(args: list[Rule], path: str, budget: _Budget) -> Rule:
    _arity(args, path, 2)
    needle, haystack = args
    literal = budget.literal(haystack)
    if isinstance(literal, list) and all(isinstance(m, str) for m in literal):
        members = frozenset(literal)  # strings: === is plain equality, a set answers at once

        def in_strings(ev: Evaluation) -> bool:
            item = needle(ev)
            return isinstance(item, str) and item in members

        return in_strings

    def in_(ev: Evaluation) -> bool:
        item, container = needle(ev), haystack(ev)
        if isinstance(container, str):
            return isinstance(item, str) and item in container
        if isinstance(container, list):
            return any(strict_equal(item, member) for member in container)
        return False

    return in_


@_operator("cat")
def _cat(args: list[Rule], path: str, budget: _Budget) -> Rule:
    return lambda ev: "".join(_text(a(ev)) for a in args)


@_operator("substr")
def _substr(args: list[Rule], path: str, budget: _Budget) -> Rule:
    _arity(args, path, 2, 3)

    def substr(ev: Evaluation) -> str:
        text = _text(args[0](ev))
        start = int(_number(args[1](ev)) or 0)
        begin = max(len(text) + start, 0) if start < 0 else start
        if len(args) < 3:
            return text[begin:]
        length = int(_number(args[2](ev)) or 0)
        end = len(text) + length if length < 0 else begin + length
        return text[begin:end]

    return substr


def _arithmetic(fold: Callable[[list[float]], float], low: int) -> Operator:
    def build(args: list[Rule], path: str, budget: _Budget) -> Rule:
        _arity(args, path, low, MAX_NODES)

        def arithmetic(ev: Evaluation) -> float | int | None:
            numbers = [_number(a(ev)) for a in args]
            try:
                result = fold(numbers)
            except (ZeroDivisionError, ValueError, OverflowError):
                return None
            if math.isnan(result) or math.isinf(result):
                return None
            return int(result) if result.is_integer() else result

        return arithmetic

    return build


_operator("+")(_arithmetic(math.fsum, 0))
_operator("*")(_arithmetic(math.prod, 1))
_operator("-")(_arithmetic(lambda n: -n[0] if len(n) == 1 else n[0] - n[1], 1))
_operator("/")(_arithmetic(lambda n: n[0] / n[1], 2))
_operator("%")(_arithmetic(lambda n: math.fmod(n[0], n[1]), 2))
_operator("min")(_arithmetic(min, 1))
_operator("max")(_arithmetic(max, 1))


@_operator("merge")
def _merge(args: list[Rule], path: str, budget: _Budget) -> Rule:
    def merge(ev: Evaluation) -> list[Any]:
        merged: list[Any] = []
        for arg in args:
            value = arg(ev)
            merged.extend(value if isinstance(value, list) else [value])
        return merged

    return merge


@_operator("starts_with", "ends_with")
def _affix(args: list[Rule], path: str, budget: _Budget) -> Rule:
    _arity(args, path, 2)
    value, affix = args
    starts = path.endswith("starts_with")

    def affixed(ev: Evaluation) -> bool | None:
        text, part = value(ev), affix(ev)
        if not isinstance(text, str) or not isinstance(part, str):
            return None
        return text.startswith(part) if starts else text.endswith(part)

    return affixed


@_operator("sem_ver")
def _sem_ver(args: list[Rule], path: str, budget: _Budget) -> Rule:
    _arity(args, path, 3)
    return lambda ev: sem_ver([a(ev) for a in args])


@_operator("fractional")
def _fractional(args: list[Rule], path: str, budget: _Budget) -> Rule:
    """``[bucketBy?, [variant, weight?], …]``; with no bucketing expression the input is the
    flag's key followed by the targeting key, as flagd hashes it."""
    _arity(args, path, 1, MAX_NODES)
    budget.reads.add("targetingKey")

    def fractional(ev: Evaluation) -> Any:
        values = [a(ev) for a in args]
        first = values[0]
        if isinstance(first, str):
            hash_input, buckets = first, values[1:]
        else:
            buckets = values[1:] if first is None else values
            key = ev.data.get("targetingKey")
            if not isinstance(key, str) or not key:
                ev.needs_targeting_key = True
                return None
            hash_input = ev.flag_key + key
        weights: list[int] = []
        for item in buckets:
            if not isinstance(item, list) or not item:
                return None
            weight = item[1] if len(item) > 1 else 1
            if isinstance(weight, bool) or not isinstance(weight, int | float):
                return None
            weights.append(max(int(weight), 0))
        index = bucket(hash_input, weights)
        if index is None:
            return None
        chosen = buckets[index][0]
        ev.split, ev.split_used = chosen, True
        return chosen

    return fractional
