"""MkDocs hook: the site's home page is README.md, its links rewritten from the repository's layout to the site's.

README.md links into ``docs/...`` (so they work on a code host) and to ``results/benchmarks/``; the site serves
the same pages at ``...`` and the reports at ``benchmarks/`` (docs/hooks/benchmark_reports.py). One text, two
places: the landing page is written once.
"""

from __future__ import annotations

from pathlib import Path

from mkdocs.structure.files import File, Files

README = Path(__file__).resolve().parents[2] / "README.md"
REWRITES = (("](docs/", "]("), ("](results/benchmarks/)", "](benchmarks/index.md)"))


def home_markdown() -> str:
    text = README.read_text()
    for old, new in REWRITES:
        text = text.replace(old, new)
    return text


def on_files(files: Files, config) -> Files:  # noqa: ANN001 (MkDocs hook signature)
    files.append(File.generated(config, "index.md", content=home_markdown()))
    return files
