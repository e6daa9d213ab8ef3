"""Data order: each index once per epoch, exact resume, and process-count independence."""

import pytest

from seppo.data.loader import BatchOrder, flip_mask, shard
from seppo.errors import DataError


def test_each_epoch_is_a_permutation_with_drop_last():
    order = BatchOrder(num_examples=10, global_batch=3, seed=7)
    epoch0 = [i for _ in range(3) for i in order.next_global_indices()]
    assert order.state_dict()["epoch"] == 1  # 3 batches of 3, the 10th index waits
    epoch1 = [i for _ in range(3) for i in order.next_global_indices()]
    assert len(set(epoch0)) == 9 and len(set(epoch1)) == 9 and epoch0 != epoch1
    full = BatchOrder(num_examples=12, global_batch=4, seed=1)
    assert sorted(i for _ in range(3) for i in full.next_global_indices()) == list(range(12))


def test_same_seed_same_order_other_seed_other_order():
    a, b, c = (BatchOrder(100, 10, s) for s in (1, 1, 2))
    assert a.next_global_indices() == b.next_global_indices() != c.next_global_indices()


def test_state_round_trip_resumes_exactly():
    straight = BatchOrder(20, 4, seed=3)
    expected = [straight.next_global_indices() for _ in range(12)]
    first = BatchOrder(20, 4, seed=3)
    got = [first.next_global_indices() for _ in range(7)]  # stops mid-epoch 1
    resumed = BatchOrder(20, 4, seed=3)
    resumed.load_state_dict(first.state_dict())
    got += [resumed.next_global_indices() for _ in range(5)]
    assert got == expected
    with pytest.raises(DataError, match="num_examples 20"):
        BatchOrder(21, 4, seed=3).load_state_dict(first.state_dict())


def test_two_processes_of_b_see_what_one_process_of_2b_sees():
    order = BatchOrder(50, 8, seed=0)
    for _ in range(10):
        indices = order.next_global_indices()
        assert shard(indices, 0, 2) + shard(indices, 1, 2) == shard(indices, 0, 1) == indices
        assert [i for r in range(4) for i in shard(indices, r, 4)] == indices
        mask = flip_mask(0, 5, indices)
        assert flip_mask(0, 5, shard(indices, 1, 2)) == mask[4:]


def test_flip_mask_is_deterministic_and_fair():
    indices = list(range(2000))
    mask = flip_mask(1, 0, indices)
    assert mask == flip_mask(1, 0, indices) != flip_mask(1, 1, indices)
    assert 900 < sum(mask) < 1100


def test_too_small_data_and_uneven_split():
    with pytest.raises(DataError, match="3 examples, fewer than one global batch of 4"):
        BatchOrder(3, 4, seed=0)
    with pytest.raises(ValueError):
        shard([1, 2, 3], 0, 2)
