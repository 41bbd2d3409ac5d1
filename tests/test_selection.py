"""The selection language (lmscale.selection) on a small hand-made run table."""

import numpy as np
import pytest

from lmscale.errors import InputError
from lmscale.run_table import RunTable
from lmscale.selection import PRESETS, FitSpec, Selection, load_spec, preset


def _runs():
    rows = []
    for i, (n, m, ds) in enumerate(
        [(1e7, 20, "rpj"), (1e7, 320, "rpj"), (8e7, 20, "c4"), (4e8, 20, "rpj"), (1.4e9, 20, "c4")]
    ):
        rows.append(
            {
                "run_id": f"r{i}",
                "dataset": ds,
                "model": f"m{i}",
                "n_params": n,
                "n_tokens": n * m,
                "loss_x": 3.0,
            }
        )
    return RunTable.from_records(rows)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("n_params <= 5e8", [0, 1, 2, 3]),
        ("n_params < 1e7", []),
        ("n_params > 1e7 and multiplier == 20", [2, 3, 4]),
        ("multiplier != 20", [1]),
        ("multiplier = 320", [1]),  # a single = means ==
        ("dataset == c4", [2, 4]),
        ("dataset == 'c4'", [2, 4]),
        ("model in [m0, m4]", [0, 4]),
        ("n_params in [1e7, 1.4e9]", [0, 1, 4]),
        ("n_params >= 4e8 && dataset == rpj", [3]),
    ],
)
def test_conditions_select_the_right_runs(text, expected):
    assert np.flatnonzero(Selection.parse(text).mask(_runs())).tolist() == expected


def test_numeric_equality_is_relative():
    runs = _runs()
    assert Selection.parse("multiplier == 19.99999999").mask(runs).sum() == 4
    assert Selection.parse("multiplier == 19.99").mask(runs).sum() == 0


def test_several_texts_are_ored_and_or_operator_joins():
    runs = _runs()
    a = Selection.parse(["n_params <= 1e7 and multiplier == 320", "n_params >= 1e9"])
    assert np.flatnonzero(a.mask(runs)).tolist() == [1, 4]
    b = Selection.parse("n_params <= 1e7 and multiplier == 320") | Selection.parse("n_params >= 1e9")
    assert b.mask(runs).tolist() == a.mask(runs).tolist()
    assert Selection().mask(runs).sum() == 0 and Selection.all().mask(runs).all()


def test_json_round_trip_and_text_form():
    s = Selection.parse(["n_params <= 5e8 and multiplier == 20", "model in [m1, m2]"])
    again = Selection.from_json(s.to_json())
    assert again.mask(_runs()).tolist() == s.mask(_runs()).tolist()
    assert str(s) == "(n_params <= 5e8 and multiplier == 20) or (model in [m1, m2])"


@pytest.mark.parametrize(
    "text, needle",
    [
        ("n_params ~ 5", "cannot parse"),
        ("n_params", "cannot parse"),
        ("model in m1, m2", "bracketed list"),
        ("seed == 3", "unknown field 'seed'"),
        ("n_params == big", "numeric"),
        ("dataset < rpj", "needs a numeric field"),
        ("x" * 10_001, "at most"),
    ],
)
def test_bad_selections_say_what_is_wrong(text, needle):
    with pytest.raises(InputError, match=needle):
        Selection.parse(text).mask(_runs())


def test_fit_specs_load_by_name_or_file_and_take_overrides(tmp_path):
    for name in PRESETS:
        assert load_spec(name) == preset(name)
    path = tmp_path / "spec.json"
    path.write_text(__import__("json").dumps(preset("paper-no-1b").to_json()))
    assert load_spec(path) == preset("paper-no-1b")
    with pytest.raises(InputError, match="not a preset"):
        load_spec("nope")
    spec = preset("paper-default").with_selections(heldout="n_params >= 4e8")
    assert spec.name == "paper-default (modified)" and spec.loss_fit == preset("paper-default").loss_fit
    assert np.flatnonzero(spec.heldout.mask(_runs())).tolist() == [3, 4]
    assert preset("paper-default").with_selections() == preset("paper-default")
    assert isinstance(FitSpec.from_json(spec.to_json()), FitSpec)
