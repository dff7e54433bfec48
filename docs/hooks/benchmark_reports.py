"""MkDocs hook: the benchmark reports of results/benchmarks/ become the site's Benchmarks section at build time.

Every ``results/benchmarks/*.md`` is served as ``benchmarks/<name>.md`` with the figures and tables beside it
(``*.png``, ``*.csv``, ``*.json``), read from where the benchmark scripts write them: nothing is copied into
docs/, so a rerun benchmark shows on the next build. A report that only names its figure (``<name>.png``) gets
it shown at its end. The nav's ``Benchmarks`` entry becomes an overview page
(``benchmarks/index.md``: each report's title, the script that writes it and its ``Summary:`` line when it
has one) followed by one entry per report.
"""

from __future__ import annotations

import re
from pathlib import Path

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[2]
REPORTS = ROOT / "results" / "benchmarks"
SCRIPTS = ROOT / "benchmarks"
ASSETS = ("*.png", "*.csv", "*.json", "*.html")
NAV_TITLE = "Benchmarks"


def _reports() -> list[Path]:
    return sorted(REPORTS.glob("*.md"))


def _title(path: Path) -> str:
    for line in path.read_text().splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return path.stem


def _nav_titles() -> dict[Path, str]:
    """Short nav labels: a report's title up to its first colon or "(issue ...)", the file name added where two
    reports would read the same."""
    short = {path: re.split(r":| \(issue", _title(path))[0].strip() for path in _reports()}
    labels = list(short.values())
    return {path: label if labels.count(label) == 1 else f"{label} ({path.stem})" for path, label in short.items()}


def _summary(path: Path) -> str:
    for line in path.read_text().splitlines():
        if line.startswith("Summary:"):
            return line.removeprefix("Summary:").strip()
    return ""


def _script(path: Path) -> str:
    """The script a report comes from: its ``Command:`` line's ``benchmarks/<x>.py``, else one of its name."""
    found = re.search(r"benchmarks/(\w+)\.py", path.read_text())
    if found:
        return f"benchmarks/{found.group(1)}.py"
    same = SCRIPTS / f"{path.stem}.py"
    return f"benchmarks/{same.name}" if same.exists() else ""


def _with_figure(path: Path) -> str:
    """The report as written, and its figure (``<name>.png`` beside it) shown where the report only names it."""
    text = path.read_text()
    figure = path.with_suffix(".png")
    if figure.exists() and f"]({figure.name})" not in text:
        text = text.rstrip("\n") + f"\n\n![{_title(path)}]({figure.name})\n"
    return text


def _index() -> str:
    lines = [
        "# Benchmarks",
        "",
        "Every report below is written by a script in `benchmarks/` (`python benchmarks/<name>.py`, see",
        "[Development](../development.md)) into `results/benchmarks/`, and shown here as that script wrote it,",
        "figures included. Each report states its machine, load, command and seeds; timings from a shared",
        "2-core machine are indicative, the ratios measured side by side are what the reports conclude on.",
        "",
        "| report | script in `benchmarks/` | summary |",
        "| --- | --- | --- |",
    ]
    for path in _reports():
        title = _title(path).replace("|", "\\|")
        script = _script(path)
        name = f"`{Path(script).name}`" if script else ""
        lines.append(f"| [{title}]({path.name}) | {name} | {_summary(path)} |")
    return "\n".join(lines) + "\n"


def on_config(config):  # noqa: ANN001, ANN201 (MkDocs hook signature)
    entries = [{"Overview": "benchmarks/index.md"}]
    entries += [{label: f"benchmarks/{path.name}"} for path, label in _nav_titles().items()]
    nav = config["nav"] or []
    for i, item in enumerate(nav):
        if isinstance(item, dict) and NAV_TITLE in item:
            nav[i] = {NAV_TITLE: entries}
    return config


def on_files(files: Files, config) -> Files:  # noqa: ANN001 (MkDocs hook signature)
    files.append(File.generated(config, "benchmarks/index.md", content=_index()))
    for path in _reports():
        files.append(File.generated(config, f"benchmarks/{path.name}", content=_with_figure(path)))
    for pattern in ASSETS:
        for path in sorted(REPORTS.glob(pattern)):
            files.append(File.generated(config, f"benchmarks/{path.name}", abs_src_path=str(path)))
    return files
