"""The web UI: server-rendered pages under /ui."""

from pathlib import Path

STATIC_DIR = Path(__file__).parent / "static"  # served from the start; the pages load later
