"""Analyser registry: name → factory, filled from the ``imgbot.analyzers`` entry points.

The built-in analysers register through the same entry-point group an outside
package would use (see ``pyproject.toml``). A factory takes the ``Settings`` and
returns an object with the ``Analyzer`` interface. Factories import their heavy
dependencies themselves, so picking one analyser never loads another's.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

from bot.errors import ConfigError

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.core.ports import Analyzer

ENTRY_POINT_GROUP = "imgbot.analyzers"

AnalyzerFactory = Callable[["Settings"], "Analyzer"]


def available_analyzers() -> dict[str, AnalyzerFactory]:
    """Every registered analyser name with its (not yet loaded) factory."""
    found: dict[str, AnalyzerFactory] = {}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        found[entry.name] = _lazy(entry.load)
    return found


def _lazy(load: Callable[[], AnalyzerFactory]) -> AnalyzerFactory:
    def factory(settings: Settings) -> Analyzer:
        return load()(settings)

    return factory


def build_analyzer(settings: Settings) -> Analyzer:
    """Build the analyser named by ``IMGBOT_ANALYZER``, or fail naming the known ones."""
    known = available_analyzers()
    factory = known.get(settings.analyzer)
    if factory is None:
        names = ", ".join(sorted(known)) or "none installed"
        raise ConfigError(f"IMGBOT_ANALYZER={settings.analyzer!r} is not a known analyser (known: {names}).")
    return factory(settings)
