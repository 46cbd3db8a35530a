"""The source archives the e2e-openppl image builds ppl.nn from: taken from a folder when it holds
them (air-gapped builds), else downloaded from GitHub, and checked against `sources.sha256` either way.

The check is over an archive's contents, not its bytes: SHA-256 over the sorted list of its files
(path without the top folder, executable bit, SHA-256 of the bytes) and symlinks. A GitHub archive
and a `git archive` of the same commit then pass alike, whatever their top folder and compression.

    python3 sources.py --from DIR --to DIR [--skip VAR ...]   # prints ppl.nn's -D...=<archive> flags

Standard library only: it runs in the image's build stage, before anything is installed.
"""
import argparse
import hashlib
import shutil
import sys
import tarfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import List

LIST = Path(__file__).with_name("sources.sha256")


@dataclass(frozen=True)
class Source:
    digest: str  # tree_digest() of the archive
    file: str  # its name in a sources folder
    variable: str  # ppl.nn's CMake variable that takes it (-D<variable>=<path>); "-" for ppl.nn itself
    url: str  # where it is downloaded from when no folder holds it


def pinned(path: Path = LIST) -> List[Source]:
    """The entries of `sources.sha256`: digest, file, CMake variable, URL per line; # comments."""
    entries = []
    for line in path.read_text(encoding="utf-8").splitlines():
        fields = line.split("#", 1)[0].split()
        if fields:
            if len(fields) != 4:
                raise ValueError(f"{path}: expected 'digest file variable url', got {line!r}")
            entries.append(Source(*fields))
    return entries


def tree_digest(archive: Path) -> str:
    """SHA-256 of a tar archive's contents, independent of its top folder and compression."""
    lines = []
    with tarfile.open(str(archive), "r:*") as tar:
        for member in tar:
            name = member.name.split("/", 1)[1] if "/" in member.name else ""
            if member.isdir() or not name:
                continue
            if member.issym():
                lines.append(f"link {name} {member.linkname}")
            elif member.isfile():
                data = tar.extractfile(member).read()
                lines.append(f"file {name} {'x' if member.mode & 0o111 else '-'} {hashlib.sha256(data).hexdigest()}")
            else:
                raise ValueError(f"{archive}: {member.name} is neither a file, a folder nor a symlink")
    return hashlib.sha256("\n".join(sorted(lines)).encode()).hexdigest()


def download(url: str, to: Path, attempts: int = 3) -> None:
    for attempt in range(1, attempts + 1):
        try:
            with urllib.request.urlopen(url, timeout=300) as response, open(to, "wb") as out:
                shutil.copyfileobj(response, out)
            return
        except OSError as e:
            if attempt == attempts:
                raise OSError(f"cannot download {url} ({e}): without internet access, put {to.name} in the "
                              "sources folder (runners/openppl/README.md)") from None
            time.sleep(5 * attempt)


def gather(sources: Path, dest: Path, skip: List[str], log=print) -> List[Path]:
    """Every pinned archive but the skipped, in `dest`: copied from `sources` or downloaded, then
    checked. Raises ValueError naming the archive whose contents differ from the pin."""
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for source in pinned():
        if source.variable in skip:
            continue
        target, local = dest / source.file, sources / source.file
        if local.is_file():
            shutil.copyfile(local, target)
            origin = f"from {local}"
        else:
            download(source.url, target)
            origin = f"downloaded from {source.url}"
        found = tree_digest(target)
        if found != source.digest:
            raise ValueError(f"{source.file} ({origin}) holds other contents than the pinned commit: "
                             f"tree digest {found}, sources.sha256 says {source.digest}")
        log(f"{source.file} {origin}; contents as pinned ({found[:16]}), archive sha256 "
            f"{hashlib.sha256(target.read_bytes()).hexdigest()}")
        out.append(target)
    return out


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--from", dest="sources", type=Path, required=True, help="a folder that may hold archives")
    parser.add_argument("--to", type=Path, required=True, help="where the checked archives go")
    parser.add_argument("--skip", action="append", default=[], help="a CMake variable whose archive is not needed")
    args = parser.parse_args(argv)
    try:
        archives = gather(args.sources, args.to, args.skip, log=lambda m: print(m, file=sys.stderr))
    except (OSError, ValueError) as e:
        print(f"sources.py: {e}", file=sys.stderr)
        return 1
    by_file = {s.file: s for s in pinned()}
    print(" ".join(f"-D{by_file[a.name].variable}={a}" for a in archives if by_file[a.name].variable != "-"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
