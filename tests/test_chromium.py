"""tests/chromium.py: which Chromium the browser tests drive, and what `make
test` does when there is none."""

from __future__ import annotations

import sys

import pytest

from tests import chromium


def test_it_takes_chromium_path_first(tmp_path, monkeypatch):
    executable = tmp_path / "my-chromium"
    executable.write_text("#!/bin/sh\n")
    executable.chmod(0o755)
    monkeypatch.setenv("CHROMIUM_PATH", str(executable))
    assert chromium.find() == str(executable)


def test_it_refuses_a_chromium_path_that_is_not_an_executable(tmp_path, monkeypatch):
    monkeypatch.setenv("CHROMIUM_PATH", str(tmp_path / "nothing-here"))
    with pytest.raises(FileNotFoundError, match="CHROMIUM_PATH="):
        chromium.find()


def test_it_installs_with_the_first_way_that_works(monkeypatch, capsys):
    found = iter([None, "/opt/chromium/chrome"])
    monkeypatch.setattr(chromium, "find", lambda: next(found))
    monkeypatch.setattr(
        chromium,
        "_installers",
        lambda: iter([("a way that works", [[sys.executable, "-c", "print('done')"]])]),
    )
    assert chromium.install() == "/opt/chromium/chrome"
    assert capsys.readouterr().out.splitlines() == [
        "Installing Chromium for the browser tests: a way that works"
    ]


def test_it_says_how_to_install_it_when_no_way_works(monkeypatch, capsys):
    monkeypatch.setattr(chromium, "find", lambda: None)
    offline = [sys.executable, "-c", "print('Error: offline'); print('  at stack'); exit(1)"]
    missing = [sys.executable, "-c", "exit(100)"]
    monkeypatch.setattr(
        chromium,
        "_installers",
        lambda: iter([("first", [offline, [sys.executable, "-c", "pass"]]), ("second", [missing])]),
    )
    assert chromium.install() is None
    assert capsys.readouterr().out.splitlines() == [
        "Installing Chromium for the browser tests: first",
        "  failed: Error: offline",
        "Installing Chromium for the browser tests: second",
        "  failed: exit status 100",
        chromium.missing(),
    ]
    assert "install it with `" in chromium.missing()
