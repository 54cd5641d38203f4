"""Sweeps that survive and spread: content-addressed work units, their parts folder, workers, executors.

``plan`` cuts a sweep into units (model identity x prompt x candidate range x settings, each with
a content address); ``parts`` keeps each finished unit on disk (atomic file + done marker) with
the claims of the units in flight; ``workers`` reads who this process is (torchrun/accelerate
ranks, a SLURM array task, or alone); ``local`` runs the claim loop in this process and ``ray_tasks``
submits units as tasks to a Ray cluster. The caller assembles the final output once every unit
is done.
"""
