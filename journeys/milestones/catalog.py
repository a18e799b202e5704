"""The milestone definitions in force: the shipped examples and a folder of one's own.

Shipped definitions live in ``journeys/milestones/definitions/``; users add theirs to
a folder (``Settings.milestones_dir``), one YAML or JSON file each. A definition in
the folder replaces a shipped one of the same name.
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Final

from graph.errors import InvalidInput, NotFound
from journeys.milestones.definitions import (
    MilestoneDefinition,
    load_definition,
    parse_definition_text,
)

SUFFIXES: Final = (".yaml", ".yml", ".json")


class UnknownMilestone(NotFound):
    """A milestone name that no definition has."""

    code = "unknown_milestone"


def shipped_definitions() -> list[MilestoneDefinition]:
    """The example definitions shipped with journeygraph."""
    folder = resources.files("journeys.milestones") / "definitions"
    entries = sorted(folder.iterdir(), key=lambda entry: entry.name)
    return [
        parse_definition_text(entry.read_text(encoding="utf-8"), origin=f"shipped {entry.name}")
        for entry in entries
        if entry.name.endswith(SUFFIXES)
    ]


def _by_name(
    found: Iterable[tuple[MilestoneDefinition, Path]],
) -> dict[str, tuple[MilestoneDefinition, Path]]:
    definitions: dict[str, tuple[MilestoneDefinition, Path]] = {}
    for definition, path in found:
        if definition.name in definitions:
            first = definitions[definition.name][1]
            raise InvalidInput(
                f"milestone {definition.name!r} is defined twice: in {first} and in {path}",
                details={"milestone": definition.name, "files": [str(first), str(path)]},
            )
        definitions[definition.name] = (definition, path)
    return definitions


class MilestoneCatalog:
    """Definitions by name: the shipped ones, then a folder's (which win)."""

    def __init__(self, folder: Path | None = None, *, shipped: bool = True) -> None:
        self.folder = folder
        self.shipped = shipped

    def _folder_definitions(self) -> dict[str, tuple[MilestoneDefinition, Path]]:
        if self.folder is None or not self.folder.is_dir():
            return {}
        paths = sorted(p for p in self.folder.iterdir() if p.suffix in SUFFIXES and p.is_file())
        return _by_name((load_definition(path), path) for path in paths)

    def definitions(self) -> list[MilestoneDefinition]:
        """Every definition in force, sorted by name."""
        found = {d.name: d for d in shipped_definitions()} if self.shipped else {}
        found.update({name: entry[0] for name, entry in self._folder_definitions().items()})
        return [found[name] for name in sorted(found)]

    def get(self, name: str) -> MilestoneDefinition:
        """The definition of one milestone; ``UnknownMilestone`` names the known ones."""
        for definition in self.definitions():
            if definition.name == name:
                return definition
        known = ", ".join(d.name for d in self.definitions())
        raise UnknownMilestone(
            f"no milestone {name!r}; known: {known}", details={"milestone": name}
        )

    def select(self, names: Iterable[str] | None) -> list[MilestoneDefinition]:
        """The named definitions (all when ``names`` is None or empty)."""
        wanted = list(names or ())
        return [self.get(name) for name in wanted] if wanted else self.definitions()

    def add(self, definition: MilestoneDefinition) -> tuple[Path, bool]:
        """Store a definition in the folder; returns its file and whether it changed.

        A definition of a known name must be identical (nothing to do) or carry a
        higher version: reaches are kept per version, and a changed condition under an
        old version would leave reaches that no longer match it.
        """
        if self.folder is None:
            raise InvalidInput("no folder for milestone definitions is configured")
        own = self._folder_definitions().get(definition.name)
        current = {d.name: d for d in self.definitions()}.get(definition.name)
        if current is not None:
            if current == definition:
                return (own[1] if own else self._path(definition.name)), False
            if definition.version <= current.version:
                raise InvalidInput(
                    f"milestone {definition.name!r} version {current.version} exists with "
                    f"another definition; give the new one version {current.version + 1} or "
                    "higher",
                    details={
                        "milestone": definition.name,
                        "field": "version",
                        "current_version": current.version,
                    },
                )
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self._path(definition.name)
        temporary = path.with_name(f".{path.name}.tmp")
        temporary.write_text(definition.to_yaml(), encoding="utf-8")
        temporary.replace(path)
        if own is not None and own[1] != path:
            own[1].unlink(missing_ok=True)
        return path, True

    def _path(self, name: str) -> Path:
        assert self.folder is not None
        return self.folder / f"{name}.yaml"
