"""Per-run TLS credentials for the Dask scheduler, its workers and the driver (mutual TLS).

Dask runs pickled code, so a scheduler reachable from the machine network must refuse anyone who is not part of
the run. :func:`make_credentials` writes a fresh self-signed certificate and its private key into a folder of the
run (``<folder>/ca.pem``, ``cert.pem``, ``key.pem``, each mode 0600, the folder mode 0700). The same certificate
is the trust anchor (CA) and the identity of every role, so only processes that can read the run's key file
(the user who owns the run) can connect: the scheduler demands a client certificate signed by that key.

* :func:`security` gives the ``distributed.security.Security`` for the driver (and for in-process clusters);
* :func:`cli_args` gives the ``--tls-ca-file/--tls-cert/--tls-key`` options of ``dask scheduler``/``dask worker``
  (``slurm/screen.sh`` starts the scheduler with ``--protocol tls`` so its scheduler file holds a ``tls://``
  address).

CLI: ``python -m dosmatgen_cluster.tls FOLDER`` creates the files (refuses to overwrite existing ones unless ``--force``).
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from pathlib import Path

CA_FILE, CERT_FILE, KEY_FILE = "ca.pem", "cert.pem", "key.pem"
COMMON_NAME = "dosmatgen-dask"


@dataclass(frozen=True)
class TLSFiles:
    folder: Path

    @property
    def ca(self) -> Path:
        return self.folder / CA_FILE

    @property
    def cert(self) -> Path:
        return self.folder / CERT_FILE

    @property
    def key(self) -> Path:
        return self.folder / KEY_FILE

    def check(self) -> None:
        """FileNotFoundError naming the missing file; PermissionError when a file is readable by others."""
        for p in (self.ca, self.cert, self.key):
            if not p.is_file():
                raise FileNotFoundError(f"TLS file {p} is missing: create the run's credentials with "
                                        f"`python -m dosmatgen_cluster.tls {self.folder}`")
            mode = p.stat().st_mode & 0o077
            if mode:
                raise PermissionError(f"TLS file {p} is accessible by group/others (mode {oct(p.stat().st_mode & 0o777)}); "
                                      "it must be 0600")


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` created with mode 0600 (never readable by others, even for an instant)."""
    tmp = path.with_name(path.name + ".tmp")
    if tmp.exists():
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(tmp, 0o600)  # the umask cannot widen it, but be explicit
    tmp.replace(path)


def make_credentials(folder: str | Path, *, days: int = 30, force: bool = False) -> TLSFiles:
    """Create a fresh key and self-signed certificate in ``folder`` (mode 0700; files 0600)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    files = TLSFiles(Path(folder))
    existing = [p for p in (files.ca, files.cert, files.key) if p.exists()]
    if existing and not force:
        raise FileExistsError(f"TLS credentials already exist in {files.folder} ({existing[0].name}); "
                              "pass force=True (--force) to replace them")
    files.folder.mkdir(parents=True, exist_ok=True)
    os.chmod(files.folder, 0o700)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, COMMON_NAME)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(COMMON_NAME)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    _write_private(files.key, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                serialization.NoEncryption()))
    _write_private(files.cert, pem)
    _write_private(files.ca, pem)
    return files


def security(folder: str | Path):
    """The ``distributed.security.Security`` of every role (client, scheduler, worker), encryption required."""
    from distributed.security import Security

    files = TLSFiles(Path(folder))
    files.check()
    paths = {"ca": str(files.ca), "cert": str(files.cert), "key": str(files.key)}
    return Security(
        require_encryption=True,
        tls_ca_file=paths["ca"],
        tls_client_cert=paths["cert"], tls_client_key=paths["key"],
        tls_scheduler_cert=paths["cert"], tls_scheduler_key=paths["key"],
        tls_worker_cert=paths["cert"], tls_worker_key=paths["key"],
    )


def cli_args(folder: str | Path) -> list[str]:
    """Options for ``dask scheduler`` / ``dask worker`` (the scheduler also needs ``--protocol tls``)."""
    files = TLSFiles(Path(folder))
    files.check()
    return ["--tls-ca-file", str(files.ca), "--tls-cert", str(files.cert), "--tls-key", str(files.key)]


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m dosmatgen_cluster.tls", description="create a run's Dask TLS credentials")
    p.add_argument("folder")
    p.add_argument("--days", type=int, default=30)
    p.add_argument("--force", action="store_true")
    args = p.parse_args(argv)
    files = make_credentials(args.folder, days=args.days, force=args.force)
    print(files.folder)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
