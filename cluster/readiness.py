"""Wait until the allocation's nodes and GPUs have joined the cluster, instead of sleeping a fixed time.

The batch script starts the Ray head and the Ray workers (and the Dask workers) in the background; nodes join
at their own pace. The driver calls :func:`wait_for_ray` before it sizes its actor pool, so a late node cannot
silently leave the run with fewer actors, and a node that never joins gives a clear error naming what was
expected and what was found. Dask's counterpart is :func:`dosmatgen_cluster.dask_relax.wait_for_workers`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class RayCapacity:
    nodes: int
    gpus: int
    cpus: int

    def __str__(self) -> str:
        return f"{self.nodes} node(s), {self.gpus} GPU(s), {self.cpus} CPU(s)"


def expected_count(value: Any, name: str) -> int | None:
    """An expected count from the config: None/"" means no expectation; anything else must be a positive int."""
    if value is None or value == "":
        return None
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive integer, got {value!r} (an unset environment variable in the "
                         "config?)") from None
    if n < 1:
        raise ValueError(f"{name} must be a positive integer, got {n}")
    return n


def ray_capacity() -> RayCapacity:
    """Alive nodes and the GPUs/CPUs they declare, as the GCS sees them now."""
    import ray

    alive = [n for n in ray.nodes() if n.get("Alive")]
    gpus = sum(int(n.get("Resources", {}).get("GPU", 0)) for n in alive)
    cpus = sum(int(n.get("Resources", {}).get("CPU", 0)) for n in alive)
    return RayCapacity(len(alive), gpus, cpus)


def wait_for_ray(expected_nodes: int | None = None, expected_gpus: int | None = None, *, timeout_s: float = 600.0,
                 poll_s: float = 1.0, probe: Callable[[], RayCapacity] = ray_capacity) -> RayCapacity:
    """Poll until at least ``expected_nodes`` nodes and ``expected_gpus`` GPUs are alive; TimeoutError naming the
    expected and found counts after ``timeout_s``. With no expectation it returns the current capacity at once."""
    deadline = time.monotonic() + float(timeout_s)
    while True:
        cap = probe()
        if (expected_nodes is None or cap.nodes >= expected_nodes) and (expected_gpus is None or cap.gpus >= expected_gpus):
            return cap
        if time.monotonic() >= deadline:
            want = ", ".join(s for s in (f"{expected_nodes} node(s)" if expected_nodes is not None else "",
                                         f"{expected_gpus} GPU(s)" if expected_gpus is not None else "") if s)
            raise TimeoutError(f"Ray cluster not ready after {timeout_s:.0f} s: expected {want}, found {cap}. "
                               "Check the Ray worker steps' log (ray-workers.log) for nodes that failed to join.")
        time.sleep(poll_s)


def main(argv: list[str] | None = None) -> int:
    """``python -m dosmatgen_cluster.readiness --nodes N --gpus G [--timeout S]``: join the Ray cluster at RAY_ADDRESS and
    wait until N nodes and G GPUs are alive (exit 1 with the expected and found counts otherwise)."""
    import argparse
    import os
    import sys

    import ray

    p = argparse.ArgumentParser(prog="python -m dosmatgen_cluster.readiness")
    p.add_argument("--nodes", default=None)
    p.add_argument("--gpus", default=None)
    p.add_argument("--timeout", type=float, default=600.0)
    p.add_argument("--address", default=os.environ.get("RAY_ADDRESS"))
    args = p.parse_args(argv)
    if not args.address:
        p.error("no Ray address: pass --address or set RAY_ADDRESS")
    ray.init(address=args.address, log_to_driver=False)
    try:
        cap = wait_for_ray(expected_count(args.nodes, "--nodes"), expected_count(args.gpus, "--gpus"), timeout_s=args.timeout)
    except TimeoutError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        ray.shutdown()
    print(f"Ray cluster ready: {cap}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
