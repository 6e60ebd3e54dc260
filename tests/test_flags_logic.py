"""Flag definitions and their JsonLogic targeting: the operators, flagd's custom operations with
flagd's own test vectors, the reasons, and the rollout that keeps its first users."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from konfig.flags.definition import Flag, check_evaluators, check_flag
from konfig.flags.logic import RuleError, bucket, compile_rule, sem_ver

COLORS = {"red": "#FF0000", "blue": "#0000FF", "green": "#00FF00", "yellow": "#FFFF00"}


def evaluate(targeting: Any, context: dict[str, Any], key: str = "flag") -> Any:
    definition = {"state": "ENABLED", "variants": COLORS, "defaultVariant": "red"}
    return Flag(key, {**definition, "targeting": targeting}, {}).evaluate(context)


def run(rule: Any, data: dict[str, Any] | None = None) -> Any:
    from konfig.flags.logic import Evaluation

    return compile_rule(rule)(Evaluation(data or {}, "flag"))


# flagd's fractional vectors (core/pkg/evaluator/fractional_test.go) ---------------------------

HEADER = {
    "if": [
        {"in": ["@faas.com", {"var": ["email"]}]},
        {
            "fractional": [
                {"cat": [{"var": "$flagd.flagKey"}, {"var": "email"}]},
                ["red", 25],
                ["blue", 25],
                ["green", 25],
                ["yellow", 25],
            ]
        },
        None,
    ]
}
SEEDED = {
    "if": [
        {"in": ["@faas.com", {"var": ["email"]}]},
        {
            "fractional": [
                {"cat": ["my-seed", {"var": "email"}]},
                ["red", 25],
                ["blue", 25],
                ["green", 25],
                ["yellow", 25],
            ]
        },
        None,
    ]
}


@pytest.mark.parametrize(
    ("targeting", "email", "variant"),
    [
        (HEADER, "rachel@faas.com", "blue"),
        (HEADER, "monica@faas.com", "yellow"),
        (HEADER, "joey@faas.com", "red"),
        (HEADER, "ross@faas.com", "blue"),
        (SEEDED, "rachel@faas.com", "green"),
        (SEEDED, "monica@faas.com", "red"),
        (SEEDED, "joey@faas.com", "blue"),
        (SEEDED, "ross@faas.com", "green"),
    ],
)
def test_fractional_agrees_with_flagd(targeting: Any, email: str, variant: str) -> None:
    outcome = evaluate(targeting, {"email": email}, key="headerColor")
    assert (outcome.variant, outcome.reason) == (variant, "SPLIT")
    assert outcome.value == COLORS[variant]


def test_fractional_buckets_by_flag_key_and_targeting_key_as_flagd_does() -> None:
    split = {"fractional": [["blue", 50], ["green", 50]]}
    assert evaluate(split, {"targetingKey": "foo@foo.com"}, "headerColor").variant == "green"
    # A bucketing expression that yields nothing falls back to the targeting key.
    by_email = {"fractional": [{"var": "email"}, ["red", 50], ["blue", 50]]}
    assert evaluate(by_email, {"targetingKey": "foo@foo.com"}, "headerColor").variant == "blue"


def test_fractional_without_a_targeting_key_says_so() -> None:
    outcome = evaluate({"fractional": [["blue", 50], ["green", 50]]}, {})
    assert (outcome.error, outcome.variant) == ("TARGETING_KEY_MISSING", None)
    outcome = evaluate({"fractional": [["blue", 50], ["green", 50]]}, {"targetingKey": ""})
    assert outcome.error == "TARGETING_KEY_MISSING"


@settings(max_examples=300, deadline=None)
@given(
    keys=st.lists(st.text(min_size=1, max_size=40), min_size=1, max_size=50), low=st.integers(0, 99)
)
def test_raising_a_rollout_keeps_everyone_it_had(keys: list[str], low: int) -> None:
    """10 % → 20 % (any p → any larger q): whoever had the new variant keeps it."""
    for high in (low + 1, min(low + 10, 100), 100):
        for key in keys:
            before = bucket("rollout" + key, [low, 100 - low])
            after = bucket("rollout" + key, [high, 100 - high])
            if before == 0:
                assert after == 0


def test_bucket_is_murmur3_scaled_like_flagd() -> None:
    assert bucket("x", [0, 0]) is None
    assert bucket("x", [100]) == 0
    counts = [0, 0]
    for i in range(20_000):
        index = bucket(f"flag-user-{i}", [10, 90])
        assert index is not None
        counts[index] += 1
    assert 1_800 <= counts[0] <= 2_200  # 10 % ± 1 point


# Reasons -------------------------------------------------------------------------------------


def test_reasons_static_targeting_match_default_disabled() -> None:
    base = {"state": "ENABLED", "variants": {"on": True, "off": False}, "defaultVariant": "off"}
    assert Flag("f", base, {}).evaluate({}).reason == "STATIC"
    rule = {"if": [{"==": [{"var": "plan"}, "pro"]}, "on", None]}
    targeted = Flag("f", {**base, "targeting": rule}, {})
    assert (targeted.evaluate({"plan": "pro"}).variant, targeted.evaluate({}).reason) == (
        "on",
        "DEFAULT",
    )
    assert targeted.evaluate({"plan": "pro"}).reason == "TARGETING_MATCH"
    disabled = Flag("f", {**base, "state": "DISABLED", "targeting": rule}, {})
    outcome = disabled.evaluate({"plan": "pro"})
    assert (outcome.reason, outcome.variant, outcome.value) == ("DISABLED", "off", False)
    # A boolean result names the variant "true" or "false", as in flagd.
    bools = {"state": "ENABLED", "variants": {"true": 1, "false": 0}, "defaultVariant": "false"}
    truth = Flag("f", {**bools, "targeting": {"==": [{"var": "a"}, 1]}}, {})
    assert truth.evaluate({"a": 1}).value == 1
    stray = Flag("f", {**base, "targeting": {"var": "chosen"}}, {})
    assert stray.evaluate({"chosen": "nope"}).error == "GENERAL"


def test_shared_evaluators_are_referenced_and_missing_ones_refuse_to_parse() -> None:
    base = {"state": "ENABLED", "variants": {"on": True, "off": False}, "defaultVariant": "off"}
    rule = {"if": [{"$ref": "is_staff"}, "on", "off"]}
    shared = {"is_staff": {"ends_with": [{"var": "email"}, "@acme.test"]}}
    flag = Flag("f", {**base, "targeting": rule}, shared)
    assert flag.evaluate({"email": "a@acme.test"}).variant == "on"
    assert flag.evaluate({"email": "a@else.test"}).variant == "off"
    missing = Flag("f", {**base, "targeting": rule}, {})
    assert missing.evaluate({}).error == "PARSE_ERROR"
    looping = Flag("f", {**base, "targeting": rule}, {"is_staff": {"$ref": "is_staff"}})
    assert "refers to itself" in looping.evaluate({}).detail
    assert check_evaluators(shared) == []
    assert check_evaluators([]) != []
    assert check_evaluators({"bad": {"eval": "x"}})[0].rule == "evaluators"


# Operators -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "data", "expected"),
    [
        ({"var": "a.b"}, {"a": {"b": 3}}, 3),
        ({"var": ["a.x", 7]}, {"a": {}}, 7),
        ({"var": "list.1"}, {"list": [5, 6]}, 6),
        ({"var": "list.9"}, {"list": [5]}, None),
        ({"var": "a.b"}, {"a": 1}, None),
        ({"var": "$flagd.flagKey"}, {}, "flag"),
        ({"var": "$flagd.nothing"}, {}, None),
        ({"var": ["$flagd.flagKey.x", 3]}, {}, 3),
        ({"var": {"cat": ["a", ".b"]}}, {"a": {"b": 4}}, 4),
        ({"missing": ["a", "b"]}, {"a": 1}, ["b"]),
        ({"missing": [["a", "b"]]}, {"b": ""}, ["a", "b"]),
        ({"missing_some": [1, ["a", "b"]]}, {"a": 1}, []),
        ({"missing_some": [2, ["a", "b"]]}, {"a": 1}, ["b"]),
        ({"if": [False, 1, True, 2, 3]}, {}, 2),
        ({"if": [0, 1, "", 2, 3]}, {}, 3),
        ({"if": [[], 1]}, {}, None),
        ({"?:": [1, "a", "b"]}, {}, "a"),
        ({"==": [1, "1"]}, {}, True),
        ({"==": [True, 1]}, {}, True),
        ({"==": [None, 0]}, {}, False),
        ({"==": [None, None]}, {}, True),
        ({"==": [[1], [1]]}, {}, False),
        ({"!=": ["a", "b"]}, {}, True),
        ({"===": [1, 1.0]}, {}, True),
        ({"===": [1, "1"]}, {}, False),
        ({"===": [True, 1]}, {}, False),
        ({"===": [[1], [1]]}, {}, False),
        ({"!==": ["a", "a"]}, {}, False),
        ({"<": [1, 2]}, {}, True),
        ({"<": ["a", "b"]}, {}, True),
        ({"<": [1, "x"]}, {}, False),
        ({"<": [1, 2, 3]}, {}, True),
        ({"<=": [1, 1, 0]}, {}, False),
        ({"<=": ["b", "b"]}, {}, True),
        ({">": ["10", 9]}, {}, True),
        ({">=": [None, 0]}, {}, True),
        ({">=": [" ", 0]}, {}, True),
        ({"!": [[]]}, {}, True),
        ({"!!": ["0"]}, {}, True),
        ({"!!": [float("nan")]}, {}, False),
        ({"and": [1, "a", 0]}, {}, 0),
        ({"and": [1, "a"]}, {}, "a"),
        ({"or": [0, "", "x"]}, {}, "x"),
        ({"or": [0, ""]}, {}, ""),
        ({"in": ["b", "abc"]}, {}, True),
        ({"in": [1, "abc"]}, {}, False),
        ({"in": ["x", ["x", "y"]]}, {}, True),
        ({"in": ["x", 3]}, {}, False),
        ({"cat": ["a", 1, 2.0, None, True, False, [1, None]]}, {}, "a12nulltruefalse1,"),
        ({"cat": [1.5]}, {}, "1.5"),
        ({"substr": ["jsonlogic", 4]}, {}, "logic"),
        ({"substr": ["jsonlogic", -5]}, {}, "logic"),
        ({"substr": ["jsonlogic", 1, 3]}, {}, "son"),
        ({"substr": ["jsonlogic", 4, -2]}, {}, "log"),
        ({"+": [1, "2", 0.5]}, {}, 3.5),
        ({"+": []}, {}, 0),
        ({"*": [2, 3]}, {}, 6),
        ({"-": [5, 7]}, {}, -2),
        ({"-": [5]}, {}, -5),
        ({"/": [1, 4]}, {}, 0.25),
        ({"/": [1, 0]}, {}, None),
        ({"%": [7, 3]}, {}, 1),
        ({"+": ["x"]}, {}, None),
        ({"min": [3, 1, 2]}, {}, 1),
        ({"max": [3, 1, 2]}, {}, 3),
        ({"merge": [[1], 2, [3, 4]]}, {}, [1, 2, 3, 4]),
        ({"starts_with": [{"var": "email"}, "ann"]}, {"email": "ann@x"}, True),
        ({"ends_with": [{"var": "email"}, "@x"]}, {"email": "ann@x"}, True),
        ({"ends_with": [{"var": "email"}, "@x"]}, {}, None),
        ({"sem_ver": [{"var": "v"}, ">=", "1.2.0"]}, {"v": "1.10.0"}, True),
        ({"sem_ver": ["v1.2.3", "^", "1.9"]}, {}, True),
        ({"sem_ver": ["1.2.3", "~", "1.3.0"]}, {}, False),
        ({"sem_ver": ["1.0.0-alpha", "<", "1.0.0"]}, {}, True),
        ({"sem_ver": ["1.0.0-alpha.1", "<", "1.0.0-alpha.beta"]}, {}, True),
        ({"sem_ver": ["1.0.0-2", ">", "1.0.0-10"]}, {}, False),
        ({"sem_ver": ["1.0.0", "=", "1.0.0+build"]}, {}, True),
        ({"sem_ver": ["1.0.0", "!=", "2.0.0"]}, {}, True),
        ({"sem_ver": ["1.0.0", "<=", "1.0.0"]}, {}, True),
        ({"sem_ver": ["2.0.0", ">", "1.0.0"]}, {}, True),
        ({"sem_ver": ["V2", "=", "2.0.0"]}, {}, True),
        ({"sem_ver": ["not-a-version", "=", "1.0.0"]}, {}, None),
        ({"sem_ver": ["1.0.0", "<>", "1.0.0"]}, {}, None),
        ({"sem_ver": [1, "=", "1.0.0"]}, {}, True),
        ([1, {"var": "a"}], {"a": 2}, [1, 2]),
        ({"fractional": ["seed", ["a"], ["b"]]}, {}, "b"),
        ({"fractional": ["seed", "not a bucket"]}, {}, None),
        ({"fractional": ["seed", ["a", "heavy"]]}, {}, None),
        ({"fractional": ["seed", ["a", 0]]}, {}, None),
    ],
)
def test_operators(rule: Any, data: dict[str, Any], expected: Any) -> None:
    assert run(rule, data) == expected


def test_the_whole_context_includes_flagd() -> None:
    rules: list[dict[str, Any]] = [{"var": ""}, {"var": []}]
    for rule in rules:
        whole = run(rule, {"k": 1})
        assert whole["k"] == 1 and whole["$flagd"]["flagKey"] == "flag"
        assert isinstance(whole["$flagd"]["timestamp"], int)
    assert isinstance(run({"var": "$flagd.timestamp"}), int)


@pytest.mark.parametrize(
    ("rule", "where"),
    [
        ({"eval": ["1+1"]}, "unknown operator 'eval'"),
        ({"var": "a", "if": []}, "exactly one key"),
        ({}, "exactly one key"),
        ({"==": [1]}, "takes 2 argument(s)"),
        ({"var": [1, 2, 3]}, "takes 0 to 2"),
        ({"$ref": 3}, "must be a string"),
        ({"$ref": "shared"}, ""),  # fine alone: resolved with the namespace's evaluators
    ],
)
def test_rules_refused(rule: Any, where: str) -> None:
    if not where:
        assert run(rule) is None
        return
    with pytest.raises(RuleError, match=re.escape(where)):
        compile_rule(rule)


def test_rules_are_bounded_in_depth() -> None:
    deep: Any = True
    for _ in range(40):
        deep = {"!": [deep]}
    with pytest.raises(RuleError, match="nests deeper"):
        compile_rule(deep)


def test_rules_are_bounded_in_size() -> None:
    with pytest.raises(RuleError, match="more than"):
        compile_rule({"or": [{"var": f"k{i}"} for i in range(3000)]})


def test_sem_ver_needs_three_arguments() -> None:
    assert sem_ver(["1.0.0", "="]) is None


# Definitions ---------------------------------------------------------------------------------


def rules_of(definition: Any) -> list[str]:
    return [p.rule for p in check_flag(definition)]


def test_a_well_formed_flag_has_no_problems() -> None:
    definition = {
        "state": "ENABLED",
        "variants": {"on": True, "off": False},
        "defaultVariant": "off",
        "targeting": {
            "if": [
                {"in": [{"var": "plan"}, ["pro"]]},
                "on",
                {"fractional": [["on", 10], ["off", 90]]},
            ]
        },
        "metadata": {"team": "checkout", "ticket": 12, "public": True},
    }
    assert check_flag(definition) == []
    assert check_flag({**definition, "targeting": {}}) == []


@pytest.mark.parametrize(
    ("change", "rule"),
    [
        ({"state": "ON"}, "state"),
        ({"variants": {}}, "variants"),
        ({"variants": {"on": None, "off": False}}, "variants"),
        ({"variants": {"on": True, "off": "no"}}, "variant_types"),
        ({"defaultVariant": "maybe"}, "defaultVariant"),
        ({"metadata": {"nested": {"a": 1}}}, "metadata"),
        ({"colour": "red"}, "fields"),
        ({"targeting": {"eval": "1"}}, "targeting"),
        ({"targeting": {"if": [True, "maybe", "off"]}}, "variants"),
        ({"targeting": "maybe"}, "variants"),
        ({"targeting": {"if": [True, True, "off"]}}, "variants"),
        ({"targeting": {"fractional": [["on", 10], ["off", 80]]}}, "weights"),
        ({"targeting": {"fractional": [["on", 10], ["off"]]}}, "weights"),
        ({"targeting": {"fractional": [["on", 10.5], ["off", 89.5]]}}, "weights"),
        ({"targeting": {"fractional": [["on", 10], []]}}, "weights"),
        ({"targeting": {"fractional": ["seed"]}}, "weights"),
        ({"targeting": {"fractional": [["maybe", 50], ["off", 50]]}}, "variants"),
    ],
)
def test_bad_definitions_name_the_rule(change: dict[str, Any], rule: str) -> None:
    definition = {
        "state": "ENABLED",
        "variants": {"on": True, "off": False},
        "defaultVariant": "off",
    }
    assert rule in rules_of({**definition, **change})


def test_a_flag_must_be_an_object() -> None:
    assert rules_of([1]) == ["type"]
    assert rules_of({"state": "ENABLED", "variants": []}) == ["variants"]


def test_unweighted_buckets_split_evenly() -> None:
    definition = {"state": "ENABLED", "variants": COLORS, "defaultVariant": "red"}
    targeting = {"fractional": [["red"], ["blue"]]}
    assert check_flag({**definition, "targeting": targeting}) == []


ON_OFF = {"on": True, "off": False}
_MEMO_RULES: list[Any] = [
    {"if": [{"==": [{"var": "tier"}, 1]}, "on", "off"]},  # loose: 1, True and "1" alike
    {"if": [{"===": [{"var": "tier"}, 1]}, "on", "off"]},  # strict: True is not 1
    {"if": [{"in": [{"var": "plan"}, ["pro", "enterprise"]]}, "on", "off"]},
    {"if": [{"missing": ["plan"]}, "off", "on"]},  # reads names it is given: no memo
    {"if": [{"<": [{"var": "user.age"}, 18]}, "off", "on"]},
    {"fractional": [["on", 30], ["off", 70]]},
    {"if": [{"var": "plan"}, {"fractional": [{"var": "plan"}, ["on", 50], ["off", 50]]}, "off"]},
]
_ATTRIBUTE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-2, 2),
    st.sampled_from([0.0, -0.0, 1.0, 17.5]),
    st.sampled_from(["", "1", "pro", "free", "enterprise"]),
    st.lists(st.integers(0, 2), max_size=2),
    st.fixed_dictionaries({"age": st.integers(10, 30)}),
)
_CONTEXT = st.dictionaries(
    st.sampled_from(["tier", "plan", "user", "targetingKey"]), _ATTRIBUTE, max_size=4
).map(
    lambda context: {
        **context,
        **({"targetingKey": f"u-{context['targetingKey']}"} if "targetingKey" in context else {}),
    }
)


@settings(max_examples=60, deadline=None)
@given(rule=st.sampled_from(_MEMO_RULES), contexts=st.lists(_CONTEXT, min_size=2, max_size=12))
@example(rule=_MEMO_RULES[1], contexts=[{"tier": 1}, {"tier": True}])  # 1 == True in Python
def test_remembered_outcomes_are_the_outcomes(rule: Any, contexts: list[dict[str, Any]]) -> None:
    """A flag remembers outcomes by the attributes its rule reads: evaluating many contexts on
    one flag answers exactly what a fresh flag answers for each."""
    definition = {"state": "ENABLED", "variants": ON_OFF, "defaultVariant": "off"}
    remembering = Flag("beta", {**definition, "targeting": rule}, {})
    for context in [*contexts, *contexts]:
        fresh = Flag("beta", {**definition, "targeting": rule}, {})
        assert remembering.evaluate(context) == fresh.evaluate(context), context


def test_what_a_rule_reads_is_known_or_said_not_to_be() -> None:
    definition = {"state": "ENABLED", "variants": ON_OFF, "defaultVariant": "off"}
    reads = {
        str(rule): Flag("beta", {**definition, "targeting": rule}, {}).reads for rule in _MEMO_RULES
    }
    assert list(reads.values()) == [
        ("tier",),
        ("tier",),
        ("plan",),
        None,
        ("user",),
        ("targetingKey",),
        ("plan", "targetingKey"),
    ]
    clock = {"if": [{">": [{"var": "$flagd.timestamp"}, 0]}, "on", "off"]}
    assert Flag("beta", {**definition, "targeting": clock}, {}).reads is None
