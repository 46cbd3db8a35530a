"""uv makes the environments with the user's pip settings: an index and find-links set in a pip
configuration file are where uv finds the packages (local ones, made here, no network)."""
import base64
import hashlib
import os
import subprocess
import zipfile
from pathlib import Path

import pytest

from coordinator.engines import Engine
from coordinator.launchers import VenvLauncher
from coordinator.launchers.pipconf import PipSettings
from coordinator.launchers.venv import READY, install_plan, made_by, uv_binary


def tiny_wheel(folder: Path, name: str, version: str = "1.0") -> Path:
    """A pure-Python wheel of one module `name` holding VALUE = version."""
    folder.mkdir(parents=True, exist_ok=True)
    info = f"{name}-{version}.dist-info"
    files = {f"{name}.py": f"VALUE = {version!r}\n",
             f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
             f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: e2e-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}

    def digest(text: str) -> str:
        return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()

    record = "".join(f"{path},{digest(text)},{len(text.encode())}\n" for path, text in files.items())
    path = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as z:
        for inner, text in {**files, f"{info}/RECORD": record + f"{info}/RECORD,,\n"}.items():
            z.writestr(inner, text)
    return path


def test_pip_config_list_is_read_by_precedence():
    settings = PipSettings.parse("global.index-url='https://mirror/simple'\n"
                                 "global.extra-index-url='https://a/simple https://b/simple'\n"
                                 "install.trusted-host='mirror'\n:env:.index-url='https://env/simple'\n"
                                 ":env:.find-links='/w'\nglobal.cert='/ca.pem'\nglobal.proxy='http://p:3128'\n"
                                 ":env:.default-timeout='180'\n")
    assert settings.index_url == "https://env/simple"  # PIP_INDEX_URL wins over the file
    assert settings.extra_index_urls == ["https://a/simple", "https://b/simple"]
    args = settings.uv_arguments()
    assert args[:2] == ["--index-url", "https://env/simple"] and "--allow-insecure-host" in args
    assert args[-2:] == ["--index-strategy", "unsafe-best-match"]  # pip's choice among every index
    assert settings.uv_environment() == {"SSL_CERT_FILE": "/ca.pem", "HTTPS_PROXY": "http://p:3128",
                                         "HTTP_PROXY": "http://p:3128", "UV_HTTP_TIMEOUT": "180"}


def test_pip_makes_them_when_asked(tmp_path, monkeypatch):
    monkeypatch.setenv("E2E_INSTALLER", "pip")
    install = install_plan(tmp_path / "env", tmp_path / "requirements.txt", tmp_path)
    assert install.tool == "pip" and install.commands[0][1:3] == ["-m", "venv"]
    assert install.commands[1][1:4] == ["-m", "pip", "install"]


@pytest.mark.skipif(uv_binary() is None, reason="uv is not installed (pip install -e .)")
def test_an_extra_index_and_find_links_of_pip_s_config_are_honoured_by_uv(tmp_path, monkeypatch):
    empty = tmp_path / "empty-index"  # the main index has nothing: each package must come from elsewhere
    empty.mkdir()
    index = tmp_path / "index"
    wheel = tiny_wheel(index / "e2e-tiny-indexed", "e2e_tiny_indexed")
    (index / "e2e-tiny-indexed" / "index.html").write_text(f'<a href="{wheel.name}">{wheel.name}</a>\n')
    tiny_wheel(tmp_path / "links", "e2e_tiny_linked")
    config = tmp_path / "pip.conf"
    config.write_text(f"[global]\nindex-url = {empty.as_uri()}\nextra-index-url = {index.as_uri()}\n"
                      f"find-links = {tmp_path / 'links'}\n")
    for name in [k for k in os.environ if k.startswith(("PIP_", "UV_"))]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("PIP_CONFIG_FILE", str(config))
    runner = tmp_path / "runners" / "tiny"
    runner.mkdir(parents=True)
    (runner / "requirements.txt").write_text("e2e_tiny_indexed==1.0\ne2e_tiny_linked==1.0\n")
    engine = Engine(id="tiny", name="tiny", folder=runner, devices=("cpu",), precisions=("fp32",),
                    environments=("venv",))
    launcher = VenvLauncher(tmp_path / "cache", log=lambda _: None)
    launcher.prepare(engine)
    folder = launcher.env_dir(engine)
    assert made_by(folder).startswith("uv "), (folder.with_suffix(".log")).read_text()
    assert (folder / READY).is_file()
    out = subprocess.run([launcher.python(engine), "-c", "import e2e_tiny_indexed, e2e_tiny_linked; "
                          "print(e2e_tiny_indexed.VALUE, e2e_tiny_linked.VALUE)"], capture_output=True, text=True)
    assert out.stdout.split() == ["1.0", "1.0"], out.stderr
    assert (tmp_path / "cache" / "uv").is_dir()  # uv's cache is inside e2e's: hard links to it can be made
