"""The threads policy: intra-op threads and where `embed` decodes by default."""

import pytest

from reslab.inference import threads
from reslab.inference.threads import decode_workers


@pytest.mark.parametrize("cores, workers", [(1, 0), (2, 0), (3, 1), (4, 1), (8, 2), (16, 4), (32, 8), (128, 8)])
def test_decode_workers_follow_the_core_count_as_documented(cores, workers):
    # docs/inference.md, Threads: in this process up to 2 cores, else one worker per 4 cores, at most 8
    assert decode_workers(cores) == workers


def test_decode_workers_default_counts_this_machines_physical_cores(monkeypatch):
    monkeypatch.setattr(threads, "physical_cores", lambda: 12)
    assert decode_workers() == 3


def test_embed_options_without_workers_take_the_policy(monkeypatch):
    from reslab.search.embed import EmbedOptions, resolved_workers

    monkeypatch.setattr(threads, "physical_cores", lambda: 2)
    assert resolved_workers(EmbedOptions()) == 0
    monkeypatch.setattr(threads, "physical_cores", lambda: 16)
    assert resolved_workers(EmbedOptions()) == 4
    assert resolved_workers(EmbedOptions(workers=3)) == 3 and resolved_workers(EmbedOptions(workers=0)) == 0


def test_reslab_threads_sets_the_intra_op_threads(monkeypatch):
    monkeypatch.setenv("RESLAB_THREADS", "3")
    assert threads.intra_op_threads() == 3
    monkeypatch.setenv("RESLAB_THREADS", "zero")
    assert threads.intra_op_threads() == threads.physical_cores()
