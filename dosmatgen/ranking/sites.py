"""Which sites of a candidate are conditioned on the target DOS.

DOSMatGen conditions one site (or a few) of each generated crystal on the target site DOS. After generation and
relaxation that information is either known by index (the sampler's ``--sites``) or by element (the element of
the target's reference site, e.g. Ni for ``target-Au3Ni``). :class:`SiteSelection` covers both, plus "every
site" for targets without a reference element. A candidate with no matching site cannot be scored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dosmatgen.crystal import Crystal
from dosmatgen.elements import symbol
from dosmatgen.errors import InvalidRecordError

REDUCTIONS = ("min", "mean")


@dataclass(frozen=True)
class SiteSelection:
    """Exactly one of ``indices`` (site indices, 0-based), ``element`` (a symbol) or ``all_sites``.

    ``reduce`` turns the per-site distances into the candidate's distance: ``min`` (the best-matching selected
    site, the default) or ``mean`` (all selected sites must match).
    """

    indices: tuple[int, ...] | None = None
    element: str | None = None
    all_sites: bool = False
    reduce: str = "min"

    def __post_init__(self) -> None:
        given = sum([self.indices is not None, self.element is not None, bool(self.all_sites)])
        if given != 1:
            raise InvalidRecordError("choose the conditioned sites with exactly one of: site indices, an element, or all sites")
        if self.indices is not None:
            if not self.indices or any(int(i) < 0 for i in self.indices):
                raise InvalidRecordError(f"site indices must be non-negative integers, got {list(self.indices)}")
            object.__setattr__(self, "indices", tuple(int(i) for i in self.indices))
        if self.element is not None:
            from pymatgen.core import Element

            try:
                Element(self.element)
            except ValueError:
                raise InvalidRecordError(f"unknown element {self.element!r}") from None
        if self.reduce not in REDUCTIONS:
            raise InvalidRecordError(f"site reduction must be one of {REDUCTIONS}, got {self.reduce!r}")

    @classmethod
    def for_target(cls, target: Any, *, indices=None, element: str | None = None, all_sites: bool = False,
                   reduce: str = "min") -> "SiteSelection":  # fmt: skip
        """The explicit choice when one is given, else the element of the target's reference site.

        Raises InvalidRecordError when nothing is given and the target has no reference structure (a DOS file).
        """
        if indices is not None or element is not None or all_sites:
            return cls(tuple(indices) if indices is not None else None, element, all_sites, reduce)
        ref = getattr(target, "reference", None)
        sites = getattr(target, "reference_sites", ())
        if ref is None or not sites:
            raise InvalidRecordError(
                f"target {getattr(target, 'name', '?')!r} has no reference site: say which candidate sites are conditioned "
                "(--sites I,J, --element SYMBOL or --all-sites)"
            )
        return cls(element=ref.symbols[int(sites[0])], reduce=reduce)

    def sites_of(self, crystal: Crystal) -> list[int]:
        """Selected site indices of ``crystal`` (may be empty: no such element, or indices beyond its atoms)."""
        if self.all_sites:
            return list(range(crystal.num_atoms))
        if self.element is not None:
            return [i for i, s in enumerate(crystal.symbols) if s == self.element]
        return [i for i in self.indices if i < crystal.num_atoms]  # type: ignore[union-attr]

    def missing_reason(self, crystal: Crystal) -> str:
        """Flag text for a crystal with no selected site."""
        if self.element is not None:
            return f"no {self.element} site"
        return f"site(s) {','.join(map(str, self.indices or ()))} beyond {crystal.num_atoms} atoms"

    def describe(self) -> str:
        if self.all_sites:
            what = "all sites"
        elif self.element is not None:
            what = f"{self.element} sites"
        else:
            what = f"sites {','.join(map(str, self.indices or ()))}"
        return f"{what} ({self.reduce} over sites)"


def site_labels(crystal: Crystal, sites: list[int]) -> str:
    """``"0:Ni;3:Ni"``: index and element of each site."""
    return ";".join(f"{i}:{symbol(int(crystal.atomic_numbers[i]))}" for i in sites)
