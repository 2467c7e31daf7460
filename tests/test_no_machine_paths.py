"""Specs, READMEs and docs cite papers by reference and section, never by a path on the machines
we develop on: a user's checkout has no ``/work/shared/papers/ledf.txt``."""

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TEXT = {".py", ".md", ".yaml", ".yml", ".toml", ".txt", ".j2", ".cfg", ".ini", ".json", ".sh",
        ".html", ""}
# An absolute path into a home, workspace or root folder: machine-specific by construction.
MACHINE_PATH = re.compile(r"(?<![\w.~$/-])/(?:work|root|home|Users|scratch)/[\w.-]+")
# Placeholders a reader substitutes (documentation examples), not real locations.
EXAMPLE = re.compile(r"/(?:home|Users)/(?:you|user|me|USER|<[^>]+>)\b")


def tracked_text_files() -> list[Path]:
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                             check=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"not a git checkout ({exc}): nothing tracked to scan")
    names = [n for n in out.decode().split("\0") if n]
    me = Path(__file__).resolve()
    return [ROOT / n for n in names if Path(n).suffix in TEXT and (ROOT / n).is_file()
            and (ROOT / n).resolve() != me]  # this file's own examples are the scanner's test


def machine_paths(text: str) -> list[str]:
    """Every machine-specific absolute path in ``text`` that is not a documented placeholder."""
    return [m.group(0) for m in MACHINE_PATH.finditer(text) if not EXAMPLE.match(m.group(0))]


def test_no_tracked_text_file_names_a_path_on_our_machines():
    hits = []
    for path in tracked_text_files():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for n, line in enumerate(text.splitlines(), 1):
            hits += [f"{path.relative_to(ROOT)}:{n}: {p}" for p in machine_paths(line)]
    assert not hits, ("absolute paths of a development machine in tracked files (cite the paper "
                      "by reference and section instead):\n" + "\n".join(hits))


@pytest.mark.parametrize("line, found", [
    ("text: `/work/shared/papers/fmn.txt`", ["/work/shared"]),
    ("# The provided text (/root/papers/ledf.txt)", ["/root/papers"]),
    ("see /home/alice/reid/data", ["/home/alice"]),
    ("put it in /home/you/weights", []),          # a placeholder
    ("run --weights resnet50=/data/resnet50.pth", []),  # an example location, not a home
    ("papers/ledf/table1.yaml", []),               # relative
    ("https://example.org/work/x", []),            # part of a URL
])
def test_the_scanner_finds_machine_paths_and_spares_examples(line, found):
    assert machine_paths(line) == found
