"""Which spec a study belongs to: its run identity, recorded when the study is made and compared on every open
and ask, so two specs never share one study (their trials would be mixed under either's name)."""

from __future__ import annotations

import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import optuna

from sltsearch.errors import UserError
from sltsearch.spec import Spec
from sltsearch.spec.keys import content_key, run_identity

IDENTITY = "sltsearch:run_identity"  # study user attr: the hash of the spec's run identity
IDENTITY_SPEC = "sltsearch:spec"  # study user attr: that run identity itself (compared after an upgrade)
MADE_BY = "sltsearch:made_by"  # study user attr: the host and run folder that made the study (for messages)


class StudyOfAnotherSpec(UserError):
    """The study was made by a spec with another run identity: its trials are not this spec's."""


def spec_identity(spec: Spec) -> str:
    """The hash of ``spec``'s run identity: equal for specs whose trials compute and are judged alike."""
    return content_key(run_identity(spec))


def _same_identity(spec: Spec, attrs: Mapping[str, Any]) -> bool:
    """Whether the study's recorded identity is ``spec``'s: the same hash, or (a study made by an older
    sltsearch, whose specs had fewer fields) the same identity once its recorded spec is read by this one."""
    if attrs.get(IDENTITY) == spec_identity(spec):
        return True
    recorded = attrs.get(IDENTITY_SPEC)
    if not isinstance(recorded, dict):
        return False
    try:
        return run_identity(Spec.model_validate(recorded)) == run_identity(spec)
    except ValueError:  # pydantic's ValidationError: a spec this version cannot read is not this one
        return False


def claim_identity(study: optuna.Study, spec: Spec, run_dir: Path | None = None) -> None:
    """Record ``spec``'s identity in a study that has none (a new one, or one made before studies carried
    it); raise `StudyOfAnotherSpec` when the study holds another. Read back after writing: of two processes
    making one study at the same moment with different specs, the one whose write was overwritten stops."""
    attrs = study.user_attrs
    if IDENTITY not in attrs:
        study.set_user_attr(IDENTITY_SPEC, run_identity(spec))
        study.set_user_attr(MADE_BY, f"{socket.gethostname()}:{Path(run_dir).resolve()}" if run_dir else "")
        study.set_user_attr(IDENTITY, spec_identity(spec))
        attrs = study.user_attrs
    if not _same_identity(spec, attrs):
        raise _another_spec(study.study_name, attrs)


def _another_spec(name: str, attrs: Mapping[str, Any]) -> StudyOfAnotherSpec:
    made_by = attrs.get(MADE_BY) or "another run"
    return StudyOfAnotherSpec(
        f"study '{name}' belongs to another spec (made by {made_by}; its trials trained with other settings): "
        "run the spec it was made with, or set search.study_name to start a new study"
    )
