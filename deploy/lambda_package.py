"""Post-processing of a package that `zappa package` built: the parts Zappa
does not do for us, each one checked here rather than trusted.

- Bytecode. Zappa dates every zip entry 1 January 1980, so a timestamp-based
  .pyc never matches its source on Lambda and Python recompiles every module on
  every cold start (and cannot cache the result: /var/task is read-only). We
  compile with the unchecked-hash invalidation mode, which Python uses without
  looking at the source's date.
- glibc. Zappa would swap in manylinux wheels from its index, which is not
  reachable here, so we read every compiled extension's ELF version needs and
  refuse any that needs a glibc newer than the Lambda runtime's (Amazon Linux
  2023: 2.34) or is built for another architecture.
- Size. Lambda refuses more than 250 MB unzipped; we hold ourselves to 100 MiB.
"""

from __future__ import annotations

import compileall
import os
import py_compile
import re
import shutil
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from elftools.elf.elffile import ELFFile
from elftools.elf.gnuversions import GNUVerNeedSection

# Amazon Linux 2023, the OS of the python3.13 Lambda runtime.
MAX_GLIBC = (2, 34)
MAX_UNZIPPED_BYTES = 100 * 1024 * 1024
# Zappa's architecture setting -> ELF e_machine.
ELF_MACHINES = {"x86_64": "EM_X86_64", "arm64": "EM_AARCH64"}
LAMBDA_PYTHON = (3, 13)
# Zappa's date for every entry; kept so that ours look like its own.
ZIP_DATE = (1980, 1, 1, 0, 0, 0)

_GLIBC = re.compile(r"^GLIBC_(\d+)\.(\d+)(?:\.(\d+))?$")


class PackageError(Exception):
    """The package must not ship."""


@dataclass(frozen=True)
class PackageStats:
    path: Path
    zipped_bytes: int
    unzipped_bytes: int
    files: int


def glibc_needs(path: Path) -> tuple[str, set[tuple[int, ...]]]:
    """(ELF machine, the GLIBC_x.y versions the shared object needs)."""
    with path.open("rb") as f:
        elf = ELFFile(f)
        versions: set[tuple[int, ...]] = set()
        for section in elf.iter_sections():
            if not isinstance(section, GNUVerNeedSection):
                continue
            for _verneed, auxiliaries in section.iter_versions():
                for aux in auxiliaries:
                    match = _GLIBC.match(aux.name)
                    if match:
                        versions.add(tuple(int(p) for p in match.groups() if p is not None))
        return elf["e_machine"], versions


def is_elf(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(4) == b"\x7fELF"


def check_extensions(
    root: Path, *, architecture: str = "x86_64", max_glibc: tuple[int, int] = MAX_GLIBC
) -> list[Path]:
    """Every ELF file under root; raises PackageError naming each one that
    cannot load on the Lambda runtime."""
    machine = ELF_MACHINES[architecture]
    problems: list[str] = []
    checked: list[Path] = []
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.is_symlink() or not is_elf(path):
            continue
        checked.append(path)
        found_machine, versions = glibc_needs(path)
        relative = path.relative_to(root)
        if found_machine != machine:
            problems.append(f"{relative}: built for {found_machine}, Lambda runs {machine}")
        too_new = sorted(v for v in versions if v[:2] > max_glibc)
        if too_new:
            needed = ".".join(map(str, too_new[-1]))
            limit = ".".join(map(str, max_glibc))
            problems.append(f"{relative}: needs GLIBC_{needed}, the runtime has {limit}")
    if problems:
        raise PackageError(
            "compiled extensions that cannot load on Lambda:\n  " + "\n  ".join(problems)
        )
    return checked


def compile_bytecode(root: Path) -> None:
    """Replace whatever bytecode there is with unchecked-hash .pyc files."""
    if sys.version_info[:2] != LAMBDA_PYTHON:
        raise PackageError(
            f"bytecode must be compiled by Python {LAMBDA_PYTHON}, not {sys.version}"
        )
    for cache in list(root.rglob("__pycache__")):
        shutil.rmtree(cache)
    ok = compileall.compile_dir(
        root,
        quiet=1,
        workers=0,
        invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
    )
    if not ok:
        raise PackageError("some modules in the package do not compile (see above)")


def _write_zip(root: Path, destination: Path) -> None:
    tmp = destination.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in sorted(filenames):
                path = Path(dirpath) / name
                info = zipfile.ZipInfo(path.relative_to(root).as_posix(), date_time=ZIP_DATE)
                info.create_system = 3  # unix, so Lambda honours the mode below
                info.external_attr = 0o755 << 16 if os.access(path, os.X_OK) else 0o644 << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, path.read_bytes(), compresslevel=9)
    tmp.replace(destination)


# Appended to a package's zappa_settings.py when the stage has event sources.
# Zappa's handler routes an SQS record to a function by the queue's ARN
# (AWS_EVENT_MAPPING), and an ARN names the account, which the offline build
# does not know (zappa_settings.json holds a placeholder account; make deploy
# puts the real ARN on the event source). So the package matches a record's
# queue by its name, the ARN's last part.
ROUTE_BY_QUEUE_NAME = """

class _ByQueueName(dict):
    def get(self, arn, default=None):
        if arn in self:
            return self[arn]
        for known, functions in self.items():
            if known.rsplit(":", 1)[-1] == str(arn).rsplit(":", 1)[-1]:
                return functions
        return default


AWS_EVENT_MAPPING = _ByQueueName(AWS_EVENT_MAPPING)
"""


def route_events_by_queue_name(root: Path) -> None:
    settings = root / "zappa_settings.py"
    if settings.exists() and "AWS_EVENT_MAPPING={}" not in settings.read_text():
        with settings.open("a") as f:
            f.write(ROUTE_BY_QUEUE_NAME)


def finish(raw_zip: Path, destination: Path, *, architecture: str = "x86_64") -> PackageStats:
    """Turn Zappa's zip into the package that ships: compiled, checked, sized."""
    with tempfile.TemporaryDirectory(prefix="lambda-package-") as tmp:
        root = Path(tmp)
        with zipfile.ZipFile(raw_zip) as archive:
            archive.extractall(root)
        for path in root.rglob("*"):
            # Zappa marks every file executable; shared objects need it, the rest not.
            if path.is_file():
                path.chmod(0o755 if is_elf(path) else 0o644)
        route_events_by_queue_name(root)
        compile_bytecode(root)
        check_extensions(root, architecture=architecture)
        _write_zip(root, destination)
    package = stats(destination)
    try:
        check_size(package)
    except PackageError:
        destination.unlink()  # so that no later deploy picks it up
        raise
    return package


def stats(path: Path) -> PackageStats:
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
    unzipped = sum(i.file_size for i in infos)
    return PackageStats(path, path.stat().st_size, unzipped, len(infos))


def check_size(package: PackageStats, limit: int = MAX_UNZIPPED_BYTES) -> None:
    if package.unzipped_bytes > limit:
        raise PackageError(
            f"{package.path.name} is {mib(package.unzipped_bytes)} unzipped; the limit is {mib(limit)}"
        )


def mib(size: int) -> str:
    return f"{size / 1024 / 1024:.1f} MiB"
