"""Reader for the Materials Project through mp-api (optional extra ``mp``; imported only when a client is made).

For each material id the reader calls ``client.get_dos_by_material_id(id, load_projections=True)`` and converts the
returned pymatgen ``CompleteDos`` with :func:`record_from_complete_dos` (so the output equals reading that
CompleteDos directly). ``energy`` is None (the DOS endpoint carries no total energy).

The paper's structure filters (:class:`MPFilters`: at most 20 atoms, no Tc or Pm, Z <= 83) are applied to the
DOS's structure; a material outside them is yielded as an InvalidRecordError ("excluded by filter: ..."), so a
builder counts it as skipped. :func:`search_material_ids` asks MP's summary endpoint for ids that pass the
same filters and have a DOS.

The API key comes from the ``MP_API_KEY`` environment variable (or ``api_key=``). It is never logged or
written, and it is masked in any error message. Tests inject ``client=`` (any object with
``get_dos_by_material_id``), so they need neither the network nor mp-api.
"""

from __future__ import annotations

import contextlib
import inspect
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from dosmatgen.crystal import Crystal
from dosmatgen.data.sources._common import RecordOrError, attempt
from dosmatgen.data.sources.completedos import record_from_complete_dos
from dosmatgen.dos.record import DOSRecord
from dosmatgen.elements import symbol
from dosmatgen.errors import DosmatgenError, InvalidRecordError

READER_NAME = "materials-project"
API_KEY_ENV = "MP_API_KEY"


@dataclass(frozen=True)
class MPFilters:
    """Structure filters of the DOSMatGen paper: ``max_atoms`` sites, ``excluded_elements``, Z <= ``max_z``."""

    max_atoms: int = 20
    excluded_elements: tuple[str, ...] = ("Tc", "Pm")
    max_z: int = 83

    def problem(self, crystal: Crystal) -> str | None:
        """Why ``crystal`` fails the filters, or None when it passes."""
        if crystal.num_atoms > self.max_atoms:
            return f"excluded by filter: {crystal.num_atoms} atoms > {self.max_atoms}"
        syms = set(crystal.symbols)
        banned = sorted(syms & set(self.excluded_elements))
        if banned:
            return f"excluded by filter: contains {', '.join(banned)}"
        heavy = sorted({symbol(z) for z in crystal.atomic_numbers if z > self.max_z})
        if heavy:
            return f"excluded by filter: elements with Z > {self.max_z} ({', '.join(heavy)})"
        return None

    def excluded_symbols(self, z_limit: int = 118) -> list[str]:
        """Every element symbol the filters exclude (for MP's ``exclude_elements`` query)."""
        from pymatgen.core.periodic_table import Element

        heavy = [Element.from_Z(z).symbol for z in range(self.max_z + 1, z_limit + 1)]
        return sorted(set(self.excluded_elements) | set(heavy))


PAPER_FILTERS = MPFilters()


def _mask(text: str, secret: str | None) -> str:
    return text.replace(secret, "***") if secret else text


@contextlib.contextmanager
def mp_client(client: Any = None, api_key: str | None = None) -> Iterator[tuple[Any, str | None]]:
    """Yield ``(client, secret)``: the given client, or an ``MPRester`` made with the key from ``MP_API_KEY``."""
    if client is not None:
        yield client, api_key
        return
    key = api_key or os.environ.get(API_KEY_ENV)
    if not key:
        raise DosmatgenError(
            f"the Materials Project reader needs an API key: set the {API_KEY_ENV} environment variable "
            "(get a key at https://next-gen.materialsproject.org/api)"
        )
    try:
        from mp_api.client import MPRester
    except ImportError:
        raise DosmatgenError("mp-api is not installed: pip install 'dosmatgen[mp]'") from None
    try:
        rester = MPRester(key, mute_progress_bars=True)
    except Exception as exc:  # mp-api validates the key here; never echo it
        raise DosmatgenError(f"could not start the Materials Project client: {_mask(str(exc), key)}") from None
    with rester:
        yield rester, key


def _as_ids(material_ids: str | Path | Iterable[str]) -> list[str]:
    """Ids from one id (``"mp-149"``), comma-separated ids, a text file (one per line, ``#`` comments) or an iterable."""
    if isinstance(material_ids, Path) or (isinstance(material_ids, str) and Path(material_ids).is_file()):
        lines = Path(material_ids).read_text(encoding="utf-8").splitlines()
        return [ln.split("#", 1)[0].strip() for ln in lines if ln.split("#", 1)[0].strip()]
    if isinstance(material_ids, str):
        return [m.strip() for m in material_ids.split(",") if m.strip()]
    return [str(m).strip() for m in material_ids]


def _fetch_dos(client: Any, material_id: str) -> Any:
    fetch = client.get_dos_by_material_id
    try:
        takes_projections = "load_projections" in inspect.signature(fetch).parameters
    except (TypeError, ValueError):
        takes_projections = False
    return fetch(material_id, load_projections=True) if takes_projections else fetch(material_id)


def read_materials_project(
    material_ids: str | Path | Iterable[str],
    *,
    client: Any = None,
    api_key: str | None = None,
    filters: MPFilters | None = PAPER_FILTERS,
    source: str = READER_NAME,
    validate: bool = True,
    check_geometry: bool = True,
) -> Iterator[RecordOrError]:
    """Yield a DOSRecord (or located InvalidRecordError) per Materials Project id.

    ``material_ids``: an id, comma-separated ids, a text file of ids or an iterable of ids. ``client``: an
    object with ``get_dos_by_material_id`` (default: an ``MPRester`` with the key from ``MP_API_KEY``).
    ``filters=None`` turns the paper's filters off. Errors name the file ``materials-project`` and the id.
    """
    from pymatgen.electronic_structure.dos import CompleteDos

    ids = _as_ids(material_ids)
    if not ids:
        raise InvalidRecordError("no Materials Project ids given", file=str(material_ids))
    where = "materials-project"
    with mp_client(client, api_key) as (mpr, secret):
        for mid in ids:
            try:
                cdos = _fetch_dos(mpr, mid)
            except Exception as exc:  # network/API errors of one id: report it, go on with the others
                yield InvalidRecordError(f"request failed: {type(exc).__name__}: {_mask(str(exc), secret)}", file=where, record=mid)
                continue

            def build(cdos: Any = cdos, mid: str = mid) -> DOSRecord:
                if cdos is None:
                    raise InvalidRecordError("the Materials Project has no DOS for this material")
                if not isinstance(cdos, CompleteDos) or not cdos.pdos:
                    raise InvalidRecordError("the Materials Project returned a DOS without site projections")
                record = record_from_complete_dos(cdos, mid, source, metadata={"reader": READER_NAME})
                if filters is not None:
                    problem = filters.problem(record.crystal)
                    if problem:
                        raise InvalidRecordError(problem)
                return record

            yield attempt(build, file=where, record=mid, context="cannot read the MP DOS", validate=validate, check_geometry=check_geometry)


def search_material_ids(
    *,
    client: Any = None,
    api_key: str | None = None,
    filters: MPFilters = PAPER_FILTERS,
    chemsys: str | list[str] | None = None,
    **criteria: Any,
) -> list[str]:
    """Material ids from MP's summary search with a DOS and within ``filters`` (extra ``criteria`` pass through)."""
    with mp_client(client, api_key) as (mpr, secret):
        try:
            docs = mpr.materials.summary.search(
                num_sites=(1, filters.max_atoms),
                exclude_elements=filters.excluded_symbols(),
                has_props=["dos"],
                chemsys=chemsys,
                fields=["material_id"],
                **criteria,
            )
        except Exception as exc:
            raise DosmatgenError(f"Materials Project search failed: {type(exc).__name__}: {_mask(str(exc), secret)}") from None
    out = []
    for doc in docs:
        mid = doc["material_id"] if isinstance(doc, dict) else doc.material_id
        out.append(str(mid))
    return out
