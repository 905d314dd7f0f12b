import io
import math

from sessrec.baselines.pop import MostPopular
from sessrec.config import ExperimentConfig
from sessrec.data.loader import load_sessions
from sessrec.data.synthetic import write_realistic_windows
from sessrec.experiment import run_experiment
from t4r_paper_repro.inference_check import run_check, simulated_inference_recall
from tests.conftest import keep_first_click


def test_a_window_of_single_clicks_has_no_recall_to_check(tmp_path):
    schema = write_realistic_windows(tmp_path, sizes=(30, 30), seed=1)
    pop = MostPopular(None, schema)
    pop.fit_window(load_sessions(tmp_path / "0001" / "train.parquet", schema, 20), 1)
    cfg = ExperimentConfig(data_path=str(tmp_path), model_type="pop")
    assert 0.0 <= simulated_inference_recall(pop, cfg, 2) <= 1.0
    keep_first_click(tmp_path / "0002" / "valid.parquet")
    assert math.isnan(simulated_inference_recall(pop, cfg, 2))


def test_an_evaluation_of_every_position_is_not_compared_with_the_last_items(tmp_path):
    """Without --eval_on_last_item_seq_only the evaluation scores every next-item position: its
    recall@10 is another quantity than the check's, and no difference is reported."""
    write_realistic_windows(tmp_path / "data", sizes=(60, 60), seed=2)
    cfg = ExperimentConfig(data_path=str(tmp_path / "data"), model_type="pop", output_dir=str(tmp_path / "run"),
                           eval_on_last_item_seq_only=False, quiet=True)
    result = run_experiment(cfg, printer=lambda *_: None)
    out, err = io.StringIO(), io.StringIO()
    recall = run_check(result, cfg, out, err)
    evaluated = result.windows[-1]["metrics"]["eval_/next-item/recall_at_10"]
    assert recall != evaluated and err.getvalue() == ""
    assert f"(evaluation of every next-item position: {evaluated:.4f})" in out.getvalue()
