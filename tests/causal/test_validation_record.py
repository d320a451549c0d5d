"""A row is validated only for the prompt embedding its bench evidence was estimated with.

The committed bench record mixes embeddings (the true-label rows were replicated with the int8 export,
the gold rows with the fp32 model); a study must not borrow one embedding's coverage for another.
"""

from empathy_study import causal
from empathy_study.causal._validation import UNWEIGHTED_DESIGNS, WEIGHTED_DESIGNS, record, row_status


def evidence(embedding_of: dict[str, str]) -> dict:
    """A record in which `dr · ATE` covered 0.95 on every design, each estimated with its embedding."""
    designs = dict.fromkeys(UNWEIGHTED_DESIGNS + WEIGHTED_DESIGNS, "minilm-torch") | embedding_of
    entry = {d: {"coverage": 0.95, "embedding": e, "reps": 200} for d, e in designs.items()}
    return {"config": causal.CausalConfig().model_dump() | {"embedding": sorted(set(designs.values()))},
            "reps": 200, "rows": {"dr · ATE": entry, "dr · ATE · weighted": entry}}


def test_a_row_is_validated_for_the_embedding_it_was_replicated_with_and_not_another():
    config = causal.CausalConfig().model_dump()
    same = evidence({})
    assert row_status("dr · ATE", False, config | {"embedding": "minilm-torch"}, same)[0] == "validated"
    status, why = row_status("dr · ATE", False, config | {"embedding": "minilm"}, same)
    assert status == "exploratory" and "'minilm'" in why and "minilm-torch" in why


def test_one_design_replicated_with_another_embedding_leaves_the_row_exploratory():
    mixed = evidence({"usershift": "minilm"})
    for embedding in ("minilm", "minilm-torch"):
        status, why = row_status("dr · ATE", False, causal.CausalConfig().model_dump() | {"embedding": embedding},
                                 mixed)
        assert status == "exploratory", (embedding, why)


def test_every_row_of_the_committed_record_says_which_embedding_estimated_it():
    committed = record()
    for label, designs in committed["rows"].items():
        for design, entry in designs.items():
            assert entry.get("embedding") in ("minilm", "minilm-torch", "fast"), (label, design, entry)
    # The record's config lists the embeddings, rather than claiming the current default for all of them.
    assert sorted({e["embedding"] for d in committed["rows"].values() for e in d.values()}) == \
        committed["config"]["embedding"]
