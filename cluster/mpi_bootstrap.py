"""Rank discovery and head election when launched by ``srun`` or ``mpirun``.

* :func:`discover` returns (rank, size, local_rank) from mpi4py's COMM_WORLD when it has more than one rank,
  else from Slurm (``SLURM_PROCID``, ``SLURM_NTASKS``, ``SLURM_LOCALID``), else from Open MPI's environment
  (``OMPI_COMM_WORLD_RANK``, ...), else a single process.
* :func:`elect_head` makes rank 0 the head: it picks its address (``DOSMATGEN_HEAD_IP``, else the address its
  hostname resolves to) and a port, and broadcasts ``host:port`` to every rank (mpi4py ``bcast``). Without
  MPI it falls back to the first host of ``SLURM_JOB_NODELIST`` (via ``scontrol show hostnames``).
  Ray's head (``ray start --head``), a Dask scheduler or a ``torch.distributed`` rendezvous use it.

CLI: ``python -m dosmatgen_cluster.mpi_bootstrap [--port 6379] [--out DIR]`` prints (or writes) one JSON record per rank.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class RankInfo:
    rank: int
    size: int
    local_rank: int
    source: str  # "mpi", "slurm", "ompi-env" or "single"
    hostname: str


def _mpi_comm():
    try:
        from mpi4py import MPI
    except ImportError:
        return None
    return MPI.COMM_WORLD


def discover(use_mpi: bool = True) -> RankInfo:
    host = socket.gethostname()
    comm = _mpi_comm() if use_mpi else None
    if comm is not None and comm.Get_size() > 1:
        local = comm.Split_type(_split_shared()).Get_rank() if _split_shared() is not None else int(os.environ.get("OMPI_COMM_WORLD_LOCAL_RANK", 0))
        return RankInfo(comm.Get_rank(), comm.Get_size(), local, "mpi", host)
    env = os.environ
    if "SLURM_PROCID" in env and "SLURM_NTASKS" in env:
        return RankInfo(int(env["SLURM_PROCID"]), int(env["SLURM_NTASKS"]), int(env.get("SLURM_LOCALID", 0)), "slurm", host)
    if "OMPI_COMM_WORLD_RANK" in env:
        return RankInfo(int(env["OMPI_COMM_WORLD_RANK"]), int(env["OMPI_COMM_WORLD_SIZE"]),
                        int(env.get("OMPI_COMM_WORLD_LOCAL_RANK", 0)), "ompi-env", host)
    return RankInfo(0, 1, 0, "single", host)


def _split_shared():
    try:
        from mpi4py import MPI

        return MPI.COMM_TYPE_SHARED
    except (ImportError, AttributeError):
        return None


def head_address() -> str:
    """This host's address for the head: ``DOSMATGEN_HEAD_IP`` or the address the hostname resolves to."""
    if os.environ.get("DOSMATGEN_HEAD_IP"):
        return os.environ["DOSMATGEN_HEAD_IP"]
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return "127.0.0.1"


def _first_slurm_host() -> str | None:
    nodelist = os.environ.get("SLURM_JOB_NODELIST")
    if not nodelist:
        return None
    try:
        out = subprocess.run(["scontrol", "show", "hostnames", nodelist], capture_output=True, text=True, timeout=30, check=True)
        return out.stdout.split()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return nodelist.split(",")[0]


def elect_head(port: int = 6379, use_mpi: bool = True) -> tuple[RankInfo, str]:
    """(this rank's info, "host:port" of the head) — identical on every rank."""
    info = discover(use_mpi)
    comm = _mpi_comm() if use_mpi else None
    if info.source == "mpi" and comm is not None:
        address = f"{head_address()}:{port}" if info.rank == 0 else None
        address = comm.bcast(address, root=0)
        return info, address
    if info.size == 1:
        return info, f"{head_address()}:{port}"
    host = _first_slurm_host()
    if host is None:
        raise RuntimeError("several ranks but neither MPI nor SLURM_JOB_NODELIST: cannot agree on a head")
    return info, f"{host}:{port}"


def gather_counts(value: int, use_mpi: bool = True) -> list[int] | None:
    """Gather one integer per rank on rank 0 (None elsewhere); [value] without MPI."""
    comm = _mpi_comm() if use_mpi else None
    if comm is None or comm.Get_size() == 1:
        return [value]
    return comm.gather(int(value), root=0)


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m dosmatgen_cluster.mpi_bootstrap")
    p.add_argument("--port", type=int, default=6379)
    p.add_argument("--no-mpi", action="store_true")
    p.add_argument("--out", default=None, help="write rank<k>.json into this folder instead of printing")
    args = p.parse_args(argv)
    info, address = elect_head(args.port, use_mpi=not args.no_mpi)
    counts = gather_counts(info.rank + 1, use_mpi=not args.no_mpi)
    line = json.dumps({**asdict(info), "head": address, "gathered": counts})
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, f"rank{info.rank}.json"), "w") as fh:
            fh.write(line)
    else:
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
