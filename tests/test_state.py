"""The app's typed state: what exists once the app is made, what the lifespan adds, and what a
read of a part not made yet says."""

from __future__ import annotations

from pathlib import Path

import pytest
from asgi_lifespan import LifespanManager

from konfig.app import create_app
from tests.conftest import make_settings


def test_before_the_lifespan_the_parts_it_makes_say_so(tmp_path: Path) -> None:
    app = create_app(make_settings(f"sqlite+aiosqlite:///{tmp_path}/konfig.db", tmp_path))
    state = app.state
    assert state.settings.data_dir == tmp_path
    assert state.delivery.tokens is state.token_cache  # wired by create_app
    assert state.ui.csrf_key
    assert not state.shutting_down
    with pytest.raises(AttributeError, match=r"AppState.sessionmaker is not set yet: .*lifespan"):
        _ = state.sessionmaker
    assert not hasattr(state, "entry_writer")
    with pytest.raises(AttributeError, match="no attribute 'no_such_part'"):
        getattr(state, "no_such_part")  # noqa: B009  # a typo is not told to wait for the lifespan


async def test_each_start_of_the_lifespan_makes_its_parts_anew(tmp_path: Path) -> None:
    app = create_app(make_settings(f"sqlite+aiosqlite:///{tmp_path}/konfig.db", tmp_path))
    state = app.state
    async with LifespanManager(app):
        first_writer, first_event = state.entry_writer, state.shutdown_event
        assert state.backup_scheduler.on_commit in state.commit_hooks
        assert not first_event.is_set()
    assert state.shutting_down and first_event.is_set()
    assert state.backup_scheduler.on_commit not in state.commit_hooks
    async with LifespanManager(app):
        assert state.entry_writer is not first_writer
        assert not state.shutting_down and not state.shutdown_event.is_set()
