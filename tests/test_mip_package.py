"""mbnode's mip packages (host/mbnode_host/mip.py): the committed package.json files match the
firmware's file lists, and mpremote's own mip installer, given them as a local path or as URLs
of a file server on 127.0.0.1, lays out exactly what `mbnode build` puts in device/ (as .py
sources), which is also what the frozen manifest.py names. tests/mcu/test_mip.py installs onto
the emulated Pico and boots it.

The installer here is mpremote's (mpremote.mip, the code `mpremote mip install` runs), writing
through a transport whose filesystem is a folder of this machine instead of a board's.
"""

import hashlib
import http.server
import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from mbnode_host import boards, build, mip, paths
from test_host_build import manifest_module

ROOT = paths.FIRMWARE.parent
mpremote_mip = pytest.importorskip("mpremote.mip")


class FolderBoard:
    """The filesystem side of mpremote's Transport (what mip calls), kept in a folder: device
    path /x/y -> folder/x/y. mip joins --target / and a name as //name; MicroPython's VFS
    reads that as /name, and so does this."""

    def __init__(self, folder):
        self.folder = Path(folder)

    def _p(self, path):
        parts = [p for p in path.split("/") if p and p != "."]
        assert ".." not in parts, path
        return self.folder.joinpath(*parts)

    def fs_exists(self, path):
        return self._p(path).exists()

    def fs_mkdir(self, path):
        self._p(path).mkdir()

    def fs_writefile(self, dest, data, chunk_size=256, progress_callback=None):
        self._p(dest).write_bytes(data)

    def fs_hashfile(self, path, algo):
        p = self._p(path)
        if not p.is_file():
            raise FileNotFoundError(path)
        return hashlib.new(algo, p.read_bytes()).digest()

    def exec(self, code):
        pass

    def eval(self, expr):
        assert "_mpy" in expr, expr  # mip asks the .mpy version for a package from the index
        return 6

    def files(self):
        return {p.relative_to(self.folder).as_posix(): p.read_bytes() for p in self.folder.rglob("*") if p.is_file()}


def install(board, packages, index="http://127.0.0.1:9/no-index"):
    """mpremote's `mip install --target / PACKAGE...` onto `board`."""
    for package in packages:
        mpremote_mip._install_package(board, package, index, "/", None, True)
    return board.files()


def expected_py(board_name, tmp_path):
    """{device name: source bytes}: what `mbnode build` puts in device/ (config.json aside), with
    each .mpy as the .py it was compiled from."""
    b = build.bundle(board_name, tmp_path / "bundle" / board_name)
    sources = {name + ".py": src.read_bytes() for src, name in build._sources(b.board)}
    sources["main.py"] = (paths.FIRMWARE / "main.py").read_bytes()
    names = {n[:-4] + ".py" if n.endswith(".mpy") else n for n, _ in b.device_files if n != "config.json"}
    assert names == set(sources)
    return sources


def test_committed_packages_match_the_file_lists():
    assert mip.stale() == [], "run: .cache/venv/bin/python -m mbnode_host.mip --write"
    assert sorted(mip.committed()) == sorted(["boards/%s.json" % n for n in boards.MCU_BOARDS] + ["package.json"])
    r = subprocess.run([sys.executable, "-m", "mbnode_host.mip", "--check"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0 and r.stderr == "", r.stderr


def test_stale_package_is_named(tmp_path, monkeypatch):
    """--check fails with the file to regenerate when a module is added without --write."""
    fake = tmp_path / "checkout"
    shutil.copytree(paths.FIRMWARE, fake / "firmware")
    shutil.copytree(paths.BOARDS, fake / "boards")
    shutil.copy(ROOT / "package.json", fake / "package.json")
    (fake / "firmware" / "mbnode" / "newpart.py").write_text("X = 1\n")
    monkeypatch.setattr(paths, "FIRMWARE", fake / "firmware")
    monkeypatch.setattr(paths, "BOARDS", fake / "boards")
    monkeypatch.setattr(boards, "BOARDS", fake / "boards")
    monkeypatch.setattr(boards, "COMMON", fake / "boards" / "common")
    assert mip.stale() == ["package.json"]
    assert mip.main(["--check"]) == 1
    assert ["mbnode/newpart.py", "firmware/mbnode/newpart.py"] in json.loads(mip.committed()["package.json"])["urls"]
    mip.write()
    assert mip.stale() == []


def test_package_format():
    """mip's keys only; every URL relative, below its package's folder (no ../, which not every
    mip fetches), naming a file of the checkout; deps only on Wi-Fi boards (the MQTT bridge)."""
    from mbnode import VERSION

    for rel, text in mip.committed().items():
        pkg = json.loads((ROOT / rel).read_text())
        assert set(pkg) == {"urls", "deps", "version"} and pkg["version"] == VERSION
        for dest, url in pkg["urls"]:
            assert not url.startswith(("/", "http:", "https:", "github:")) and ".." not in url.split("/"), url
            assert ((ROOT / rel).parent / url).is_file(), url
            assert dest.endswith(".py") and not dest.startswith("/"), dest
        if rel != "package.json":
            name = rel[len("boards/"):-len(".json")]
            assert pkg["deps"] == ([["umqtt.simple", "latest"]] if boards.info(name).wifi else [])
    assert json.loads((ROOT / "package.json").read_text())["deps"] == []


@pytest.mark.parametrize("board", boards.MCU_BOARDS)
def test_local_path_installs_what_build_lists(board, tmp_path):
    """`mpremote mip install --target / CHECKOUT/package.json CHECKOUT/boards/BOARD.json`."""
    want = expected_py(board, tmp_path)
    target = FolderBoard(tmp_path / "board")
    target.folder.mkdir()
    packages = [str(ROOT / "package.json"), str(ROOT / "boards" / (board + ".json"))]
    if boards.info(board).wifi:
        index = mip_index(tmp_path)
        with served(index) as url:
            got = install(target, packages, url)
        assert got.pop("umqtt/simple.mpy") == (index / "umqtt.mpy").read_bytes()
    else:
        got = install(target, packages)
    assert got == want


def mip_index(tmp_path):
    """A package index in mip's layout holding umqtt.simple as .mpy (as test_deploy.py's)."""
    src = paths.CACHE / "lib" / "umqtt" / "simple.py"
    assert src.exists(), "make setup fetches umqtt.simple"
    index = tmp_path / "index"
    index.mkdir()
    mpy = index / "umqtt.mpy"
    subprocess.run([paths.mpy_cross(), "-o", str(mpy), str(src)], check=True)
    short = hashlib.sha256(mpy.read_bytes()).hexdigest()[:8]
    (index / "file" / short[:2]).mkdir(parents=True)
    shutil.copy(mpy, index / "file" / short[:2] / short)
    pkg = index / "package" / "6" / "umqtt.simple"
    pkg.mkdir(parents=True)
    (pkg / "latest.json").write_text(json.dumps({"hashes": [["umqtt/simple.mpy", short]], "version": "1.3.4"}))
    return index


class served:
    """A file server for `folder` on 127.0.0.1 (a free port); counts the paths asked for."""

    def __init__(self, folder):
        asked = self.asked = []

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *a, **kw):
                super().__init__(*a, directory=str(folder), **kw)

            def log_message(self, *a):
                asked.append(self.path)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return "http://127.0.0.1:%d" % self.server.server_address[1]

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def test_url_installs_what_build_lists(tmp_path):
    """The checkout on a file server stands in for the repository's raw files (github:OWNER/mbnode
    is such a URL once mip rewrites it): the relative URLs resolve against each package's own
    folder, and the Wi-Fi board's dependency comes from the index."""
    want = expected_py("pico-w", tmp_path)
    index = mip_index(tmp_path)
    target = FolderBoard(tmp_path / "board")
    target.folder.mkdir()
    with served(ROOT) as url, served(index) as index_url:
        got = install(target, [url + "/package.json", url + "/boards/pico-w.json"], index_url)
    assert got.pop("umqtt/simple.mpy") == (index / "umqtt.mpy").read_bytes()
    assert got == want


def test_built_package_installs_the_bundle(tmp_path):
    """build/BOARD/package.json: the .mpy files of device/ (the board's -march), not config.json."""
    b = build.bundle("esp32-c3", tmp_path / "esp32-c3")
    device = b.path / "device"
    want = {n: (device / n).read_bytes() for n, _ in b.device_files if n != "config.json"}
    assert json.loads((b.path / "package.json").read_text())["deps"] == [["umqtt.simple", "latest"]]
    target = FolderBoard(tmp_path / "board")
    target.folder.mkdir()
    with served(mip_index(tmp_path)) as index_url:
        got = install(target, [str(b.path / "package.json")], index_url)
    got.pop("umqtt/simple.mpy")
    assert got == want
    b = build.bundle("pico", tmp_path / "pico")
    assert json.loads((b.path / "package.json").read_text())["deps"] == []


@pytest.mark.parametrize("board", ["pico", "esp32"])
def test_frozen_manifest_names_the_packages_files(board, tmp_path):
    """`mbnode build`'s frozen/manifest.py (main=True) freezes exactly the modules the two mip
    packages install, read by MicroPython's own manifest reader."""
    src, mf = manifest_module()
    b = build.bundle(board, tmp_path / board)
    info = boards.info(board)
    port = src / "ports" / info.port
    path_vars = {"MPY_DIR": str(src), "PORT_DIR": str(port), "BOARD_DIR": str(port / "boards" / info.micropython_board),
                 "MPY_LIB_DIR": None}
    m = mf.ManifestFile(mf.MODE_FREEZE, path_vars)
    m.execute("include(%r, base=None, main=True)" % str(b.path / "frozen" / "manifest.py"))
    frozen = {f.target_path for f in m.files()}
    packaged = {dest for dest, _ in mip.firmware_urls()} | {dest for dest, _ in mip.board_urls(board)}
    assert frozen == packaged


class _Raw:
    """What urlopen returns, enough for mip (a context manager with read())."""

    def __init__(self, data):
        self.data = data

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def read(self):
        return self.data


def test_github_form_fetches_the_repository_paths(tmp_path, monkeypatch):
    """`github:OWNER/mbnode[@REF]` and `github:OWNER/mbnode/boards/pico.json[@REF]` as mpremote
    rewrites them: every file is asked for at OWNER/mbnode/REF/<path in the repository> of
    mpremote's own raw-file host (taken from mpremote, not written here), which this test answers
    from the checkout instead of the network."""
    host_format = mpremote_mip._HOSTS["github:"]
    prefix = "https://" + host_format.split("{", 1)[0]  # the host part before the owner
    asked = []

    def urlopen(url):
        assert url.startswith(prefix), url
        owner, repo, ref, path = url[len(prefix):].split("/", 3)
        assert (owner, repo) == ("OWNER", "mbnode"), url
        asked.append((ref, path))
        return _Raw((ROOT / path).read_bytes())

    monkeypatch.setattr(mpremote_mip.urllib.request, "urlopen", urlopen)
    target = FolderBoard(tmp_path / "board")
    target.folder.mkdir()
    for package, ref in [("github:OWNER/mbnode", None), ("github:OWNER/mbnode/boards/pico.json", "v0.1.0")]:
        mpremote_mip._install_package(target, package, "http://127.0.0.1:9/no-index", "/", ref, True)
    assert target.files() == expected_py("pico", tmp_path)
    firmware = [path for ref, path in asked if ref == "HEAD"]
    board = [path for ref, path in asked if ref == "v0.1.0"]
    assert firmware == ["package.json"] + [url for _, url in mip.firmware_urls()]
    assert board == ["boards/pico.json"] + ["boards/" + url for _, url in mip.board_urls("pico")]


def test_deploy_after_the_py_packages_replaces_them(tmp_path):
    """`mbnode deploy`'s plan on a board holding what the .py packages installed: every .mpy to
    copy, every .py beside one removed, main.py (the same file) left alone. The facts are those
    deploy's device script reports (paths, SHA-256), read here from the folder."""
    from mbnode_host import deploy

    target = FolderBoard(tmp_path / "board")
    target.folder.mkdir()
    have = install(target, [str(ROOT / "package.json"), str(ROOT / "boards" / "pico.json")])
    b = build.bundle("pico", tmp_path / "pico")
    device = b.path / "device"
    files = {n: (device / n).read_bytes() for n, _ in b.device_files if n != "config.json"}
    facts = {"files": {"/" + n: hashlib.sha256(have[n]).hexdigest() for n in files if n in have},
             "mbnode": sorted(n[len("mbnode/"):] for n in have if n.startswith("mbnode/")),
             "root": sorted({n.split("/")[0] for n in have}), "umqtt": False, "frozen": None}
    todo = deploy.plan(files, facts, b"{}", want_umqtt=False)
    assert todo["copy"] == sorted(n for n in files if n.endswith(".mpy"))
    assert todo["remove"] == sorted(n for n in have if n != "main.py")
    assert "main.py" not in todo["copy"] and todo["config"] is True
