"""The original YAML feature map (``--feature_config``) read as a schema."""

import pytest

from sessrec.errors import SessrecError
from sessrec.schema import load_schema, parse_feature_yaml
from tests.conftest import DATA

CONFIGS = sorted((DATA / "feature_configs").glob("*/*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_paper_feature_config_reads(path):
    schema = load_schema(path)
    assert schema.item_id.is_categorical and schema.n_items > 50000
    assert all(not f.is_item_id for f in schema.features[1:])


def test_rees46_feature_map():
    s = load_schema(DATA / "feature_configs" / "ecommerce_rees46" / "session_based_features_all.yaml")
    assert s.item_id.name == "sess_pid_seq" and s.n_items == 390000  # YAML cardinality = table size (no +1)
    assert s["sess_bid_seq"].cardinality == 7000 and s["sess_bid_seq"].is_categorical
    assert s["sess_price_log_norm_seq"].is_continuous
    assert s["sess_etime_seq"].is_time  # is_control: loaded, never an input
    inputs = [f.name for f in s.model_features(True)]
    assert len(inputs) == 11 and "sess_etime_seq" not in inputs
    assert [f.name for f in s.model_features(False)] == ["sess_pid_seq"]


def test_types_and_control_features():
    s = parse_feature_yaml("""
item: {dtype: categorical, cardinality: 10, is_label: true, pad_trim_length: 15}
dwell: {dtype: long}
region: {dtype: categorical, cardinality: 4, is_control: true}
""")
    assert s.item_id.value_count_max == 15 and s["dwell"].is_continuous
    assert [f.name for f in s.model_features(True)] == ["item", "dwell"]  # a control feature is no input


@pytest.mark.parametrize("text,message", [
    ("a: {dtype: categorical, cardinality: 5}", "no feature has 'is_label: True'"),
    ("a: {dtype: categorical, cardinality: 5, is_label: true, colour: red}", "unknown key(s) colour"),
    ("a: {dtype: categorical, is_label: true}", "needs an integer cardinality"),
    ("a: {dtype: float, is_label: true}", "must be categorical"),
    ("a: {dtype: string}", "dtype 'string'"),
    ("- a\n- b", "expected a mapping"),
    ("a: [1", "invalid YAML"),
])
def test_bad_feature_maps_are_one_line_errors(text, message):
    with pytest.raises(SessrecError) as e:
        parse_feature_yaml(text, "f.yaml")
    assert message in str(e.value) and str(e.value).startswith("feature config f.yaml")


def test_the_papers_relative_path_points_to_the_bundled_copies(tmp_path):
    missing = tmp_path / "datasets" / "ecommerce_rees46" / "config" / "features" / "session_based_features_itemid.yaml"
    with pytest.raises(SessrecError, match=r"schema file not found: .*session_based_features_itemid.yaml; the paper's "
                                           r"feature YAMLs are in the sessrec repository's tests/data/feature_configs/"):
        load_schema(missing)
    assert (DATA / "feature_configs" / "ecommerce_rees46" / missing.name).is_file()
