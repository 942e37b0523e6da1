"""Tests of core/scan/roots.py: the app scans only below its roots, and asks before scanning very many files."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

import core.scan.roots
from core.scan.roots import PROJECT_DATA, ROOTS_ENV, allowed_roots, check_folder_to_scan, count_files
from tests.conftest import make_image


@pytest.fixture
def shop(tmp_path) -> Path:
    make_image(tmp_path / "shop" / "shoes" / "a.png")
    make_image(tmp_path / "shop" / "bags" / "b.png")
    return tmp_path / "shop"


def test_roots_default_to_home_and_the_project_data_folder():
    assert allowed_roots({}) == [Path.home().resolve(), PROJECT_DATA.resolve()]
    assert allowed_roots({ROOTS_ENV: " "}) == allowed_roots({})


def test_roots_from_the_environment_are_resolved(tmp_path):
    os.symlink(tmp_path, tmp_path.parent / f"{tmp_path.name}-alias")
    value = os.pathsep.join([str(tmp_path.parent / f"{tmp_path.name}-alias"), "", "/srv/data"])
    assert allowed_roots({ROOTS_ENV: value}) == [tmp_path.resolve(), Path("/srv/data").resolve()]


def test_a_folder_below_a_root_is_scanned(shop, tmp_path):
    check = check_folder_to_scan(f"  {shop}  ", [tmp_path])
    assert (check.folder, check.problem, check.confirm) == (shop, None, None)


@pytest.mark.parametrize("typed", ["/", "/etc", "{tmp}/../..", "{tmp}-elsewhere", "{tmp}/shop/../../x"])
def test_a_folder_outside_the_roots_is_refused_in_one_line(shop, tmp_path, typed):
    check = check_folder_to_scan(typed.format(tmp=tmp_path), [shop])
    assert check.problem.startswith(f"{check.folder} is outside the folders this app scans ({shop}); "
                                    f"set {ROOTS_ENV} to allow it")
    assert "\n" not in check.problem and check.confirm is None


def test_a_link_inside_a_root_to_a_folder_outside_is_refused(shop, tmp_path):
    make_image(tmp_path / "private" / "x" / "a.png")
    os.symlink(tmp_path / "private", shop / "escape")
    assert check_folder_to_scan(str(shop / "escape"), [shop]).problem.startswith(f"{tmp_path / 'private'} is outside")


def test_what_is_not_a_dataset_folder_is_refused(shop, tmp_path):
    assert check_folder_to_scan(" ", [tmp_path]).problem == "Enter the path of a dataset folder."
    assert check_folder_to_scan(str(tmp_path / "nope"), [tmp_path]).problem.startswith("Folder not found")
    assert "is a file" in check_folder_to_scan(str(shop / "shoes" / "a.png"), [tmp_path]).problem
    assert "has no subfolders" in check_folder_to_scan(str(shop / "shoes"), [tmp_path]).problem


def test_a_rescan_of_a_known_dataset_is_not_limited_to_the_roots(shop):
    check = check_folder_to_scan(str(shop), None)
    assert check.problem is None and check.confirm is None


def test_very_many_files_need_confirmation(shop, tmp_path, monkeypatch):
    monkeypatch.setattr(core.scan.roots, "CONFIRM_ABOVE_FILES", 2)
    assert check_folder_to_scan(str(shop), [tmp_path]).confirm is None  # 2 files: not more than 2
    make_image(shop / "bags" / "c.png")
    check = check_folder_to_scan(str(shop), [tmp_path])
    assert check.problem is None
    assert check.confirm == f"{shop} holds more than 2 files; scanning it takes a long time. Scan it anyway?"
    assert check_folder_to_scan(str(shop), [tmp_path], confirmed=True).confirm is None


def test_count_files_stops_at_the_limit_and_does_not_follow_folder_links(tmp_path):
    for index in range(5):
        (tmp_path / "a" / "b").mkdir(parents=True, exist_ok=True)
        (tmp_path / "a" / "b" / f"{index}.txt").write_text("x")
    os.symlink(tmp_path / "a", tmp_path / "loop")
    assert count_files(tmp_path, stop_after=100) == 6  # 5 files and the link itself
    assert count_files(tmp_path, stop_after=3) == 3
