"""The feature statistics of ``sessrec prepare``: mean and deviation of values whose squares overflow."""

import numpy as np
import polars as pl
import pytest

from sessrec.datasets.features import mean_std, standardize
from tests.datasets.helpers import prepare


@pytest.mark.parametrize("huge", [1e160, 1e200, 1e308, -1e308])
def test_mean_std_of_values_whose_squares_overflow(huge):
    """One value of 1e160 made the deviation inf (every standardised value 0), two of 1e308 the mean inf (every one
    -inf): the statistics are those of the values scaled down, then up (QA helper-63)."""
    values = np.array([huge, huge / 2] + [10.0 + k % 7 for k in range(4000)])
    mean, std = mean_std(pl.LazyFrame({"x": values}), pl.col("x"))
    scaled = values / abs(huge)
    assert mean == pytest.approx(scaled.mean() * abs(huge), rel=1e-12)
    assert std == pytest.approx(scaled.std(ddof=1) * abs(huge), rel=1e-12)
    z = pl.select(standardize(pl.lit(pl.Series(values)), mean, std)).to_series().to_numpy()
    want = (scaled - scaled.mean()) / scaled.std(ddof=1)
    assert np.isfinite(z).all()  # the ordinary values are one float32 next to such a deviation, as in any scaling
    np.testing.assert_allclose(z, want, rtol=1e-5, atol=1e-6)


def test_mean_std_of_ordinary_values_is_polars_own():
    """Below 2^500 nothing changes: the statistics (and so the prepared files: tests/datasets/test_golden.py) are
    polars' mean and std."""
    lf = pl.LazyFrame({"x": np.random.default_rng(0).lognormal(3, 2, 10_000)})
    want = lf.select(pl.col("x").mean(), pl.col("x").std().alias("s")).collect().row(0)
    assert mean_std(lf, pl.col("x")) == want


@pytest.mark.parametrize("value", [0.2, 0.1, 1e9 + 0.1, -3.7, 1e20, 1.7e12 + 0.3])
def test_a_constant_is_standardised_to_zero_not_to_rounding_noise(value):
    """Summed in streaming chunks, 5,000 times 0.2 has a deviation of 6e-18, not 0: dividing by it made the rounding
    residues of a constant column values of +-4."""
    lf = pl.LazyFrame({"x": [value] * 5000})
    with pl.Config(engine_affinity="streaming"):
        mean, std = mean_std(lf, pl.col("x"))
    assert mean == pytest.approx(value, rel=1e-15) and std == 0.0
    z = pl.select(standardize(pl.lit(pl.Series([value] * 5000)), mean, std)).to_series().to_numpy()
    assert (z == 0).all()  # not x - mean: 16384 for 1e20 (QA helper-68)
    assert pl.select(standardize(pl.lit(pl.Series([value, None])), mean, 0.0)).to_series().to_list() == [0.0, None]


def test_a_huge_continuous_value_is_standardised_not_zeroed(tmp_path, capsys):
    rows = [(f"s{k // 3}", f"i{k % 11}", 1_710_288_000 + 60 * k, 1e160 if k == 5 else 10.0 + k % 4) for k in range(900)]
    path = tmp_path / "log.csv"
    pl.DataFrame(rows, orient="row", schema=["session", "item", "ts", "price"]).write_csv(path)
    rc, _, err = prepare(["events", "--input", str(path), "--session-col", "session", "--item-col", "item", "--time-col",
                          "ts", "--continuous-cols", "price", "--output", str(tmp_path / "o")], capsys)
    assert rc == 0, err
    z = pl.concat([pl.read_parquet(p) for p in (tmp_path / "o").glob("*/train.parquet")])["price_norm"].explode()
    assert z.is_finite().all() and z.max() > 20 and z.min() < 0  # was 0 everywhere
