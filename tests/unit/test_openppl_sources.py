"""runners/openppl/sources.py: the archives the e2e-openppl image builds ppl.nn from, checked by contents."""
import io
import re
import tarfile
from pathlib import Path

import pytest

from tests.unit.test_runner_modules import load_runner

SOURCES_PY = Path(__file__).parents[2] / "runners" / "openppl" / "sources.py"
sources = load_runner(SOURCES_PY)
SHARED = Path(__file__).parents[3] / "shared" / "openppl-src"  # the archives, where a checkout has them


def archive(path: Path, top: str, files: dict, mode: str = "w:gz") -> Path:
    """A tar archive like `git archive`'s: every entry under `top`/, `files` maps name -> (bytes, mode)."""
    with tarfile.open(str(path), mode) as tar:
        folder = tarfile.TarInfo(top)
        folder.type, folder.mode = tarfile.DIRTYPE, 0o775
        tar.addfile(folder)
        for name, (data, bits) in files.items():
            info = tarfile.TarInfo(f"{top}/{name}")
            if isinstance(data, str):  # a symlink to `data`
                info.type, info.linkname = tarfile.SYMTYPE, data
                tar.addfile(info)
            else:
                info.size, info.mode = len(data), bits
                tar.addfile(info, io.BytesIO(data))
    return path


FILES = {"CMakeLists.txt": (b"project(x)\n", 0o664), "build.sh": (b"#!/bin/sh\n", 0o775), "link": ("build.sh", 0)}


def test_the_digest_ignores_the_top_folder_and_the_compression(tmp_path):
    # a GitHub archive is named <repo>-<commit>/, `git archive --prefix=<repo>/` as the prefix says
    github = sources.tree_digest(archive(tmp_path / "a.tar.gz", "hpcc-af7dcc6c", FILES))
    assert github == sources.tree_digest(archive(tmp_path / "b.tar", "hpcc", FILES, mode="w"))


@pytest.mark.parametrize("change", [
    {"CMakeLists.txt": (b"project(y)\n", 0o664)},  # a byte
    {"build.sh": (b"#!/bin/sh\n", 0o664)},  # the executable bit
    {"link": ("CMakeLists.txt", 0)},  # where a symlink points
    {"extra.txt": (b"", 0o664)},  # one more file
])
def test_the_digest_sees_every_change_of_contents(tmp_path, change):
    assert sources.tree_digest(archive(tmp_path / "a.tar.gz", "x", FILES)) != \
        sources.tree_digest(archive(tmp_path / "b.tar.gz", "x", {**FILES, **change}))


@pytest.fixture
def pinned_list(tmp_path, monkeypatch):
    """A sources.sha256 of two archives: one in a sources folder, one only 'downloadable'."""
    given, upstream = tmp_path / "given", tmp_path / "upstream"
    given.mkdir(), upstream.mkdir()
    local = archive(given / "dep.tar.gz", "dep", FILES)
    remote = archive(upstream / "other.tar.gz", "other-0123abc", FILES)
    listing = tmp_path / "sources.sha256"
    listing.write_text(f"# comment\n{sources.tree_digest(local)}  dep.tar.gz  PPLNN_DEP_DEP_PKG  https://x/dep.tar.gz\n"
                       f"{sources.tree_digest(remote)}  other.tar.gz  PPLNN_DEP_OTHER_PKG  https://x/other.tar.gz\n")
    real = sources.pinned
    monkeypatch.setattr(sources, "pinned", lambda path=listing: real(path))
    fetched = []

    def download(url, to):
        fetched.append(url)
        to.write_bytes((upstream / to.name).read_bytes())

    monkeypatch.setattr(sources, "download", download)
    return given, fetched


def test_archives_in_the_folder_are_used_and_the_rest_downloaded(pinned_list, tmp_path):
    given, fetched = pinned_list
    out = sources.gather(given, tmp_path / "out", skip=[], log=lambda m: None)
    assert [p.name for p in out] == ["dep.tar.gz", "other.tar.gz"] and fetched == ["https://x/other.tar.gz"]
    assert sources.gather(given, tmp_path / "out2", skip=["PPLNN_DEP_OTHER_PKG"], log=lambda m: None)[0].name \
        == "dep.tar.gz" and fetched == ["https://x/other.tar.gz"]  # a skipped archive is not fetched


def test_an_archive_with_other_contents_stops_the_build(pinned_list, tmp_path):
    given, _ = pinned_list
    archive(given / "dep.tar.gz", "dep", {**FILES, "CMakeLists.txt": (b"tampered\n", 0o664)})
    with pytest.raises(ValueError, match=r"dep.tar.gz \(from .*given/dep.tar.gz\) holds other contents"):
        sources.gather(given, tmp_path / "out", skip=[], log=lambda m: None)


def test_the_command_prints_ppl_nn_s_own_variables(pinned_list, tmp_path, capsys):
    given, _ = pinned_list
    assert sources.main(["--from", str(given), "--to", str(tmp_path / "out")]) == 0
    assert capsys.readouterr().out.split() == [f"-DPPLNN_DEP_DEP_PKG={tmp_path / 'out' / 'dep.tar.gz'}",
                                               f"-DPPLNN_DEP_OTHER_PKG={tmp_path / 'out' / 'other.tar.gz'}"]


def test_the_pinned_list_names_commits_and_tags_only():
    entries = sources.pinned()
    assert [e.variable for e in entries].count("-") == 1  # ppl.nn itself
    for e in entries:  # a branch name would make every build different
        assert re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+/archive/([0-9a-f]{40}|refs/tags/v[\d.]+)\.tar\.gz",
                            e.url), e.url
        assert re.fullmatch(r"[0-9a-f]{64}", e.digest) and (e.variable == "-" or e.variable.startswith("PPLNN_DEP_"))


@pytest.mark.skipif(not SHARED.is_dir(), reason=f"no archives at {SHARED}")
def test_the_pinned_digests_are_those_of_the_release_archives():
    for e in sources.pinned():
        assert sources.tree_digest(SHARED / e.file) == e.digest, e.file


def test_download_fetches_over_http_and_names_the_way_out_when_it_cannot(tmp_path):
    import functools
    import http.server
    import threading

    served = archive(tmp_path / "served.tar.gz", "x", FILES)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/"
        sources.download(url + "served.tar.gz", tmp_path / "got.tar.gz", attempts=1)
        assert (tmp_path / "got.tar.gz").read_bytes() == served.read_bytes()
        with pytest.raises(OSError, match=r"cannot download .*missing.tar.gz .*put hpcc.tar.gz in the sources folder"):
            sources.download(url + "missing.tar.gz", tmp_path / "hpcc.tar.gz", attempts=1)
    finally:
        server.shutdown()
