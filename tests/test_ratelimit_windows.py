"""The in-process sliding-window counter behind the per-principal and read-path budgets."""

from __future__ import annotations

from konfig.ratelimit import _SlidingWindows


def test_a_budget_is_spent_then_refused_until_the_window_slides() -> None:
    windows = _SlidingWindows()
    start = 6_000_000.0  # a window boundary for a 60 s period
    assert all(windows._hit("read", "token:a", 5, 60, start + 1) is None for _ in range(5))
    assert windows._hit("read", "token:a", 5, 60, start + 2) == 58  # the next window has room
    assert windows._hit("read", "token:b", 5, 60, start + 2) is None  # budgets are per key
    # 30 s into the next window half of the last one still counts: 2.5 of 5, so 2 more fit.
    assert windows._hit("read", "token:a", 5, 60, start + 90) is None
    assert windows._hit("read", "token:a", 5, 60, start + 90) is None
    retry = windows._hit("read", "token:a", 5, 60, start + 90)
    assert retry is not None and 1 <= retry <= 30
    # Two windows later nothing of the first one is left.
    assert windows._hit("read", "token:a", 5, 60, start + 185) is None


def test_old_windows_are_pruned_when_many_keys_are_counted() -> None:
    windows = _SlidingWindows()
    windows._PRUNE_ABOVE = 10
    for n in range(10):
        windows._hit("principal", f"user:{n}", 100, 60, 6_000_001.0)
    windows._hit("principal", "user:late", 100, 60, 6_000_500.0)
    assert list(windows._slots) == [("principal", "user:late", 60)]
