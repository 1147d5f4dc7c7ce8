"""convert: per device profile, pick the recipe and format, export and verify; a failure of one profile
is reported in its row and does not stop the others."""

from __future__ import annotations

from typing import Any

from .errors import EdgepoolError
from .runs import Run


def convert_for_profiles(
    run: Run, profiles: list[Any], *, force: bool = False, progress_console: Any = None, image_input: bool = False
) -> list[tuple[str, Any]]:
    from .export import export

    results: list[tuple[str, Any]] = []
    for i, p in enumerate(profiles, 1):
        if progress_console is not None:
            progress_console.print(f"[dim]({i}/{len(profiles)})[/] {p.name}: {p.runtime} with recipe {p.recipe} ...")
        try:
            res = export(run, p.recipe, profile=p, force=force, strict=False, image_input=image_input)
            results.append((p.name, res))
        except EdgepoolError as e:
            results.append((p.name, f"error: {e.message}"))
    return results
