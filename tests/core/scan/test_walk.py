"""Tests of core.scan.walk on real folders: classes, hidden files, links, odd names, special files.
"""
from __future__ import annotations

import os

import pytest

from core.imaging import AVIF_SUPPORTED
from core.files import FileRefused, read_file_inside
from core.scan.walk import NOT_IN_CLASS_FOLDER, OUTSIDE_ROOT, UNSUPPORTED_FORMAT, discover, skipped_warnings
from tests.conftest import make_image


def paths_of(files) -> dict[str, object]:
    return {entry.path: entry for entry in files.files}


def test_classes_are_sorted_folders_and_images_include_nested_ones(tmp_path):
    make_image(tmp_path / "shoes" / "a.jpg")
    make_image(tmp_path / "shoes" / "summer" / "deep" / "b.png")
    make_image(tmp_path / "bags" / "c.webp")
    (tmp_path / "empty").mkdir()
    make_image(tmp_path / "loose.jpg")  # not in a class folder
    (tmp_path / "shoes" / "notes.txt").write_text("not an image")

    files = discover(tmp_path)
    assert files.classes == ["bags", "empty", "shoes"]
    assert files.empty_classes == ["empty"]
    assert sorted(paths_of(files)) == ["bags/c.webp", "shoes/a.jpg", "shoes/summer/deep/b.png"]
    entry = paths_of(files)["shoes/summer/deep/b.png"]
    assert entry.label == "shoes" and entry.stat_error is None
    assert entry.size == (tmp_path / "shoes/summer/deep/b.png").stat().st_size and entry.mtime_ns > 0


def test_hidden_files_and_folders_are_ignored(tmp_path):
    make_image(tmp_path / "shoes" / "a.jpg")
    make_image(tmp_path / "shoes" / ".thumb.jpg")
    make_image(tmp_path / "shoes" / ".cache" / "b.jpg")
    make_image(tmp_path / "shoes" / "__MACOSX" / "c.jpg")
    make_image(tmp_path / ".trash" / "d.jpg")
    files = discover(tmp_path)
    assert files.classes == ["shoes"]
    assert list(paths_of(files)) == ["shoes/a.jpg"]


def test_extensions_are_case_insensitive_and_names_may_have_spaces_and_accents(tmp_path):
    make_image(tmp_path / "Schuhe grün" / "Größe 42 (1).JPG")
    make_image(tmp_path / "Schuhe grün" / "写真.Png")
    files = discover(tmp_path)
    assert files.classes == ["Schuhe grün"]
    assert sorted(paths_of(files)) == ["Schuhe grün/Größe 42 (1).JPG", "Schuhe grün/写真.Png"]


def test_symlinks_broken_and_looping_files_get_a_reason(tmp_path):
    make_image(tmp_path / "shoes" / "real.jpg")
    os.symlink("real.jpg", tmp_path / "shoes" / "alias.jpg")
    os.symlink("missing.jpg", tmp_path / "shoes" / "broken.jpg")
    os.symlink("self.jpg", tmp_path / "shoes" / "self.jpg")
    entries = paths_of(discover(tmp_path))
    assert entries["shoes/alias.jpg"].stat_error is None
    assert entries["shoes/alias.jpg"].size == entries["shoes/real.jpg"].size
    assert entries["shoes/broken.jpg"].stat_error == "broken symlink: target does not exist"
    assert entries["shoes/self.jpg"].stat_error == "symlink loop"


def test_directory_symlink_loops_end_and_other_classes_are_not_pulled_in(tmp_path):
    make_image(tmp_path / "shoes" / "a.jpg")
    make_image(tmp_path / "bags" / "b.jpg")
    make_image(tmp_path / "shoes" / "extra" / "c.jpg")
    os.symlink("..", tmp_path / "shoes" / "up")  # to the dataset root
    os.symlink(".", tmp_path / "shoes" / "extra" / "here")  # to itself
    os.symlink("../bags", tmp_path / "shoes" / "bags_link")  # to another class
    os.symlink("loop_b", tmp_path / "shoes" / "loop_a")  # a symlink cycle
    os.symlink("loop_a", tmp_path / "shoes" / "loop_b")
    files = discover(tmp_path)
    assert sorted(paths_of(files)) == ["bags/b.jpg", "shoes/a.jpg", "shoes/extra/c.jpg"]


def test_a_linked_folder_inside_the_root_is_followed(tmp_path):
    make_image(tmp_path / "data" / "originals" / "photos" / "x.jpg")
    make_image(tmp_path / "data" / "shoes" / "a.jpg")
    os.symlink(tmp_path / "data" / "originals" / "photos", tmp_path / "data" / "shoes" / "more")
    files = discover(tmp_path / "data")
    assert sorted(paths_of(files)) == ["originals/photos/x.jpg", "shoes/a.jpg"]  # claimed by its own class first
    os.symlink("../../data/shoes/a.jpg", tmp_path / "data" / "originals" / "same.jpg")  # out and back in
    assert "originals/same.jpg" in paths_of(discover(tmp_path / "data"))
    assert discover(tmp_path / "data").skipped == {}


def test_links_leading_outside_the_root_are_skipped_and_listed(tmp_path):
    make_image(tmp_path / "elsewhere" / "photos" / "x.jpg")
    secret = make_image(tmp_path / "elsewhere" / "secret.png")
    root = tmp_path / "data"
    make_image(root / "shoes" / "a.jpg")
    os.symlink(tmp_path / "elsewhere" / "photos", root / "shoes" / "more")  # a folder outside
    os.symlink(secret, root / "shoes" / "secret.png")  # a file outside
    os.symlink("/etc/passwd", root / "shoes" / "passwd.jpg")
    os.symlink("../../elsewhere/gone.jpg", root / "shoes" / "dangling.jpg")  # broken, and outside
    os.symlink(tmp_path / "elsewhere", root / "bags")  # a whole class folder outside
    files = discover(root)
    assert sorted(paths_of(files)) == ["shoes/a.jpg"]
    assert files.classes == ["shoes"]
    assert files.skipped == {OUTSIDE_ROOT: ["bags", "shoes/dangling.jpg", "shoes/more", "shoes/passwd.jpg",
                                            "shoes/secret.png"]}
    assert skipped_warnings(files.skipped) == [
        "5 links lead outside the dataset folder and were not read: bags, shoes/dangling.jpg, shoes/more and 2 more"
    ]


def test_a_root_that_is_itself_a_link_is_scanned_where_it_leads(tmp_path):
    make_image(tmp_path / "real" / "shoes" / "a.jpg")
    os.symlink(tmp_path / "real", tmp_path / "alias")
    files = discover(tmp_path / "alias")
    assert files.root == tmp_path / "real" and list(paths_of(files)) == ["shoes/a.jpg"] and files.skipped == {}


def test_images_outside_class_folders_and_unsupported_formats_are_listed(tmp_path):
    make_image(tmp_path / "shoes" / "a.jpg")
    make_image(tmp_path / "loose.jpg")
    make_image(tmp_path / "cover.PNG")
    (tmp_path / "shoes" / "iphone.heic").write_bytes(b"\0" * 10)
    (tmp_path / "shoes" / "new\nline.jxl").write_bytes(b"\0" * 10)
    (tmp_path / "shoes" / "logo.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    (tmp_path / "notes.txt").write_text("not an image: not listed")
    files = discover(tmp_path)
    assert files.skipped == {NOT_IN_CLASS_FOLDER: ["cover.PNG", "loose.jpg"],
                             UNSUPPORTED_FORMAT: ["shoes/iphone.heic", "shoes/logo.svg", "shoes/new\nline.jxl"]}
    assert skipped_warnings(files.skipped) == [
        "2 images are in the dataset folder itself, not in a class folder, so not scanned: cover.PNG, loose.jpg",
        "3 images in a format the scan cannot decode (HEIC, JXL, SVG), so not scanned: shoes/iphone.heic, "
        "shoes/logo.svg, shoes/new\\x0aline.jxl",
    ]


def test_avif_is_an_image_when_pillow_decodes_it_else_an_unsupported_format(tmp_path):
    make_image(tmp_path / "shoes" / "a.avif")
    files = discover(tmp_path)
    if AVIF_SUPPORTED:
        assert list(paths_of(files)) == ["shoes/a.avif"] and files.skipped == {}
    else:
        assert files.files == [] and files.skipped == {UNSUPPORTED_FORMAT: ["shoes/a.avif"]}


def test_name_that_is_not_utf8_is_reported_not_crashing(tmp_path):
    make_image(tmp_path / "shoes" / "ok.jpg")
    bad = os.path.join(os.fsencode(tmp_path / "shoes"), b"caf\xe9.jpg")
    with open(bad, "wb") as handle:
        handle.write((tmp_path / "shoes" / "ok.jpg").read_bytes())
    entries = paths_of(discover(tmp_path))
    assert entries["shoes/caf\\xe9.jpg"].stat_error.startswith("file or folder name is not valid UTF-8")
    assert "shoes/caf\\xe9.jpg".encode("utf-8")  # storable text


def test_a_pipe_named_like_an_image_is_reported_not_read(tmp_path):
    make_image(tmp_path / "shoes" / "a.jpg")
    os.mkfifo(tmp_path / "shoes" / "pipe.jpg")
    entries = paths_of(discover(tmp_path))
    assert entries["shoes/pipe.jpg"].stat_error == "not a regular file (a pipe, socket or device)"


def test_a_file_is_read_for_its_size_whatever_the_limit(tmp_path):
    """The read asks for the file's size, not for the limit: a limit of a terabyte allocates nothing."""
    make_image(tmp_path / "shoes" / "a.jpg")
    data = (tmp_path / "shoes" / "a.jpg").read_bytes()
    assert read_file_inside(tmp_path, "shoes/a.jpg", max_bytes=2**40) == data
    assert read_file_inside(tmp_path, "shoes/a.jpg", max_bytes=len(data)) == data
    with pytest.raises(FileRefused, match="file too large to read"):
        read_file_inside(tmp_path, "shoes/a.jpg", max_bytes=len(data) - 1)


def test_missing_root_raises(tmp_path):
    with pytest.raises(NotADirectoryError):
        discover(tmp_path / "nope")
