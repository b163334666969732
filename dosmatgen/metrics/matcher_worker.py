"""Worker process of :class:`~dosmatgen.metrics.timed_matcher.TimedStructureMatcher` (``python -m`` this module).

Protocol on stdin/stdout: messages are an 8-byte big-endian length followed by a pickle. The parent sends the
StructureMatcher keyword arguments first; the worker answers ``"ready"``. Each request is a pair of
``(atomic_numbers, frac_coords, lattice)`` tuples; the answer is ``(outcome, rms, message)`` with outcome
"match", "no_match" or "error". ``None`` ends the worker. Anything the matcher prints goes to stderr so it
cannot corrupt the protocol.
"""

from __future__ import annotations

import os
import pickle
import struct
import sys
from typing import Any, BinaryIO

HEADER = struct.Struct(">Q")


def write_message(stream: BinaryIO, obj: Any) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(HEADER.pack(len(data)) + data)
    stream.flush()


def read_exact(stream: BinaryIO, n: int) -> bytes:
    chunks, left = [], n
    while left:
        chunk = stream.read(left)
        if not chunk:
            raise EOFError("matcher pipe closed")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_message(stream: BinaryIO) -> Any:
    (length,) = HEADER.unpack(read_exact(stream, HEADER.size))
    return pickle.loads(read_exact(stream, length))


def compare_arrays(matcher, a: tuple, b: tuple) -> tuple[str, float | None, str]:
    """StructureMatcher.get_rms_dist on two (Z, frac, lattice) tuples -> (outcome, rms, message)."""
    from pymatgen.core import Lattice, Structure

    try:
        sa = Structure(Lattice(a[2]), [int(z) for z in a[0]], a[1])
        sb = Structure(Lattice(b[2]), [int(z) for z in b[0]], b[1])
        rms = matcher.get_rms_dist(sa, sb)
    except Exception as err:  # noqa: BLE001 - any pymatgen failure is one "error" outcome, reported with its text
        return "error", None, f"{type(err).__name__}: {err}"
    if rms is None:
        return "no_match", None, ""
    return "match", float(rms[0]), ""


def main() -> None:  # pragma: no cover - runs in the child process (exercised through TimedStructureMatcher)
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # stray prints go to stderr
    inp = sys.stdin.buffer
    from pymatgen.analysis.structure_matcher import StructureMatcher

    matcher = StructureMatcher(**read_message(inp))
    write_message(out, "ready")
    while True:
        try:
            msg = read_message(inp)
        except EOFError:
            return
        if msg is None:
            return
        write_message(out, compare_arrays(matcher, *msg))


if __name__ == "__main__":
    main()
