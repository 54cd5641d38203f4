"""The audit's one progress display: stage and step labels, counts passed on, time left."""

from __future__ import annotations

from analyses.audit.progress import AuditProgress


class Recorder:
    def __init__(self) -> None:
        self.starts, self.advanced, self.notes = [], 0, []

    def start(self, total, desc):
        self.starts.append((total, desc))

    def advance(self, n=1):
        self.advanced += n

    def close(self):
        pass

    def note(self, message):
        self.notes.append(message)


def test_labels_counts_and_time_left(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr("analyses.audit.progress.time.perf_counter", lambda: clock[0])
    shown = Recorder()
    display = AuditProgress(shown, total_weight=30.0, n_stages=2)
    display.begin(1, "1-rm-preference", 1, 2, "scores", 10.0)
    display.start(5, "scoring")
    display.advance(3)
    assert shown.starts[-1] == (
        5, "[stage 1/2 1-rm-preference · step 1/2 scores] scoring (audit: estimating time left)"
    )  # fmt: skip
    assert shown.advanced == 3
    clock[0] = 20.0  # 10 units of work took 20 s: 2 s per unit
    display.end(executed=True)
    display.begin(2, "6-patching", 1, 1, "sweep", 15.0)
    display.start(90, "patching")
    # 30 - 10 = 20 units remain, 15 of them in this step: 5 units after it = 10 s
    assert shown.starts[-1][1].endswith("(audit: ~10s left after this step)")
    display.note("loading the pair")
    assert shown.notes == ["[stage 2/2 6-patching · step 1/1 sweep] loading the pair"]
    clock[0] = 140.0
    display.end(executed=True)
    display.begin(2, "6-patching", 1, 1, "skipped", 0.0)
    display.end(executed=False)  # a skipped step changes neither the rate nor what remains
    display.begin(2, "7-token-sweep", 1, 1, "sweep", 5.0)
    display.start(1, "tokens")
    assert shown.starts[-1][1].endswith("(audit: ~0s left after this step)")
    assert display.spent == 140.0 and display.executed == 25.0
