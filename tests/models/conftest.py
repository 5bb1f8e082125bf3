"""Model tests run single-threaded.

Their graphs are small and op-bound; on a machine whose cores are shared with other jobs, a second
intra-op thread makes them several times slower (thread contention), never faster.
"""

import pytest
import torch


@pytest.fixture(scope="module", autouse=True)
def one_intra_op_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
