"""Fixtures for the rater: a real OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kbpipe.config import Settings
from kbpipe.testing.openai_server import ServerThread


@pytest.fixture
def server() -> Iterator[ServerThread]:
    with ServerThread() as running:
        yield running


@pytest.fixture
def api_settings(settings: Settings, server: ServerThread) -> Settings:
    return settings.replace(base_url=server.url, api_key="sk-test-key-0000", judge_concurrency=16)
