"""Matching on hand-made cases: known pairs, optimal ≤ greedy, sparse optimal = dense optimal."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from empathy_study.causal._matching import Edges, cosine_edges, greedy, match, optimal, scalar_edges


def unit(angle_degrees):
    a = np.radians(np.asarray(angle_degrees, dtype=float))
    return np.column_stack([np.cos(a), np.sin(a)])


def test_hand_made_case_where_greedy_is_myopic():
    # Angles: treated t0 = 0°, t1 = 20°; controls c0 = 15°, c1 = 27°; caliper 20.5°.
    # Edges: t1–c0 5°, t1–c1 7°, t0–c0 15° (t0–c1 27° is beyond the caliper).
    # Greedy takes the closest edge t1–c0 and leaves t0 with nothing; optimal pairs t0–c0, t1–c1.
    treated, control = unit([0, 20]), unit([15, 27])
    caliper = 1 - np.cos(np.radians(20.5))
    edges = cosine_edges(treated, control, caliper, k=2)
    g_rows, g_cols, g_dist = greedy(edges)
    o_rows, o_cols, o_dist = optimal(edges, caliper)
    assert list(zip(g_rows, g_cols)) == [(1, 0)]
    assert sorted(zip(o_rows, o_cols)) == [(0, 0), (1, 1)]
    d = lambda degrees: 1 - np.cos(np.radians(degrees))  # noqa: E731
    assert g_dist.sum() + caliper == pytest.approx(d(5) + caliper)
    assert o_dist.sum() == pytest.approx(d(15) + d(7))
    assert o_dist.sum() < g_dist.sum() + caliper


def test_caliper_leaves_far_units_unmatched():
    treated, control = unit([0, 90]), unit([2])
    edges = cosine_edges(treated, control, caliper=0.01, k=5)
    result = match([(np.array([10, 11]), np.array([20]), edges)], caliper=0.01, method="optimal")
    assert result.treated.tolist() == [10] and result.control.tolist() == [20]
    assert result.unmatched.tolist() == [11]
    assert result.objective == pytest.approx(result.distance.sum() + 0.01)


@pytest.mark.parametrize("seed", range(6))
def test_optimal_never_worse_than_greedy_and_sparse_equals_dense(seed):
    rng = np.random.default_rng(seed)
    treated = rng.normal(size=(25, 8))
    control = rng.normal(size=(40, 8))
    treated /= np.linalg.norm(treated, axis=1, keepdims=True)
    control /= np.linalg.norm(control, axis=1, keepdims=True)
    caliper = 0.8
    edges = cosine_edges(treated, control, caliper, k=40)  # full graph
    g = greedy(edges)
    dense = optimal(edges, caliper, dense=True)
    sparse = optimal(edges, caliper, dense=False)
    by_component = optimal(edges, caliper)
    objective = lambda rows, cols, dist: dist.sum() + caliper * (25 - len(rows))  # noqa: E731
    assert objective(*dense) <= objective(*g) + 1e-9
    assert objective(*sparse) == pytest.approx(objective(*dense), abs=1e-6)
    assert objective(*by_component) == pytest.approx(objective(*dense), abs=1e-6)
    # and both agree with a brute-force Hungarian on the caliper-priced cost matrix
    cost = np.full((25, 40 + 25), 1e6)
    d = 1 - treated @ control.T
    cost[:, :40] = np.where(d <= caliper, d, 1e6)
    cost[np.arange(25), 40 + np.arange(25)] = caliper
    r, c = linear_sum_assignment(cost)
    assert cost[r, c].sum() == pytest.approx(objective(*dense), abs=1e-9)


def test_greedy_takes_closest_pairs_first():
    edges = Edges(rows=np.array([0, 0, 1]), cols=np.array([0, 1, 0]), dist=np.array([0.1, 0.2, 0.05]),
                  n_treated=2, n_control=2)
    rows, cols, dist = greedy(edges)
    assert list(zip(rows, cols)) == [(1, 0), (0, 1)]


def test_scalar_edges_nearest_on_a_line():
    edges = scalar_edges(np.array([0.0, 1.0]), np.array([0.1, 0.95, 5.0]), caliper=0.2, k=2)
    assert sorted(zip(edges.rows, edges.cols)) == [(0, 0), (1, 1)]


def test_components_are_solved_independently_and_exactly():
    """Two far-apart clusters: the component split must give the same optimum as one dense solve."""
    rng = np.random.default_rng(7)
    centres = np.array([[1.0, 0, 0], [0, 1.0, 0]])
    points = centres[rng.integers(0, 2, 120)] + 0.2 * rng.normal(size=(120, 3))
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    treated, control = points[:50], points[50:]
    edges = cosine_edges(treated, control, caliper=0.3, k=70)
    dense = optimal(edges, 0.3, dense=True)
    split = optimal(edges, 0.3)
    assert split[2].sum() + 0.3 * (50 - len(split[0])) == pytest.approx(dense[2].sum() + 0.3 * (50 - len(dense[0])))
    assert len(set(split[1])) == len(split[1])  # no control used twice
