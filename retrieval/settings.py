"""Settings of the retrieval core: one dataclass, every field defaulted."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class IndexSettings:
    """What the workspace walk indexes. ``ignore`` adds gitignore-style globs to .gitignore and .engramignore."""

    ignore: list[str] = field(default_factory=list)
    max_file_bytes: int = 1_000_000
    include_secrets: bool = False
    max_files: int = 200_000

    def validate(self) -> list[str]:
        """Problems with the values, as 'field: reason' lines (empty when valid)."""
        problems = []
        if not isinstance(self.ignore, list) or not all(isinstance(g, str) for g in self.ignore):
            problems.append("ignore: must be a list of glob strings")
        if not isinstance(self.max_file_bytes, int) or self.max_file_bytes < 1:
            problems.append("max_file_bytes: must be a positive integer")
        if not isinstance(self.include_secrets, bool):
            problems.append("include_secrets: must be true or false")
        if not isinstance(self.max_files, int) or self.max_files < 1:
            problems.append("max_files: must be a positive integer")
        return problems
