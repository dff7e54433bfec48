"""The documentation site's generated pages (docs/hooks/): every CLI command and option, every spec field and
space alias, every benchmark report; and README's links into the site point at files that exist."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HOOKS = ROOT / "docs" / "hooks"


@pytest.fixture
def hooks(monkeypatch: pytest.MonkeyPatch):
    """The CLI and spec hooks need only sltsearch; the benchmark one needs mkdocs (None without the docs extra)."""
    monkeypatch.syspath_prepend(str(HOOKS))
    import cli_reference
    import spec_reference

    try:
        import benchmark_reports
    except ImportError:
        benchmark_reports = None
    return cli_reference, spec_reference, benchmark_reports


def test_cli_reference_has_every_command_and_option(hooks) -> None:
    cli_reference, _, _ = hooks
    import typer.main

    from sltsearch.cli import app

    page = cli_reference.render()
    group = typer.main.get_command(app)
    root = group.context_class(group, info_name="sltsearch")
    for name in group.list_commands(root):
        assert f"## `sltsearch {name}`" in page
        for param in group.get_command(root, name).params:
            if param.param_type_name != "option":  # an argument: by its name or its metavar (RUN_DIR...)
                names = [param.name, param.name.upper(), getattr(param, "metavar", None) or param.name]
                assert any(n in page for n in names), f"sltsearch {name}: {param.name} missing from the CLI reference"
                continue
            for opt in param.opts:
                assert opt in page, f"sltsearch {name}: {opt} missing from the CLI reference"


def test_spec_reference_has_every_field_with_its_default_and_range(hooks) -> None:
    _, spec_reference, _ = hooks
    from sltsearch.spec.keys import declared_fields
    from sltsearch.spec.space import PARAM_ALIASES, ParamSpec

    page = spec_reference.render_spec()
    sections = dict(re.findall(r"### (?:`([^`]+)`|Top level) \{ #[^}]+ \}\n(.*?)(?=\n### |\Z)", page, flags=re.S))
    for declared in declared_fields():
        *parents, name = declared.path
        table = sections[".".join(parents)] if parents else page.split("### `data`")[0]
        assert f"| `{name}` |" in table, f"{declared.name} missing from the spec reference"
    assert "| `time_steps` | int | `4` | ≥ 1; ≤ 1024 |" in page  # type, default and range of one field
    assert "`lif`, `plif`, `if`, `lif_multi`, `relu`" in page  # a Literal's allowed values
    for name in ParamSpec.model_fields:
        assert f"| `{name}` |" in sections["space.<key>"]
    aliases = spec_reference.render_aliases()
    for alias, path in PARAM_ALIASES.items():
        assert f"| `{alias}` | `{path}` |" in aliases


def test_every_benchmark_report_is_in_the_index(hooks) -> None:
    _, _, benchmark_reports = hooks
    if benchmark_reports is None:
        pytest.skip("the docs extra (pip install -e '.[docs]') is not installed: no mkdocs")
    index = benchmark_reports._index()
    reports = sorted((ROOT / "results" / "benchmarks").glob("*.md"))
    assert reports
    for path in reports:
        assert f"]({path.name})" in index


def test_readme_links_point_at_files() -> None:
    """README is the site's home page too (docs/hooks/readme_home.py): its links must resolve in the repository."""
    text = (ROOT / "README.md").read_text()
    links = [target for target in re.findall(r"\]\(([^)#\s]+)", text) if "://" not in target]
    assert any(link.startswith("docs/") for link in links)
    missing = [link for link in links if not (ROOT / link).exists()]
    assert not missing, f"README links to missing files: {missing}"


def test_tutorials_are_jupytext_percent_scripts() -> None:
    """mkdocs-jupyter runs them as notebooks; each starts with the jupytext header and has markdown cells."""
    tutorials = sorted((ROOT / "docs" / "tutorials").glob("*.py"))
    assert len(tutorials) >= 3
    for path in tutorials:
        text = path.read_text()
        assert "formats: py:percent" in text and "# %% [markdown]" in text, path.name
        nav = (ROOT / "mkdocs.yml").read_text()
        assert f"tutorials/{path.name}" in nav, f"{path.name} is not in mkdocs.yml's nav"


if __name__ == "__main__":
    sys.exit(pytest.main([__file__]))
