"""Configuration: the key that signs feedback links is never a value from the source."""

from __future__ import annotations

import stat
from concurrent.futures import ThreadPoolExecutor

from loyalty.config import Config


def test_without_secret_key_a_random_key_is_made_once_and_kept(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("SECRET_KEY", raising=False)
    instance = tmp_path / "instance"
    with ThreadPoolExecutor(8) as pool:  # processes starting at once agree on one key
        keys = set(pool.map(lambda _: Config(str(instance)).SECRET_KEY, range(16)))
    assert len(keys) == 1
    key = keys.pop()
    assert len(key) >= 64
    assert (instance / "secret_key").read_text() == key
    assert stat.S_IMODE((instance / "secret_key").stat().st_mode) == 0o600
    assert sorted(p.name for p in instance.iterdir()) == ["secret_key"]  # no temp files left
    assert key == Config(str(instance)).SECRET_KEY  # a restart keeps it: links stay valid
    assert key != Config(str(tmp_path / "other")).SECRET_KEY  # another instance, another key


def test_secret_key_from_the_environment_wins(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("SECRET_KEY", "from-the-environment")
    assert Config(str(tmp_path)).SECRET_KEY == "from-the-environment"
    assert not (tmp_path / "secret_key").exists()
