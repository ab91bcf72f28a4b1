"""Run profiles (tplib.profile): picked by name or TPLIB_PROFILE; None means the profile's setting."""
import pytest

from tplib.engine import Engine
from tplib.errors import OptionError, TplibError
from tplib.profile import (
    PROFILES,
    active_profile,
    default_engine,
    default_progress,
    get_profile,
    profile_defaults,
    set_active_profile,
)


def test_profiles_from_the_environment(monkeypatch):
    assert get_profile().name == "full"
    monkeypatch.setenv("TPLIB_PROFILE", "CI")
    assert get_profile().name == "ci" and active_profile().name == "ci"
    assert PROFILES["ci"].engine.precision == "fp32" and not PROFILES["ci"].progress
    monkeypatch.setenv("TPLIB_PROFILE", "fast")
    with pytest.raises(TplibError, match="unknown profile 'fast' .from TPLIB_PROFILE.*full, quick, ci"):
        get_profile()


def test_none_means_the_given_profiles_setting_and_a_value_is_kept():
    ci, full = PROFILES["ci"], PROFILES["full"]
    assert profile_defaults(ci, download=None, progress=None) == (False, False)
    assert profile_defaults(full, download=None, progress=None) == (True, True)
    assert profile_defaults(ci, download=True, progress=None) == (True, False)
    assert profile_defaults(full, progress=False, download=None) == (False, True)  # order kept
    assert profile_defaults(ci, engine=None) == (Engine(device="cpu", precision="fp32"),)
    mine = Engine(batch_size=3)
    assert profile_defaults(ci, engine=mine)[0] is mine


def test_without_a_profile_the_active_one_decides():
    set_active_profile(PROFILES["ci"])
    assert profile_defaults(download=None, progress=None) == (False, False)
    assert default_progress(None) is False and default_progress(1) is True
    assert default_engine(None) is PROFILES["ci"].engine
    set_active_profile(PROFILES["full"])
    assert profile_defaults(download=None) == (True,) and default_progress(None) is True


def test_an_unknown_setting_is_an_option_error():
    with pytest.raises(OptionError, match="no profile setting 'seed'; profiles set download, progress"):
        profile_defaults(PROFILES["ci"], seed=None)


def test_no_progress_bars_while_nbgrader_grades(monkeypatch):
    # nbgrader gives no points to a test cell that writes to stderr, where the bars go
    set_active_profile(PROFILES["full"])
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    assert default_progress(None) is False and default_progress(True) is True
    monkeypatch.delenv("NBGRADER_EXECUTION")
    assert default_progress(None) is True
