import math

from sessrec.baselines.pop import MostPopular
from sessrec.config import ExperimentConfig
from sessrec.data.loader import load_sessions
from sessrec.data.synthetic import write_realistic_windows
from t4r_paper_repro.inference_check import simulated_inference_recall
from tests.conftest import keep_first_click


def test_a_window_of_single_clicks_has_no_recall_to_check(tmp_path):
    schema = write_realistic_windows(tmp_path, sizes=(30, 30), seed=1)
    pop = MostPopular(None, schema)
    pop.fit_window(load_sessions(tmp_path / "0001" / "train.parquet", schema, 20), 1)
    cfg = ExperimentConfig(data_path=str(tmp_path), model_type="pop")
    assert 0.0 <= simulated_inference_recall(pop, cfg, 2) <= 1.0
    keep_first_click(tmp_path / "0002" / "valid.parquet")
    assert math.isnan(simulated_inference_recall(pop, cfg, 2))
