"""reference.run's op hook and the steered comparison the full-size zoo tests rely on (steering.py)."""

from __future__ import annotations

import pytest
import torch

import onebit
from onebit.export import export, read_model, reference
from onebit.export.reference import apply_op
from steering import BINARIZERS, engine_decisions, prefix, steered_run, torch_decisions
from toy_models import build


@pytest.fixture(scope="module", params=["reactnet", "si_bnn"])
def toy(request):
    model, x = build(request.param)
    blob = export(model, x)
    return model, x, read_model(blob)


def test_hook_sees_every_op_in_order_and_none_keeps_the_output(toy):
    _, x, mf = toy
    seen = []
    out = reference.run(mf, x, hook=lambda op, xs, y: seen.append((op["outputs"][0], len(xs), y.shape)))
    assert [s[0] for s in seen] == [op["outputs"][0] for op in mf.graph["ops"]]
    assert torch.equal(out, reference.run(mf, x))


def test_hook_replacement_is_what_later_ops_read(toy):
    _, x, mf = toy
    first = next(op for op in mf.graph["ops"] if op["op"] in BINARIZERS)
    flipped = reference.run(mf, x, hook=lambda op, xs, y: ~y if op is first else None)
    assert not torch.equal(flipped, reference.run(mf, x))


def test_steering_along_the_same_decisions_changes_nothing(toy):
    model, x, mf = toy
    want = reference.run(mf, x)
    for decide in (torch_decisions(model, x), engine_decisions(mf, x)):
        z, changed = steered_run(mf, x, decide)
        assert changed == 0
        assert torch.allclose(z, want, rtol=1e-5, atol=1e-6)


def test_a_decision_that_is_no_tie_fails_with_the_op_named(toy):
    model, x, mf = toy
    first = next(op for op in mf.graph["ops"] if op["op"] in BINARIZERS)
    torch_bits = torch_decisions(model, x)

    def wrong(op, xs):
        bits = torch_bits(op, xs)
        if op is first:  # the element farthest from its threshold decides the other way
            bits = bits.clone()
            flat = bits.view(-1)
            flat[xs[0].abs().argmax()] ^= True
        return bits

    with pytest.raises(AssertionError, match=f"{first['op']} '{first['name']}': 1 of 1 differing bits"):
        steered_run(mf, x, wrong)


def test_a_near_tie_is_taken_over_and_counted(toy):
    _, x, mf = toy
    first = next(op for op in mf.graph["ops"] if op["op"] in BINARIZERS)

    def flip_first(op, xs):  # the reference's own bits, but every bit of the first binarizer flipped
        own = apply_op(mf, op, xs)
        return ~own if op is first else own

    with pytest.raises(AssertionError, match="no near-tie"):
        steered_run(mf, x, flip_first)
    z, changed = steered_run(mf, x, flip_first, rel=float("inf"))  # a tolerance that makes every bit a tie
    assert changed == reference.run(prefix(mf, first["inputs"][0]), x).numel()
    assert torch.equal(z, reference.run(mf, x, hook=lambda op, xs, y: ~y if op is first else None))


def test_prefix_ends_at_the_value_and_runs_in_the_engine(toy):
    _, x, mf = toy
    op = next(op for op in mf.graph["ops"] if op["op"] in BINARIZERS)
    cut = prefix(mf, op["inputs"][0])
    assert cut.graph["outputs"] == [op["inputs"][0]] and op not in cut.graph["ops"]
    assert torch.allclose(onebit.Engine(cut)(x), reference.run(cut, x), rtol=1e-5, atol=1e-6)
