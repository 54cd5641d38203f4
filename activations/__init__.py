"""The HDF5 activation store: what is cached (items, positions), how (manifest, resumable writes)
and how it is read back (``store``, ``inspect``)."""
