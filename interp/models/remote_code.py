"""Custom model code in a checkpoint: find it before loading, refuse it unless trusted, say what runs.

A checkpoint whose ``config.json`` has an ``auto_map`` ships Python files that transformers would
import (``trust_remote_code=True``). Worse, when the config's ``model_type`` is a known one (ArmoRM's
is ``llama``), transformers *without* the flag silently loads the standard class and drops the
custom head. So the suite reads ``auto_map`` itself first:

- without ``--trust-remote-code`` such a checkpoint is refused with one line naming the flag;
- with it, ``RemoteCode.describe()`` names every file that will run, its sha256 and the revision,
  and the loader reports that line before anything is imported; provenance records the same.

A Hub id's ``config.json`` and code files are fetched (at the revision) with ``huggingface_hub``;
a local folder is read as it is.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from interp.errors import UserError

AUTO_CLASSES = {
    "rm": ("AutoModelForSequenceClassification", "AutoConfig", "AutoTokenizer"),
    "lm": ("AutoModelForCausalLM", "AutoConfig", "AutoTokenizer"),
}


@dataclass(frozen=True)
class RemoteCode:
    """The custom code a load would run: ``files`` as ``(name, sha256)`` and the revision."""

    source: str
    revision: str | None
    classes: tuple[str, ...]
    files: tuple[tuple[str, str], ...]

    def describe(self) -> str:
        rev = self.revision or ("local folder" if Path(self.source).is_dir() else "main")
        listed = ", ".join(f"{name} (sha256 {digest[:12]})" for name, digest in self.files)
        return f"--trust-remote-code: running {listed} from {self.source} at revision {rev}"

    def record(self) -> dict:
        return {
            "revision": self.revision,
            "classes": list(self.classes),
            "files": [{"file": n, "sha256": d} for n, d in self.files],
        }


def _read_file(source: str, name: str, revision: str | None) -> Path | None:
    folder = Path(source)
    if folder.is_dir():
        path = folder / name
        return path if path.is_file() else None
    try:
        from huggingface_hub import hf_hub_download

        return Path(hf_hub_download(source, name, revision=revision))
    except Exception:  # offline, gated or missing: transformers will report it when loading
        return None


def _module_files(class_refs: list[str]) -> list[str]:
    """``"modeling_x.Cls"`` or ``"repo--modeling_x.Cls"`` -> ``modeling_x.py`` (deduplicated)."""
    out = []
    for ref in class_refs:
        if isinstance(ref, list | tuple):  # AutoTokenizer maps to [slow, fast]
            out += _module_files([r for r in ref if r])
            continue
        module = ref.split("--")[-1].rsplit(".", 1)[0]
        out.append(module.replace(".", "/") + ".py")
    return list(dict.fromkeys(out))


def find_remote_code(source: str, kind: str, revision: str | None) -> RemoteCode | None:
    """The custom code ``source`` would run when loaded as ``kind``, or ``None`` if there is none."""
    config_path = _read_file(source, "config.json", revision)
    if config_path is None:
        return None
    try:
        auto_map = json.loads(config_path.read_text()).get("auto_map") or {}
    except (OSError, ValueError):
        return None
    wanted = [c for c in AUTO_CLASSES[kind] if c in auto_map]
    if not wanted:
        return None
    files: dict[str, str] = {}
    queue = _module_files([auto_map[c] for c in wanted])
    while queue:  # the named modules and the files they import relatively (as transformers does)
        name = queue.pop(0)
        if name in files:
            continue
        path = _read_file(source, name, revision)
        if path is None:
            files[name] = "not-downloaded"
            continue
        data = path.read_bytes()
        files[name] = hashlib.sha256(data).hexdigest()
        text = data.decode("utf-8", errors="replace")
        queue += [f"{m}.py" for m in re.findall(r"^\s*from\s+\.(\w+)\s+import", text, re.M)]
    return RemoteCode(source, revision, tuple(wanted), tuple(files.items()))


def check_remote_code(
    name: str, source: str, kind: str, revision: str | None, trusted: bool
) -> RemoteCode | None:
    """Refuse custom code unless ``trusted`` (one line naming the flag); else describe it."""
    code = find_remote_code(source, kind, revision)
    if code is not None and not trusted:
        files = ", ".join(n for n, _ in code.files)
        raise UserError(
            f"{name} needs its own model code ({files}); pass --trust-remote-code to run it "
            "(only for checkpoints you trust)"
        )
    return code
