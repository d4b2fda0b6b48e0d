"""Writing a run's frames and log as they come, so that a killed run keeps what it sampled.

:class:`FrameWriter` appends each frame to ``trajectory.dcd`` and its row to ``log.csv`` and
flushes both; :meth:`FrameWriter.reopen` cuts them back to the frames of a checkpoint (a hard kill
may have left frames after it) and appends from there.  The DCD bytes are those mdtraj writes
(``mdtraj.Trajectory.save_dcd``), frame by frame, so a streamed trajectory reads back exactly as
one saved at the end.
"""
from __future__ import annotations

import contextlib
import csv
import os
import struct
import sys
from typing import Iterator, List, Sequence, Tuple, Union

import mdtraj as md
import numpy as np
from mdtraj.formats import DCDTrajectoryFile
from mdtraj.utils import in_units_of

__all__ = ["FrameWriter", "load_frames", "quiet_c_output", "read_log"]

PathLike = Union[str, os.PathLike]
# The DCD header's frame count (NSET) and last step (NSTEP), which every appended frame updates.
_NSET_OFFSET, _NSTEP_OFFSET = 8, 20


@contextlib.contextmanager
def quiet_c_output() -> Iterator[None]:
    """Silence what C libraries print to file descriptors 1 and 2 (mdtraj's DCD plugin chatter).

    Python's own ``sys.stdout``/``sys.stderr`` are flushed first, so nothing of ours is lost.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(fd) for fd in (1, 2)]
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        for fd in (1, 2):
            os.dup2(null, fd)
        yield
    finally:
        for fd, copy in zip((1, 2), saved):
            os.dup2(copy, fd)
            os.close(copy)
        os.close(null)


def _angstrom(xyz_nm: np.ndarray) -> np.ndarray:
    # mdtraj's own conversion (float32 arithmetic), so the bytes match save_dcd's.
    return np.asarray(in_units_of(xyz_nm, "nanometers", "angstroms"), dtype=np.float32)


def _header_size(f) -> int:
    """Bytes before the first frame: the three Fortran records of the header (no unit cells)."""
    f.seek(0)
    size = 0
    for _ in range(3):
        (length,) = struct.unpack("<i", f.read(4))
        size += length + 8
        f.seek(size)
    return size


def read_log(path: PathLike) -> Tuple[List[str], List[list]]:
    """``log.csv``'s columns and rows (step as int, the rest as floats)."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], [[int(row[0])] + [float(v) for v in row[1:]] for row in rows[1:]]


class FrameWriter:
    """Appends frames to a DCD file and rows to a CSV log, flushed after every frame.

    Use :meth:`create` for a new run and :meth:`reopen` to continue one.
    """

    def __init__(self, dcd_path: str, log_path: str, n_atoms: int, n_frames: int) -> None:
        self.dcd_path, self.log_path, self.n_atoms, self.n_frames = dcd_path, log_path, n_atoms, n_frames
        self._dcd = open(dcd_path, "r+b") if n_frames else None
        self._log = open(log_path, "a", newline="")
        self._csv = csv.writer(self._log)

    @classmethod
    def create(cls, dcd_path: str, log_path: str, n_atoms: int, log_columns: Sequence[str]) -> "FrameWriter":
        """Start an empty log (its header) and, with the first frame, the DCD file."""
        with open(log_path, "w", newline="") as f:
            csv.writer(f).writerow(log_columns)
        return cls(dcd_path, log_path, n_atoms, 0)

    @classmethod
    def reopen(cls, dcd_path: str, log_path: str, n_atoms: int, n_frames: int) -> "FrameWriter":
        """Continue files holding at least ``n_frames`` frames and rows; later ones are cut off."""
        columns, rows = read_log(log_path)
        if len(rows) < n_frames:
            raise ValueError(f"{log_path} holds {len(rows)} rows; the checkpoint needs {n_frames}")
        with open(log_path, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(columns)
            writer.writerows(rows[:n_frames])
        if n_frames:
            frame = 3 * (4 * n_atoms + 8)
            with open(dcd_path, "r+b") as f:
                header = _header_size(f)
                if os.path.getsize(dcd_path) < header + n_frames * frame:
                    raise ValueError(f"{dcd_path} holds fewer than the checkpoint's {n_frames} frames")
                f.truncate(header + n_frames * frame)
                cls._set_count(f, n_frames)
        return cls(dcd_path, log_path, n_atoms, n_frames)

    @staticmethod
    def _set_count(f, n_frames: int) -> None:
        for offset in (_NSET_OFFSET, _NSTEP_OFFSET):
            f.seek(offset)
            f.write(struct.pack("<i", n_frames))

    def append(self, xyz_nm: np.ndarray, row: Sequence[float]) -> None:
        """Write one frame (positions in nm, shape (n_atoms, 3)) and its log row."""
        angstrom = _angstrom(xyz_nm)
        if self._dcd is None:
            with quiet_c_output(), DCDTrajectoryFile(self.dcd_path, "w", force_overwrite=True) as f:
                f.write(angstrom[None])
            self._dcd = open(self.dcd_path, "r+b")
        else:
            self._dcd.seek(0, os.SEEK_END)
            marker = struct.pack("<i", 4 * self.n_atoms)
            for axis in range(3):
                self._dcd.write(marker + np.ascontiguousarray(angstrom[:, axis]).astype("<f4").tobytes() + marker)
            self._set_count(self._dcd, self.n_frames + 1)
            self._dcd.flush()
        self.n_frames += 1
        self._csv.writerow(row)
        self._log.flush()

    def sync(self) -> None:
        """Make what was written durable (before a checkpoint names it)."""
        for f in (self._dcd, self._log):
            if f is not None:
                f.flush()
                os.fsync(f.fileno())

    def close(self) -> None:
        """Close both files."""
        for f in (self._dcd, self._log):
            if f is not None:
                f.close()
        self._dcd = None


def load_frames(dcd_path: str, topology_path: str) -> md.Trajectory:
    """A DCD file's frames, without the DCD plugin's messages on the terminal."""
    with quiet_c_output():
        return md.load_dcd(dcd_path, top=topology_path)
