"""Docs that cannot drift: every file path and dotted name the documentation names exists.

Checked: in README.md, tests/README.md, benchmarks/README.md and docs/**/*.md, every backticked file path
(`cpp/src/mcmc.cpp`, `kernels/table.py`, a bare `codegen.py`, globs such as `cuda/*.cu`), every
`path:symbol` (the symbol must occur in that file) and every dotted name under `vaekernels`
(`vaekernels.mcmc.ais`: importable, then each attribute); in the tracked source files (Python, C++, CUDA,
CMake, TOML), every repository path they mention (`see cpp/include/vaekernels/mcmc.hpp`) and its
`:symbol`. A renamed file, a moved function or a removed module fails here with the place that names it.
"""
import glob
import importlib
import os
import re
import subprocess

import pytest

from conftest import REPO

TOP = ("python/", "cpp/", "cuda/", "tests/", "benchmarks/", "docs/", "build_backend/", ".ci/")
FILE_EXT = (".py", ".pyi", ".cpp", ".hpp", ".h", ".cu", ".cuh", ".md", ".toml")
# where a path written relative to a package or source folder may live
BASES = ("", "python", "python/vaekernels", "cpp", "cpp/src", "cpp/include", "cpp/include/vaekernels", "cuda",
         "tests", "benchmarks", "docs")


def _tracked():
    out = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip("not a git checkout")
    return [f for f in out.stdout.splitlines() if os.path.exists(os.path.join(REPO, f))]


TRACKED = _tracked()
NAMES = {os.path.basename(f) for f in TRACKED}
DOCS = [f for f in TRACKED if f in ("README.md", "tests/README.md", "benchmarks/README.md")
        or (f.startswith("docs/") and f.endswith(".md"))]
SOURCES = [f for f in TRACKED if (f.endswith((".py", ".pyi", ".cpp", ".hpp", ".cu", ".cuh", ".toml"))
                                  or os.path.basename(f) == "CMakeLists.txt") and f != "tests/test_docs.py"]


def _path_exists(path, doc_dir):
    """The files ``path`` names (a glob allowed), tried from the doc's folder and the source folders."""
    for base in (doc_dir,) + BASES:
        hits = glob.glob(os.path.join(REPO, base, path.rstrip("/")), recursive=True)
        if hits:
            return hits
    return []


def _symbol_in(files, symbol):
    return any(os.path.isfile(f) and re.search(rf"\b{re.escape(symbol)}\b", open(f, errors="replace").read())
               for f in files)


def _dotted_exists(name):
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        try:
            for a in parts[i:]:
                obj = getattr(obj, a)
        except AttributeError:
            return False
        return True
    return False


_SPAN = re.compile(r"`([^`\n]+)`")
_PATHLIKE = re.compile(r"[\w.*/-]+")


def doc_problems(text, doc_dir=""):
    """The backticked names in Markdown ``text`` (of a document in ``doc_dir``) that do not exist, as
    'line N: `name` (why)'."""
    problems = []
    for n, line in enumerate(text.splitlines(), 1):
        for span in _SPAN.findall(line):
            s = span.strip()
            if re.fullmatch(r"vaekernels(\.\w+)+", s):
                if not _dotted_exists(s):
                    problems.append(f"line {n}: `{s}` (no such module or attribute)")
                continue
            path, _, symbol = s.partition(":")
            if not _PATHLIKE.fullmatch(path) or path.startswith((".", "-")) or symbol and not symbol.isidentifier():
                continue
            if "/" in path.rstrip("/"):
                if not path.startswith(TOP) and not (path.endswith(FILE_EXT) or path.endswith("/")):
                    continue
                hits = _path_exists(path, doc_dir)
                if not hits:
                    problems.append(f"line {n}: `{s}` (no such file or folder)")
                elif symbol and not _symbol_in(hits, symbol):
                    problems.append(f"line {n}: `{s}` ({symbol} does not occur in {path})")
            elif path.endswith(FILE_EXT) and "*" not in path:
                if path not in NAMES:
                    problems.append(f"line {n}: `{s}` (no tracked file of that name)")
                elif symbol and not _symbol_in([os.path.join(REPO, f) for f in TRACKED
                                                if os.path.basename(f) == path], symbol):
                    problems.append(f"line {n}: `{s}` ({symbol} does not occur in {path})")
    return problems


_SOURCE_PATH = re.compile(r"(?<![\w/.])((?:python|cpp|cuda|tests|benchmarks|docs|build_backend)/[\w./*-]*[\w*])"
                          r"(?::(\w+))?")


def source_problems(src):
    problems = []
    for n, line in enumerate(open(os.path.join(REPO, src), errors="replace").read().splitlines(), 1):
        for m in _SOURCE_PATH.finditer(line):
            path, symbol = m.group(1), m.group(2)
            hits = glob.glob(os.path.join(REPO, path), recursive=True)
            if not hits:
                problems.append(f"line {n}: {path} (no such file or folder)")
            elif symbol and not _symbol_in(hits, symbol):
                problems.append(f"line {n}: {path}:{symbol} ({symbol} does not occur there)")
    return problems


@pytest.mark.parametrize("doc", DOCS)
def test_every_name_a_document_gives_exists(doc):
    problems = doc_problems(open(os.path.join(REPO, doc)).read(), os.path.dirname(doc))
    assert not problems, f"{doc} names what does not exist:\n  " + "\n  ".join(problems)


def test_every_path_a_source_file_names_exists():
    """(This file is left out: its self-check names stale paths on purpose.)"""
    problems = [f"{src}: {p}" for src in SOURCES for p in source_problems(src)]
    assert not problems, "source files name paths that do not exist:\n  " + "\n  ".join(problems)


def test_the_checker_sees_a_stale_name():
    """The checks can fail: a document naming a removed file, a moved symbol, an unknown file name and a
    missing attribute (and not the names that exist beside them)."""
    problems = doc_problems("See `cpp/src/gone.cpp`, `python/vaekernels/kernels/table.py:no_such_symbol`, `gone.py`"
                            " and `vaekernels.mcmc.no_such_function`; but `kernels/table.py:KERNELS`, `cuda/*.cu` "
                            "and `vaekernels.mcmc.ais`.\n")
    assert len(problems) == 4 and all(bad in " ".join(problems) for bad in (
        "gone.cpp", "no_such_symbol", "gone.py", "no_such_function")), problems
