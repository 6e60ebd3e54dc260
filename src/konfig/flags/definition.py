"""A flag's definition, in flagd's shape, and what it evaluates to for a context.

An entry of value type ``flag`` holds one flag of a flagd file's ``flags`` object:

    {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off",
     "targeting": {"fractional": [["on", 10], ["off", 90]]}, "metadata": {"team": "checkout"}}

A namespace's shared evaluators (flagd's ``$evaluators``) are the entry ``flag_evaluators``, a
``json`` object of name → rule; it inherits like any entry, so ``payments`` can hold the rules
``payments/production`` and ``payments/staging`` share. A ``{"$ref": name}`` in targeting is
resolved against the namespace's resolved evaluators when its flags are evaluated; a reference
to an evaluator that is not there makes the flag answer ``PARSE_ERROR``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from konfig.flags.logic import Evaluation, Rule, RuleError, compile_rule, compile_targeting

EVALUATORS_KEY = "flag_evaluators"
MEMO_SIZE = 4096  # outcomes a flag remembers per state (a split's: one per targeting key)
STATES = ("ENABLED", "DISABLED")
FIELDS = frozenset({"state", "variants", "defaultVariant", "targeting", "metadata"})
Reason = Literal["STATIC", "TARGETING_MATCH", "SPLIT", "DEFAULT", "DISABLED"]
ErrorCode = Literal[
    "FLAG_NOT_FOUND", "TARGETING_KEY_MISSING", "INVALID_CONTEXT", "PARSE_ERROR", "GENERAL"
]


@dataclass(frozen=True, slots=True)
class FlagProblem:
    """One broken rule of a flag definition (``rule`` names it, ``message`` explains)."""

    rule: str
    message: str


def variant_kind(value: Any) -> str | None:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict | list):
        return "object"
    return None


def check_flag(definition: Any) -> list[FlagProblem]:
    """Every problem with a flag definition (shape, variants, default, weights, targeting)."""
    if not isinstance(definition, dict):
        return [FlagProblem("type", "a flag is an object: state, variants, defaultVariant, …")]
    problems = [
        FlagProblem(
            "fields", f"{name!r} is not a flag field (allowed: {', '.join(sorted(FIELDS))})"
        )
        for name in definition
        if name not in FIELDS
    ]
    if definition.get("state") not in STATES:
        problems.append(FlagProblem("state", "state must be ENABLED or DISABLED"))
    variants = definition.get("variants")
    if not isinstance(variants, dict) or not variants:
        problems.append(FlagProblem("variants", "variants must be a non-empty object"))
        return problems
    kinds = {name: variant_kind(value) for name, value in variants.items()}
    if None in kinds.values():
        bad = next(name for name, kind in kinds.items() if kind is None)
        problems.append(
            FlagProblem("variants", f"variant {bad!r} must be a boolean, string, number or object")
        )
    elif len(set(kinds.values())) > 1:
        shown = ", ".join(f"{name}: {kind}" for name, kind in kinds.items())
        problems.append(FlagProblem("variant_types", f"variants must be of one type ({shown})"))
    default = definition.get("defaultVariant")
    if not isinstance(default, str) or default not in variants:
        problems.append(
            FlagProblem("defaultVariant", f"defaultVariant {default!r} is not one of the variants")
        )
    metadata = definition.get("metadata", {})
    if not isinstance(metadata, dict) or any(
        not isinstance(v, str | int | float) for v in metadata.values()
    ):
        problems.append(
            FlagProblem("metadata", "metadata is an object of strings, numbers and booleans")
        )
    targeting = definition.get("targeting")
    if targeting is not None and targeting != {}:
        problems.extend(_check_targeting(targeting, variants))
    return problems


def _check_targeting(targeting: Any, variants: Mapping[str, Any]) -> list[FlagProblem]:
    try:
        compile_rule(targeting)
    except RuleError as exc:
        return [FlagProblem("targeting", f"unsafe or unknown JsonLogic at {exc}")]
    return [*_check_results(targeting, variants, "targeting")]


def _check_results(rule: Any, variants: Mapping[str, Any], path: str) -> list[FlagProblem]:
    """Literal variant names where the rule's result comes from (the root, ``if`` branches,
    ``fractional`` buckets) must name variants; fractional weights must sum to 100."""
    if isinstance(rule, str):
        if rule not in variants:
            return [FlagProblem("variants", f"{path} names the unknown variant {rule!r}")]
        return []
    if isinstance(rule, bool) and str(rule).lower() not in variants:
        return [FlagProblem("variants", f"{path} names the unknown variant {str(rule).lower()!r}")]
    if not isinstance(rule, dict) or len(rule) != 1:
        return []
    ((name, args),) = rule.items()
    if name in ("if", "?:") and isinstance(args, list):
        branches = list(range(1, len(args), 2)) + ([len(args) - 1] if len(args) % 2 else [])
        found = []
        for i in branches:
            found.extend(_check_results(args[i], variants, f"{path}.{name}[{i}]"))
        return found
    if name == "fractional" and isinstance(args, list):
        return _check_fractional(args, variants, f"{path}.fractional")
    return []


def _check_fractional(args: list[Any], variants: Mapping[str, Any], path: str) -> list[FlagProblem]:
    buckets = [(i, a) for i, a in enumerate(args) if isinstance(a, list)]
    problems = []
    weights = []
    for i, item in buckets:
        if not item or (len(item) > 1 and not _whole(item[1])):
            problems.append(FlagProblem("weights", f"{path}[{i}] must be [variant, whole weight]"))
            continue
        if isinstance(item[0], str | bool):
            problems.extend(_check_results(item[0], variants, f"{path}[{i}][0]"))
        if len(item) > 1:
            weights.append(item[1])
    if not buckets:
        problems.append(FlagProblem("weights", f"{path} needs [variant, weight] buckets"))
    elif not problems and weights and (len(weights) != len(buckets) or sum(weights) != 100):
        shown = " + ".join(str(w) for w in weights)
        problems.append(
            FlagProblem("weights", f"{path} weights must each be given and sum to 100 ({shown})")
        )
    return problems


def _whole(weight: Any) -> bool:
    if isinstance(weight, bool) or not isinstance(weight, int | float):
        return False
    return float(weight).is_integer() and weight >= 0


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one flag evaluated to: a variant and its value, or an error."""

    key: str
    reason: Reason | None = None
    variant: str | None = None
    value: Any = None
    error: ErrorCode | None = None
    detail: str = ""


class Flag:
    """A flag ready to evaluate: its targeting compiled, its static answer made once."""

    __slots__ = (
        "_answers",
        "_memo",
        "default",
        "disabled",
        "key",
        "metadata",
        "reads",
        "reads_clock",
        "rule",
        "static",
        "variants",
    )

    def __init__(self, key: str, definition: Mapping[str, Any], evaluators: Mapping[str, Any]):
        self.key = key
        self.variants: dict[str, Any] = dict(definition["variants"])
        self.default: str = definition["defaultVariant"]
        self.metadata: dict[str, Any] = dict(definition.get("metadata") or {})
        self.disabled = definition["state"] == "DISABLED"
        targeting = definition.get("targeting")
        self.rule: Rule | None = None
        self.static: Outcome | None = None
        self.reads_clock = False
        # The context attributes the rule's result depends on (None: not known, no memo), and
        # the outcomes remembered by their values: a flag's state is immutable, so they hold.
        self.reads: tuple[str, ...] | None = None
        self._memo: dict[tuple[Any, ...], Outcome] = {}
        self._answers: dict[tuple[str | None, str | None], bytes] = {}
        if self.disabled:
            self.static = Outcome(key, "DISABLED", self.default, self.variants[self.default])
        elif targeting is None or targeting == {}:
            self.static = Outcome(key, "STATIC", self.default, self.variants[self.default])
        else:
            try:
                self.rule, self.reads_clock, self.reads = compile_targeting(
                    targeting, "targeting", evaluators
                )
            except RuleError as exc:
                self.static = Outcome(key, error="PARSE_ERROR", detail=str(exc))

    def answer(self, outcome: Outcome) -> bytes:
        """OFREP's JSON for a successful ``outcome`` of this flag, made once per variant and
        reason: ``{key, value, reason, variant, metadata?}``."""
        made = self._answers.get((outcome.reason, outcome.variant))
        if made is None:
            shown: dict[str, Any] = {
                "key": self.key,
                "value": outcome.value,
                "reason": outcome.reason,
                "variant": outcome.variant,
            }
            if self.metadata:
                shown["metadata"] = self.metadata
            made = self._answers[(outcome.reason, outcome.variant)] = orjson.dumps(shown)
        return made

    def evaluate(self, context: dict[str, Any]) -> Outcome:
        """The flag's variant for ``context`` (a dict with ``targetingKey`` and attributes);
        remembered by the values of the attributes the rule reads, when they are plain."""
        rule = self.rule
        if rule is None:  # disabled, untargeted, or a rule that cannot run
            return self.static  # type: ignore[return-value]  # set whenever rule is None
        reads = self.reads
        if reads is None:
            return self._run(rule, context)
        values: list[Any] = []
        for name in reads:
            value = context.get(name)
            kind = value.__class__
            # Only values equal exactly when their Python values are (True == 1, and floats'
            # -0.0 == 0.0, are not alike to a rule): else evaluated each time.
            if kind is not str and kind is not int and kind is not bool and value is not None:
                return self._run(rule, context)
            values.append(value)
            values.append(kind)
        memo_key = tuple(values)
        outcome = self._memo.get(memo_key)
        if outcome is None:
            outcome = self._run(rule, context)
            if len(self._memo) >= MEMO_SIZE:
                self._memo.clear()
            self._memo[memo_key] = outcome
        return outcome

    def _run(self, rule: Rule, context: dict[str, Any]) -> Outcome:
        ev = Evaluation(context, self.key)
        try:
            result = rule(ev)
        except RecursionError:  # pragma: no cover - compile_rule bounds the depth
            return Outcome(self.key, error="GENERAL", detail="the rule nests too deep")
        if result is None:
            if ev.needs_targeting_key:
                detail = "this flag splits by targetingKey: the context has none"
                return Outcome(self.key, error="TARGETING_KEY_MISSING", detail=detail)
            return Outcome(self.key, "DEFAULT", self.default, self.variants[self.default])
        name = str(result).lower() if isinstance(result, bool) else result
        if not isinstance(name, str) or name not in self.variants:
            detail = f"targeting chose {result!r}, which is not one of the flag's variants"
            return Outcome(self.key, error="GENERAL", detail=detail)
        reason: Reason = "SPLIT" if ev.split_used and ev.split == result else "TARGETING_MATCH"
        return Outcome(self.key, reason, name, self.variants[name])


def flag_set(values: Mapping[str, Any], flag_keys: frozenset[str] | set[str]) -> dict[str, Flag]:
    """A namespace's flags (its resolved values' keys of type ``flag``), ready to evaluate."""
    evaluators = values.get(EVALUATORS_KEY)
    shared = evaluators if isinstance(evaluators, dict) else {}
    return {key: Flag(key, values[key], shared) for key in sorted(flag_keys) if key in values}


def check_evaluators(evaluators: Any) -> list[FlagProblem]:
    """The ``flag_evaluators`` entry: an object of name → a rule this module would run."""
    if not isinstance(evaluators, dict):
        return [FlagProblem("evaluators", f"{EVALUATORS_KEY} is an object of name → rule")]
    problems = []
    for name, rule in evaluators.items():
        try:
            compile_rule(rule, f"$evaluators.{name}", evaluators)
        except RuleError as exc:
            problems.append(FlagProblem("evaluators", f"unsafe or unknown JsonLogic at {exc}"))
    return problems


class FlagSet:
    """A namespace's flags as one state: the flags, and a digest that changes when any of
    them (or the shared evaluators) does, and only then (the bulk ETag and stream ids)."""

    __slots__ = ("answers", "digest", "flags", "remembers")

    def __init__(self, values: Mapping[str, Any], flag_keys: frozenset[str] | set[str]):
        self.flags = flag_set(values, flag_keys)
        # Bulk answers by request body: a function of this state and the context, so kept
        # with the state (bounded), unless a flag reads the clock.
        self.answers: dict[bytes, Any] = {}
        self.remembers = not any(flag.reads_clock for flag in self.flags.values())
        state = {key: values[key] for key in self.flags}
        state[EVALUATORS_KEY] = values.get(EVALUATORS_KEY)
        encoded = orjson.dumps(state, option=orjson.OPT_SORT_KEYS)
        self.digest = hashlib.blake2b(encoded, digest_size=10).hexdigest()
