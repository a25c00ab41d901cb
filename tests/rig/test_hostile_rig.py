"""Hostile rig files (issue #22): names that would become paths outside a session or collide with the
store's own files, and non-finite numbers, are refused by ``rig check`` in one line, exit 2."""

from __future__ import annotations

import pytest

from testbed.errors import RigError
from testbed.names import check_model_name, check_name, inside, name_problem
from testbed.rig import load_rig
from tests.rig.test_rig_cli import assert_one_line_error, write_rig


def _add_mic(name: str):
    def edit(d):
        d["mics"][name] = dict(d["mics"]["ref"])
    return edit


def _rename_speaker(d):
    d["speakers"]["../spk"] = d["speakers"].pop("adversary")
    for moves in d["placements"].values():
        moves["../spk"] = moves.pop("adversary")


def _set(path: tuple, value):
    def edit(d):
        node = d
        for k in path[:-1]:
            node = node[k]
        node[path[-1]] = value
    return edit


HOSTILE = {
    # the reproduction: this mic wrote escaped.flac outside the session
    "mic escaping the session": (_add_mic("../../../../escaped"), "mics", "../../../../escaped"),
    # the reproduction: this mic overwrote the user speaker's played file
    "mic colliding with a played file": (_add_mic("user.played"), "mics", ".played"),
    "mic with a slash": (_add_mic("a/b"), "mics", "a/b"),
    "hidden mic": (_add_mic(".hidden"), "mics", ".hidden"),
    "mics differing in case": (_add_mic("REF"), "mics", "differ only in case"),
    "speaker escaping": (_rename_speaker, "speakers", "../spk"),
    "placement escaping": (lambda d: d["placements"].update({"../P": {"adversary": [1.0, 1.0, 1.0]}}),
                           "placements", "../P"),
    "rig name escaping": (_set(("name",), "../../rig"), "name", "../../rig"),
    "dut model escaping": (_set(("dut", "models"), ["lm-fp32", "../x"]), "dut.models", "../x"),
    "nan position": (_set(("mics", "ref", "position_m"), [float("nan"), 1.0, 1.0]), "mics.ref.position_m",
                     "finite"),
    "infinite room": (_set(("room", "size_m"), [float("inf"), 5.0, 3.0]), "room.size_m", "finite"),
    "nan rt60": (_set(("room", "rt60_s"), float("nan")), "room.rt60_s", "finite"),
    "inf speaker level": (_set(("speakers", "user", "spl_at_1m_db"), float("inf")), "speakers.user.spl_at_1m_db",
                          "finite"),
    "-inf max_dbfs": (_set(("speakers", "user", "max_dbfs"), float("-inf")), "speakers.user.max_dbfs", "finite"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_rig_is_one_line_exit_2_naming_file_and_field(cli, tmp_path, office_rig_path, case):
    edit, field, what = HOSTILE[case]
    path = write_rig(tmp_path, office_rig_path, edit)
    res = cli(["rig", "check", path])
    assert_one_line_error(res, str(path), field, what)


def test_load_rig_raises_rig_error_for_escaping_mic(tmp_path, office_rig_path):
    path = write_rig(tmp_path, office_rig_path, _add_mic("../../../../escaped"))
    with pytest.raises(RigError, match=r"rig\.toml: mics: '\.\./\.\./\.\./\.\./escaped'"):
        load_rig(path)


def test_model_view_names_stay_valid(tmp_path, office_rig_path):
    path = write_rig(tmp_path, office_rig_path, _set(("dut", "models"), ["lm-fp32", "lm-slr8@k4"]))
    assert load_rig(path).dut.models == ["lm-fp32", "lm-slr8@k4"]


@pytest.mark.parametrize("good", ["ref", "P1", "lm-fp32", "a.b_c-9", "x" * 64, "played", "user.play"])
def test_safe_names_pass(good):
    assert name_problem(good) is None
    assert check_name(good) == good


@pytest.mark.parametrize("bad", ["", "..", ".", "../x", "a/b", "a\\b", "a..b", "-x", "_x", ".x", "a b",
                                 "x" * 65, "u.played", "U.PLAYED", "é", "a\x00b", "a:b", "/abs"])
def test_unsafe_names_fail(bad):
    assert name_problem(bad) is not None
    with pytest.raises(ValueError):
        check_name(bad)


def test_model_view_suffix_only_at_the_end():
    assert check_model_name("lm@k12") == "lm@k12"
    for bad in ("lm@k", "@k4", "../lm@k4", "lm@k4/x", "lm@x"):
        with pytest.raises(ValueError):
            check_model_name(bad)


def test_inside_refuses_absolute_parent_and_symlink_escapes(tmp_path):
    base = tmp_path / "base"
    base.mkdir()
    (base / "a.wav").write_bytes(b"x")
    assert inside(base, "a.wav") == (base / "a.wav").resolve()
    assert inside(base, "sub/b.wav") == (base / "sub" / "b.wav").resolve()
    (tmp_path / "secret.wav").write_bytes(b"x")
    (base / "link.wav").symlink_to(tmp_path / "secret.wav")
    for bad in ("/etc/passwd", "../secret.wav", "sub/../../secret.wav", "link.wav", ""):
        with pytest.raises(ValueError):
            inside(base, bad)
