"""Ray token authentication for one run (Ray >= 2.52; token mode is the default for new clusters in 2.60).

Every Ray process (``ray start --head``, ``ray start --address``, the driver's ``ray.init``) must run with
``RAY_AUTH_MODE=token`` and the same token. Ray finds the token in ``RAY_AUTH_TOKEN``, else in the file named by
``RAY_AUTH_TOKEN_PATH``, else in ``~/.ray/auth_token``. Rather than share one token in ``$HOME`` among all of a
user's jobs, :func:`make_token` writes a fresh 256-bit token into the job's folder (mode 0600) and
:func:`token_env` gives the two variables that every ``srun`` step exports (``--export=ALL``), so the token
itself never appears on a command line or in the job's environment.

CLI (used by slurm/common.sh): ``python -m dosmatgen_cluster.ray_auth FILE`` creates FILE and prints the ``export`` lines.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def make_token(path: str | Path) -> Path:
    """Write a new random token (64 hex digits) to ``path``, created with mode 0600; refuses to overwrite."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_hex(32))
    os.chmod(path, 0o600)
    return path


def token_env(path: str | Path) -> dict[str, str]:
    """The environment that makes Ray use the token in ``path`` (checked: exists, non-empty, mode 0600)."""
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        raise FileNotFoundError(f"Ray token file {path} is missing or empty")
    if path.stat().st_mode & 0o077:
        raise PermissionError(f"Ray token file {path} is readable by group/others (mode "
                              f"{oct(path.stat().st_mode & 0o777)}); it must be 0600")
    return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(path.resolve())}


def main(argv: list[str] | None = None) -> int:
    import argparse
    import shlex

    p = argparse.ArgumentParser(prog="python -m dosmatgen_cluster.ray_auth", description="create a per-run Ray auth token file")
    p.add_argument("file")
    args = p.parse_args(argv)
    for k, v in token_env(make_token(args.file)).items():
        print(f"export {k}={shlex.quote(v)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
