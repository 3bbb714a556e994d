"""A torch or timm older than the code needs is one ``error:`` line at start, naming both versions, exit 2."""
from importlib import metadata

import pytest

from helpers import ROOT
from hw3io.errors import MIN_VERSIONS, TESTED, UserError, check_versions, release, run_cli


def faked(**versions):
    def version(name):
        if name not in versions:
            raise metadata.PackageNotFoundError(name)
        return versions[name]
    return version


def test_release_reads_local_and_pre_release_tags():
    assert release("2.14.1+cu130") == (2, 14, 1)
    assert release("2.6.0a0+git1a2b3c") == (2, 6, 0)
    assert release("1.0") == (1, 0)


@pytest.mark.parametrize("torch, ok", [("2.5.1+cu121", False), ("2.6.0", True), ("2.11.0+cu128", True)])
def test_the_torch_minimum(torch, ok):
    check = lambda: check_versions(faked(torch=torch, timm="1.0.31"))  # noqa: E731
    if ok:
        check()
    else:
        with pytest.raises(UserError, match=r"installed torch 2\.5\.1\+cu121, timm 1\.0\.31; required torch >= 2\.6"):
            check()


def test_a_package_not_installed_is_left_to_its_import():
    check_versions(faked(torch="2.14.1"))  # no timm: its import says so in its own line


def test_an_old_torch_stops_every_script_before_main(monkeypatch, capsys):
    monkeypatch.setattr(metadata, "version", faked(torch="2.1.0+cu118", timm="0.9.16"))
    called = []
    assert run_cli(lambda argv: called.append(argv)) == 2
    assert not called
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("error: torch and timm too old"), err
    assert "torch 2.1.0+cu118" in err[0] and "timm 0.9.16" in err[0] and "torch >= 2.6" in err[0]
    assert MIN_VERSIONS["torch"] == (2, 6)


def test_the_tested_versions_named_in_errors_are_the_pinned_ones():
    """hw3io.errors.TESTED repeats requirements-pinned.txt by hand; this keeps the two from drifting apart."""
    pins = dict(line.split("#")[0].strip().split("==") for line in (ROOT / "requirements-pinned.txt").read_text()
                .splitlines() if "==" in line.split("#")[0])
    assert TESTED == f"tested with torch {pins['torch']}, timm {pins['timm']}"
