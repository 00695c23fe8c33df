"""How shards are spread over the live nodes (nodes/ownership.py)."""

from __future__ import annotations

from collections import Counter

import pytest

from tempyral.nodes.ownership import balanced, rendezvous


@pytest.mark.parametrize("nodes", [["a"], ["a", "b"], ["a", "b", "c"], ["n1", "n2", "n3", "n4", "n5"]])
@pytest.mark.parametrize("shards", [1, 4, 8, 16, 512])
def test_every_node_gets_its_share(nodes: list[str], shards: int) -> None:
    plan = balanced(shards, nodes)
    assert len(plan) == shards and set(plan) <= set(nodes)
    load = Counter(plan)
    low, high = shards // len(nodes), -(-shards // len(nodes))
    assert all(low <= load[n] <= high for n in nodes)


def test_the_plan_does_not_depend_on_the_order_nodes_are_listed_in() -> None:
    assert balanced(64, ["a", "b", "c"]) == balanced(64, ["c", "a", "b"])


def test_a_node_leaving_moves_its_own_shards_and_few_others() -> None:
    before = balanced(512, ["a", "b", "c", "d"])
    after = balanced(512, ["a", "b", "d"])
    moved_from_others = sum(1 for x, y in zip(before, after, strict=True) if x != "c" and x != y)
    assert all(y != "c" for y in after)
    assert moved_from_others < 512 // 10  # rebalancing the rest, not reshuffling it


def test_task_queues_go_to_one_live_node_each() -> None:
    nodes = ["a", "b", "c"]
    owners = Counter(rendezvous(f"queue/{i}", nodes) for i in range(3000))
    assert set(owners) == set(nodes) and min(owners.values()) > 800
    assert rendezvous("queue/x", nodes) == rendezvous("queue/x", list(reversed(nodes)))
