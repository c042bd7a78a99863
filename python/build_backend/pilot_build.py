"""The PEP 517 build backend of this package: a wheel of pilot/*.py, with the standard library only.

Why not setuptools: `python3 -m venv v && v/bin/pip install ./python` must work offline. pip builds in an
isolated environment and would fetch setuptools (and wheel, for bdist_wheel) from an index; a backend that
needs nothing lets that environment stay empty. The package is pure Python with no data files, so the wheel
is the .py files plus the three dist-info files the wheel format asks for (PEP 427).
"""

from __future__ import annotations

import base64
import hashlib
import os
import tarfile
import zipfile

NAME = "pilot_overlay"
DIST = "pilot-overlay"
VERSION = "0.1.0"
HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TAG = "py3-none-any"

METADATA = f"""Metadata-Version: 2.1
Name: {DIST}
Version: {VERSION}
Summary: Python client for the Pilot overlay daemon: streams, datagrams, trust and the built-in services over its IPC socket
License: MIT
Requires-Python: >=3.10
Classifier: Programming Language :: Python :: 3
Classifier: Operating System :: POSIX
"""

WHEEL = f"""Wheel-Version: 1.0
Generator: pilot_build
Root-Is-Purelib: true
Tag: {TAG}
"""


def _sources() -> list[str]:
    out = []
    for root, dirs, files in os.walk(os.path.join(HERE, "pilot")):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        out += [os.path.relpath(os.path.join(root, f), HERE) for f in sorted(files) if f.endswith(".py") or f == "py.typed"]
    return out


def _digest(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def _dist_info() -> str:
    return f"{NAME}-{VERSION}.dist-info"


def get_requires_for_build_wheel(config_settings=None) -> list[str]:
    return []


def get_requires_for_build_sdist(config_settings=None) -> list[str]:
    return []


def get_requires_for_build_editable(config_settings=None) -> list[str]:
    return []


def prepare_metadata_for_build_wheel(metadata_directory: str, config_settings=None) -> str:
    d = os.path.join(metadata_directory, _dist_info())
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "METADATA"), "w") as f:
        f.write(METADATA)
    with open(os.path.join(d, "WHEEL"), "w") as f:
        f.write(WHEEL)
    return _dist_info()


prepare_metadata_for_build_editable = prepare_metadata_for_build_wheel


def _write_wheel(wheel_directory: str, files: dict[str, bytes]) -> str:
    name = f"{NAME}-{VERSION}-{TAG}.whl"
    info = _dist_info()
    files = {**files, f"{info}/METADATA": METADATA.encode(), f"{info}/WHEEL": WHEEL.encode()}
    record = "".join(f"{p},{_digest(b)},{len(b)}\n" for p, b in files.items()) + f"{info}/RECORD,,\n"
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w", zipfile.ZIP_DEFLATED) as z:
        for p, b in files.items():
            z.writestr(p, b)
        z.writestr(f"{info}/RECORD", record)
    return name


def build_wheel(wheel_directory: str, config_settings=None, metadata_directory=None) -> str:
    files = {}
    for rel in _sources():
        with open(os.path.join(HERE, rel), "rb") as f:
            files[rel.replace(os.sep, "/")] = f.read()
    return _write_wheel(wheel_directory, files)


def build_editable(wheel_directory: str, config_settings=None, metadata_directory=None) -> str:
    # a .pth file that puts this directory on sys.path: edits to pilot/ take effect without reinstalling
    return _write_wheel(wheel_directory, {"pilot_overlay_editable.pth": (HERE + "\n").encode()})


def build_sdist(sdist_directory: str, config_settings=None) -> str:
    base = f"{NAME}-{VERSION}"
    name = f"{base}.tar.gz"
    with tarfile.open(os.path.join(sdist_directory, name), "w:gz") as t:
        for rel in ["pyproject.toml", "README.md", "build_backend/pilot_build.py", *_sources()]:
            t.add(os.path.join(HERE, rel), arcname=f"{base}/{rel}")
        pkg = f"{METADATA}".encode()
        import io

        ti = tarfile.TarInfo(f"{base}/PKG-INFO")
        ti.size = len(pkg)
        t.addfile(ti, io.BytesIO(pkg))
    return name
