"""Model wrappers: the offline zoo, loading by name/id/folder, fingerprints, reward heads, readouts.

The public entry points are re-exported here: ``ModelSpec``, ``LoadedModel`` and ``load_model``.
"""

from interp.models.loading import LoadedModel, ModelSpec, load_model, resolve_source

__all__ = ["LoadedModel", "ModelSpec", "load_model", "resolve_source"]
