"""The in-process sliding-window counter behind the per-principal and read-path budgets."""

from __future__ import annotations

from konfig.ratelimit import SlidingWindows


def test_a_budget_is_spent_then_refused_until_the_window_slides() -> None:
    windows = SlidingWindows()
    start = 6_000_000.0  # a window boundary for a 60 s period
    assert all(windows.hit("read", "token:a", 5, 60, start + 1) is None for _ in range(5))
    assert windows.hit("read", "token:a", 5, 60, start + 2) == 58  # the next window has room
    assert windows.hit("read", "token:b", 5, 60, start + 2) is None  # budgets are per key
    # 30 s into the next window half of the last one still counts: 2.5 of 5, so 2 more fit.
    assert windows.hit("read", "token:a", 5, 60, start + 90) is None
    assert windows.hit("read", "token:a", 5, 60, start + 90) is None
    retry = windows.hit("read", "token:a", 5, 60, start + 90)
    assert retry is not None and 1 <= retry <= 30
    # Two windows later nothing of the first one is left.
    assert windows.hit("read", "token:a", 5, 60, start + 185) is None


def test_old_windows_are_pruned_when_many_keys_are_counted() -> None:
    windows = SlidingWindows(prune_above=10)
    for n in range(10):
        windows.hit("principal", f"user:{n}", 100, 60, 6_000_001.0)
    assert len(windows) == 10
    windows.hit("principal", "user:late", 100, 60, 6_000_500.0)
    assert len(windows) == 1  # user:late's: every other window was two periods old
