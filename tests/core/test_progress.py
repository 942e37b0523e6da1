"""core.progress.within: a step's fraction mapped onto its span of a longer job's bar."""
from __future__ import annotations

from core.progress import within


def test_a_step_maps_onto_its_span_and_ends_exactly_where_the_next_begins():
    reports = []
    record = lambda fraction, message: reports.append((fraction, message))
    bounds = [0.0, 0.1, 0.1 + 1e-12, 0.3, 1.0]  # tiny and uneven shares, where start + share x 1.0 overshot
    for start, end in zip(bounds[:-1], bounds[1:]):
        step = within(record, start, end, f"step at {start}: ")
        for fraction in (-0.5, 0.0, 0.5, 1.0, 1.5):
            step(fraction, "working")
    fractions = [fraction for fraction, _ in reports]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert reports[2] == (0.05, "step at 0.0: working")
    assert reports[3][0] == 0.1 == reports[6][0]  # the end of one step is the start of the next
