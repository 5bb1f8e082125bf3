from ..train.conftest import one_thread  # noqa: F401  (autouse: one intra-op thread per test)
