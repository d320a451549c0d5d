"""1:1 matching without replacement, exact on a group label, within a caliper.

Distances live on a sparse graph of candidate edges (each treated unit's k nearest controls
within the caliper), so the same code serves 400 pairs and 144k. Two ways to pick pairs:

- greedy: take edges in order of increasing distance while both ends are free;
- optimal: minimise Σ distance of matched pairs + caliper × (number of unmatched treated units).
  Each treated unit gets a private "unmatched" option priced at the caliper, so a full matching
  always exists; small problems use the dense Hungarian algorithm
  (`scipy.optimize.linear_sum_assignment`), large ones
  `scipy.sparse.csgraph.min_weight_full_bipartite_matching` on the kNN graph.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.optimize import linear_sum_assignment
from scipy.sparse.csgraph import min_weight_full_bipartite_matching

# Zero distances (identical prompts) must survive as explicit sparse entries.
_EPS = 1e-9
DENSE_LIMIT = 4_000_000  # cells of the dense cost matrix (treated × (controls + treated))


@dataclass
class Matching:
    treated: np.ndarray  # unit indices, one per matched pair
    control: np.ndarray
    distance: np.ndarray
    unmatched: np.ndarray  # treated units with no control within the caliper (or left over)
    caliper: float
    method: str

    @property
    def objective(self) -> float:
        """What optimal matching minimises: matched distances plus the caliper per unmatched unit."""
        return float(self.distance.sum() + self.caliper * len(self.unmatched))


@dataclass
class Edges:
    """Candidate pairs: row = treated position, col = control position, within one exact-match group."""

    rows: np.ndarray
    cols: np.ndarray
    dist: np.ndarray
    n_treated: int
    n_control: int


def cosine_edges(treated: np.ndarray, control: np.ndarray, caliper: float, k: int, block: int = 1024) -> Edges:
    """Each treated unit's k nearest controls by cosine distance, kept when within the caliper.

    Vectors must be unit length. Works in blocks so memory stays at block × n_control floats.
    """
    k = min(k, len(control))
    rows, cols, dist = [], [], []
    for start in range(0, len(treated), block):
        similarity = treated[start:start + block] @ control.T
        if k < len(control):
            nearest = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
        else:
            nearest = np.broadcast_to(np.arange(len(control)), (len(similarity), len(control)))
        d = 1.0 - np.take_along_axis(similarity, nearest, axis=1)
        keep = d <= caliper
        r = np.broadcast_to(np.arange(start, start + len(similarity))[:, None], d.shape)
        rows.append(r[keep])
        cols.append(nearest[keep])
        dist.append(np.clip(d[keep], 0.0, None))
    return Edges(np.concatenate(rows), np.concatenate(cols), np.concatenate(dist), len(treated), len(control))


def scalar_edges(treated: np.ndarray, control: np.ndarray, caliper: float, k: int) -> Edges:
    """Each treated unit's k nearest controls on a scalar score (e.g. the logit propensity)."""
    order = np.argsort(control)
    sorted_control = control[order]
    k = min(k, len(control))
    rows, cols, dist = [], [], []
    positions = np.searchsorted(sorted_control, treated)
    for i, (value, position) in enumerate(zip(treated, positions)):
        window = np.arange(max(0, position - k), min(len(control), position + k))
        d = np.abs(sorted_control[window] - value)
        nearest = np.argsort(d, kind="stable")[:k]
        keep = d[nearest] <= caliper
        rows.append(np.full(keep.sum(), i))
        cols.append(order[window[nearest][keep]])
        dist.append(d[nearest][keep])
    return Edges(np.concatenate(rows), np.concatenate(cols), np.concatenate(dist), len(treated), len(control))


def greedy(edges: Edges) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Closest pairs first, without replacement."""
    order = np.lexsort((edges.cols, edges.rows, edges.dist))  # ties broken by position: deterministic
    used_t = np.zeros(edges.n_treated, dtype=bool)
    used_c = np.zeros(edges.n_control, dtype=bool)
    picked = []
    for e in order:
        r, c = edges.rows[e], edges.cols[e]
        if not used_t[r] and not used_c[c]:
            used_t[r] = used_c[c] = True
            picked.append(e)
    picked = np.array(picked, dtype=int)
    return edges.rows[picked], edges.cols[picked], edges.dist[picked]


def optimal(edges: Edges, caliper: float, dense: bool | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Minimum Σ distance + caliper × unmatched. Dense Hungarian when small, sparse otherwise."""
    n_t, n_c = edges.n_treated, edges.n_control
    if n_t == 0:
        return np.array([], int), np.array([], int), np.array([])
    if dense is None:
        dense = n_t * (n_c + n_t) <= DENSE_LIMIT
    if dense:
        forbidden = caliper * (n_t + 1) + 1.0  # dearer than leaving every unit unmatched
        cost = np.full((n_t, n_c + n_t), forbidden)
        cost[edges.rows, edges.cols] = edges.dist
        cost[np.arange(n_t), n_c + np.arange(n_t)] = caliper
        rows, cols = linear_sum_assignment(cost)
        dist = cost[rows, cols]
    else:
        dummy_rows = np.arange(n_t)
        graph = sparse.csr_matrix(
            (
                np.concatenate([edges.dist + _EPS, np.full(n_t, caliper + _EPS)]),
                (np.concatenate([edges.rows, dummy_rows]), np.concatenate([edges.cols, n_c + dummy_rows])),
            ),
            shape=(n_t, n_c + n_t),
        )
        rows, cols = min_weight_full_bipartite_matching(graph)
        dist = np.asarray(graph[rows, cols]).ravel() - _EPS
    real = cols < n_c
    return rows[real], cols[real], np.clip(dist[real], 0.0, None)


def match(
    edges_by_group: list[tuple[np.ndarray, np.ndarray, Edges]], caliper: float, method: str
) -> Matching:
    """Match within each exact group. `edges_by_group` holds (treated ids, control ids, edges) per group."""
    treated, control, distance, unmatched = [], [], [], []
    for treated_ids, control_ids, edges in edges_by_group:
        rows, cols, dist = greedy(edges) if method == "greedy" else optimal(edges, caliper)
        treated.append(treated_ids[rows])
        control.append(control_ids[cols])
        distance.append(dist)
        left = np.ones(len(treated_ids), dtype=bool)
        left[rows] = False
        unmatched.append(treated_ids[left])
    return Matching(
        treated=np.concatenate(treated).astype(int),
        control=np.concatenate(control).astype(int),
        distance=np.concatenate(distance),
        unmatched=np.concatenate(unmatched).astype(int),
        caliper=caliper,
        method=method,
    )
