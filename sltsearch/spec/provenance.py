"""What users' own code and data a cached stage depends on, for stage keys and the run folder.

sltsearch's own families and datasets are keyed by the spec alone. A user's network (import path, Python
callable, plugin, a family registered from user code) adds ``model_code``: a hash of the source it was loaded
from, or ``model.version`` when set (`sltsearch.models.user.code_fingerprint`). An ``arrays`` file adds the
hash of its bytes; a plugin's dataset builder adds the hash of its code. Torch Datasets passed from Python
carry their content hash in ``data.options.fingerprint`` already. `stages.dense_key` includes all of these,
so a stage is never reused for other code or other data; run.json records them under ``inputs``, and a
run folder refuses to resume with different ones (its tickets would mix two networks in one front).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sltsearch.errors import RunDirError

_FILE_DIGESTS: dict[tuple[str, int, int], str] = {}


def stage_inputs(spec: Any) -> dict[str, str]:
    """{} for built-in families and datasets; else ``model_code`` and/or ``data_content``."""
    from sltsearch.models.registry import model_code

    out: dict[str, str] = {}
    code = model_code(spec.model)
    if code:
        out["model_code"] = code
    content = data_content(spec.data)
    if content:
        out["data_content"] = content
    return out


def data_content(data: Any) -> str | None:
    from sltsearch.data.registry import PATHED, find_dataset
    from sltsearch.models.user import code_fingerprint

    if data.name in PATHED:
        path = Path(data.path).expanduser() if data.path else None
        return f"sha256:{_file_digest(path)}" if path is not None and path.is_file() else None
    builder = find_dataset(data.name)
    if builder is None or str(getattr(builder, "__module__", "")).startswith("sltsearch."):
        return None
    return code_fingerprint(builder, None, data.name)


def _file_digest(path: Path) -> str:
    """The file's sha256 (16 hex digits, so stage keys change when its content does), remembered per (path,
    size, mtime) so a large file is read once per process."""
    from sltsearch.system.files import sha256_file

    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _FILE_DIGESTS:
        _FILE_DIGESTS[key] = sha256_file(path)[:16]
    return _FILE_DIGESTS[key]


def run_inputs(spec: Any) -> dict[str, str]:
    """What run.json records: the network and dataset names with their code / content hashes."""
    inputs = stage_inputs(spec)
    if not inputs:
        return {}
    return {"model": spec.model.name, "data": spec.data.name, **inputs}


def check_resume(run_dir: Path, inputs: dict[str, str]) -> None:
    """Refuse to add trials of other user code or data to a run folder that already holds some."""
    from sltsearch.runfolder.folder import run_info

    previous = run_info(run_dir).get("inputs") if run_dir.exists() else None
    if not previous or previous == inputs:
        return
    changed = [k for k in sorted(set(previous) | set(inputs)) if previous.get(k) != inputs.get(k)]
    details = ", ".join(f"{k} {previous.get(k)} -> {inputs.get(k)}" for k in changed)
    raise RunDirError(
        f"{run_dir} holds tickets of other code or data ({details}); pass --run-dir (run_dir=) for a new run, "
        f"or restore the code/data it was run with to resume it"
    )
