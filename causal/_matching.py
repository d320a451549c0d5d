"""1:1 matching without replacement, exact on a group label, within a caliper.

Distances live on a sparse graph of candidate edges (each treated unit's k nearest controls
within the caliper), so the same code serves 400 pairs and 144k. Two ways to pick pairs:

- greedy: take edges in order of increasing distance while both ends are free;
- optimal: minimise Σ distance of matched pairs + caliper × (number of unmatched treated units).
  Each treated unit gets a private "unmatched" option priced at the caliper, so a full matching
  always exists. The graph's connected components are independent problems: small ones use the
  dense Hungarian algorithm (`scipy.optimize.linear_sum_assignment`), large ones
  `scipy.sparse.csgraph.min_weight_full_bipartite_matching` on the kNN graph.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.optimize import linear_sum_assignment
from scipy.sparse.csgraph import connected_components, min_weight_full_bipartite_matching

# Zero distances (identical prompts) must survive as explicit sparse entries.
_EPS = 1e-9
DENSE_COMPONENT = 250_000  # cells (treated × (controls + treated)) up to which a component is solved densely


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

    Vectors must be unit length. Works in blocks so memory stays at block × n_control floats;
    only similarities inside the caliper are ranked, which is what keeps 72k × 72k fast.
    """
    threshold = 1.0 - caliper
    k = min(k, len(control))
    rows, cols, dist = [], [], []
    for start in range(0, len(treated), block):
        similarity = treated[start:start + block] @ control.T
        inside = similarity >= threshold
        if np.count_nonzero(inside) > 32 * k * len(similarity):  # past this, sorting costs more than partitioning
            # Crowded: raise each row's bar to its k-th best similarity (a value partition is cheap).
            kth = np.partition(similarity, similarity.shape[1] - k, axis=1)[:, similarity.shape[1] - k]
            inside = similarity >= np.maximum(kth, threshold)[:, None]
        flat = np.flatnonzero(inside.ravel())  # 1-D: several times faster than 2-D nonzero
        r, c = np.divmod(flat, similarity.shape[1])
        s = similarity.ravel()[flat]
        # One float key sorts by row, then most similar first (1 − s < 1); stable keeps column order on ties.
        order = np.argsort(r + 0.5 * (1.0 - s.astype(np.float64)), kind="stable")
        r, c, s = r[order], c[order], s[order]
        keep = (np.arange(len(r)) - np.searchsorted(r, r, side="left")) < k
        r, c, s = r[keep], c[keep], s[keep]
        rows.append(r + start)
        cols.append(c)
        dist.append(np.clip(1.0 - s, 0.0, None))
    return Edges(np.concatenate(rows), np.concatenate(cols), np.concatenate(dist).astype(float),
                 len(treated), len(control))


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


def _assign(rows: np.ndarray, cols: np.ndarray, dist: np.ndarray, n_t: int, n_c: int, caliper: float,
            dense: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Optimal assignment of one connected problem; columns ≥ n_c are the unmatched options."""
    if dense:
        forbidden = caliper * (n_t + 1) + 1.0  # dearer than leaving every unit unmatched
        cost = np.full((n_t, n_c + n_t), forbidden)
        cost[rows, cols] = dist
        cost[np.arange(n_t), n_c + np.arange(n_t)] = caliper
        r, c = linear_sum_assignment(cost)
        d = cost[r, c]
    else:
        own = np.arange(n_t)
        graph = sparse.csr_matrix(
            (np.concatenate([dist + _EPS, np.full(n_t, caliper + _EPS)]),
             (np.concatenate([rows, own]), np.concatenate([cols, n_c + own]))),
            shape=(n_t, n_c + n_t),
        )
        r, c = min_weight_full_bipartite_matching(graph)
        d = np.asarray(graph[r, c]).ravel() - _EPS
    real = c < n_c
    return r[real], c[real], np.clip(d[real], 0.0, None)


def optimal(edges: Edges, caliper: float, dense: bool | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Minimum Σ distance + caliper × unmatched.

    The problem splits exactly into the connected components of the candidate graph; each is
    solved on its own — densely when small, with the sparse solver otherwise. `dense=True/False`
    forces one solver on the whole graph (used to check one against the other).
    """
    n_t, n_c = edges.n_treated, edges.n_control
    if n_t == 0 or len(edges.rows) == 0:
        return np.array([], int), np.array([], int), np.array([])
    if dense is not None:
        return _assign(edges.rows, edges.cols, edges.dist, n_t, n_c, caliper, dense)
    graph = sparse.coo_matrix((np.ones(len(edges.rows)), (edges.rows, n_t + edges.cols)), shape=(n_t + n_c,) * 2)
    _, component = connected_components(graph, directed=False)
    edge_component = component[edges.rows]
    order = np.argsort(edge_component, kind="stable")
    bounds = np.flatnonzero(np.diff(edge_component[order])) + 1
    picked_r, picked_c, picked_d = [], [], []
    for members in np.split(order, bounds):
        rows, cols = edges.rows[members], edges.cols[members]
        t_ids, local_r = np.unique(rows, return_inverse=True)
        c_ids, local_c = np.unique(cols, return_inverse=True)
        small = len(t_ids) * (len(c_ids) + len(t_ids)) <= DENSE_COMPONENT
        r, c, d = _assign(local_r, local_c, edges.dist[members], len(t_ids), len(c_ids), caliper, small)
        picked_r.append(t_ids[r])
        picked_c.append(c_ids[c])
        picked_d.append(d)
    return np.concatenate(picked_r), np.concatenate(picked_c), np.concatenate(picked_d)


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
