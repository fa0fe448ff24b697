"""The grid of a family: the full product, and the two-level half fraction (sweeps.grid_combinations)."""

from aenbench.configcheck import _n_grid, half_fraction_problems
from aenbench.sweeps import family_table, grid_combinations


def test_half_fraction_of_the_2x2x2_block_by_hand():
    fam = {"architecture": "aen", "half_fraction": ["gamma", "beta", "p"],
           "grid": {"l1_coefficient": [0.04, 0.004], "gamma": [0.5, 1.0], "beta": [0.99, 0.999], "p": [0.05, 0.01]}}
    combos = grid_combinations(fam)
    kept = {(c["gamma"], c["beta"], c["p"]) for c in combos}
    # by hand: the codes (first value 0, second 1) summing to an even number
    assert kept == {(0.5, 0.99, 0.05), (0.5, 0.999, 0.01), (1.0, 0.99, 0.01), (1.0, 0.999, 0.05)}
    assert len(combos) == 8 == _n_grid(fam)  # λ₁ crossed in full: 2 × 4
    for axis, values in fam["grid"].items():  # every value of every axis, equally often
        assert sorted(c[axis] for c in combos) == sorted(values * (len(combos) // len(values))), axis
    table = family_table(fam, [0, 1])
    assert len(table) == 16 and list(table.columns) == ["l1_coefficient", "gamma", "beta", "p", "seed"]
    full = grid_combinations({k: v for k, v in fam.items() if k != "half_fraction"})
    assert len(full) == 16 and all(c in full for c in combos)


def test_half_fraction_is_refused_unless_it_lists_two_level_axes():
    grid = {"l1_coefficient": [0.04, 0.02, 0.004], "gamma": [0.5, 1.0], "beta": [0.99, 0.999], "p": [0.05, 0.01]}
    assert half_fraction_problems("families.AEN", {"grid": grid, "half_fraction": ["gamma", "beta", "p"]}) == []
    (msg,) = half_fraction_problems("families.AEN", {"grid": grid, "half_fraction": ["gamma", "beta"]})
    assert "families.AEN.half_fraction" in msg and "three or more" in msg
    (msg,) = half_fraction_problems("families.AEN", {"grid": grid, "half_fraction": ["l1_coefficient", "beta", "p"]})
    assert "grid.l1_coefficient has 3 values" in msg
    (msg,) = half_fraction_problems("families.AEN", {"grid": grid, "half_fraction": ["gamma", "beta", "w_max"]})
    assert "'w_max' is not an axis of families.AEN.grid" in msg
