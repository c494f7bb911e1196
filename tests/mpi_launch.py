"""Tests under ``mpiexec``: where mpiexec is, whether mpi4py imports, and the mark that skips a
test without them (an MPI launch needs both)."""

import shutil
import sys
from pathlib import Path

import pytest

MPIEXEC = shutil.which("mpiexec") or shutil.which(str(Path(sys.executable).parent / "mpiexec"))


def have_mpi():
    """True when mpi4py imports and mpiexec was found."""
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return False
    return MPIEXEC is not None


needs_mpi = pytest.mark.skipif(not have_mpi(),
                               reason="needs mpi4py and mpiexec (pip install mpi4py mpich)")
