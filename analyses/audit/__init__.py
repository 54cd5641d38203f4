"""The audit: one command that answers, for any base/RM pair, which values the RM prefers, how much
of that its base already had, and where inside it is carried (``pipeline`` runs the stages,
``ledger`` makes them resumable, ``findings`` states the answer and the caveats)."""
