"""The parts folder of a sweep: finished units on disk, each vouched for by a done marker.

``<out>.parts/`` beside the final output holds::

    plan.json                 the plan's digest and identity (a different sweep is refused)
    units/<uid>.parquet       one finished unit's rows, written atomically
    units/<uid>.done.json     its done marker (rows, content digest, who computed it), written
                              after the rows, so a marker always vouches for a complete file
    claims/<uid>.claim        the claim of a unit in flight (``interp.locks.Claim``)

A unit without a marker is not done (a killed worker's temp files never carry the final name);
``read`` refuses a unit whose rows or digest differ from its marker. Memory never holds more
than one unit: units are written as they finish and read one at a time at assembly.
"""

from __future__ import annotations

import errno
import json
import shutil
from pathlib import Path

import pandas as pd

from interp import atomic
from interp.errors import UserError
from interp.locks import Claim, in_use
from interp.provenance import FrameDigest, utc_now
from interp.sweeps.plan import SweepPlan, WorkUnit

MANIFEST = "plan.json"


def parts_folder(out: str | Path) -> Path:
    """``<out>.parts`` beside the final output."""
    out = Path(out)
    return out.with_name(out.name + ".parts")


def _frame_bytes(frame: pd.DataFrame) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), sink)
    return sink.getvalue().to_pybytes()


def _differences(old: dict, new: dict) -> list[str]:
    keys = sorted(set(old) | set(new))
    return [
        f"{k} (parts: {old.get(k)!r}, now: {new.get(k)!r})"
        for k in keys
        if old.get(k) != new.get(k)
    ]


class Parts:
    """The parts folder of ``plan`` at ``folder`` (see the module docstring)."""

    def __init__(self, folder: str | Path, plan: SweepPlan) -> None:
        self.folder = Path(folder)
        self.plan = plan

    # ---------------------------------------------------------------- the folder
    def open(self, overwrite: bool = False) -> bool:
        """Create the folder, or check it belongs to this plan; True when it already existed."""
        manifest = self.folder / MANIFEST
        if manifest.exists():
            try:
                old = json.loads(manifest.read_text())
            except ValueError:
                old = {}
            if old.get("digest") == self.plan.digest:
                return True
            if not overwrite:
                diffs = _differences(old.get("identity", {}), self.plan.identity)
                raise UserError(
                    f"{self.folder} holds unfinished units of another sweep (differs in "
                    f"{'; '.join(diffs[:3]) or 'its units'}); rerun that command to finish it, "
                    "or pass --overwrite to discard them"
                )
            self._refuse_if_in_use()
            shutil.rmtree(self.folder)
        (self.folder / "units").mkdir(parents=True, exist_ok=True)
        (self.folder / "claims").mkdir(parents=True, exist_ok=True)
        record = {"digest": self.plan.digest, "identity": self.plan.identity,
                  "n_units": len(self.plan.units), "created_utc": utc_now()}  # fmt: skip
        atomic.atomic_write_text(manifest, json.dumps(record, indent=1, default=str) + "\n")
        return False

    def _refuse_if_in_use(self) -> None:
        """``--overwrite`` never removes units that a live worker is computing."""
        for path in sorted((self.folder / "claims").glob("*.claim")):
            claim = Claim(path)
            if claim.try_acquire():
                claim.release()  # a dead worker's claim: nothing in use
                continue
            raise UserError(
                in_use(self.folder, claim.holder(), "--overwrite never removes units a live "
                       "worker is computing")
            )  # fmt: skip

    @property
    def exists(self) -> bool:
        return (self.folder / MANIFEST).exists()

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    # ---------------------------------------------------------------- units
    def unit_path(self, unit: WorkUnit) -> Path:
        return self.folder / "units" / f"{unit.uid}.parquet"

    def marker_path(self, unit: WorkUnit) -> Path:
        return self.folder / "units" / f"{unit.uid}.done.json"

    def is_done(self, unit: WorkUnit) -> bool:
        return self.marker_path(unit).exists()

    def n_done(self) -> int:
        return sum(self.is_done(u) for u in self.plan.units)

    def claim(self, unit: WorkUnit, lease_s: float) -> Claim:
        if not self.exists:
            raise FileNotFoundError(f"{self.folder} vanished (assembled by another worker?)")
        return Claim(self.folder / "claims" / f"{unit.uid}.claim", lease_s)

    def write(self, unit: WorkUnit, frame: pd.DataFrame, **meta) -> None:
        """Write a finished unit: its rows, then its done marker (both atomic). The marker also
        holds ``meta`` and whatever the frame carries in ``frame.attrs["meta"]``."""
        meta = {**frame.attrs.get("meta", {}), **meta}
        frame = frame.copy(deep=False)
        frame.attrs = {}
        digest = FrameDigest().update(frame)
        marker = {"uid": unit.uid, "rows": digest.rows, "digest": digest.hexdigest(),
                  "finished_utc": utc_now(), **meta}  # fmt: skip
        try:
            atomic.atomic_write_bytes(self.unit_path(unit), _frame_bytes(frame))
            atomic.atomic_write_text(self.marker_path(unit), json.dumps(marker, default=str))
        except OSError as err:
            if err.errno == errno.ENOSPC:
                raise UserError(
                    f"no space left on the device while writing {self.folder}; free some space "
                    "and rerun the same command (finished units are kept)"
                ) from None
            raise

    def marker(self, unit: WorkUnit) -> dict:
        return json.loads(self.marker_path(unit).read_text())

    def read(self, unit: WorkUnit) -> pd.DataFrame:
        """A finished unit's rows, checked against its done marker."""
        marker = self.marker(unit)
        try:
            frame = pd.read_parquet(self.unit_path(unit))
        except Exception as err:  # pyarrow raises several types for a damaged file
            raise UserError(
                f"{self.unit_path(unit)}: damaged unit ({err}); delete it and rerun"
            ) from None
        digest = FrameDigest().update(frame)
        if digest.rows != marker["rows"] or digest.hexdigest() != marker["digest"]:
            raise UserError(
                f"{self.unit_path(unit)}: {digest.rows} rows / digest differ from its done "
                f"marker ({marker['rows']} rows); delete both files and rerun the same command"
            )
        return frame
