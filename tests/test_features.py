import logging
import math

import pytest
import torch

from sessrec.config import ExperimentConfig
from sessrec.data.loader import split_last_item
from sessrec.errors import SessrecError
from sessrec.experiment import run_experiment
from sessrec.features import FeatureEmbedding, InputProjection, SoftOneHotEmbedding, side_embedding_dim
from sessrec.model import SessionModel
from sessrec.schema import CATEGORICAL, CONTINUOUS, ITEM_ID, TIME, FeatureSpec, Schema
from sessrec.tasks import mlm_mask
from tests.conftest import tiny_config

SCHEMA = Schema([
    FeatureSpec("item", "int", (ITEM_ID, CATEGORICAL), 1, 999),  # cardinality 1000
    FeatureSpec("cat", "int", (CATEGORICAL,), 1, 15),  # cardinality 16 -> dim ceil(16 ** 0.25 * 2.0) = 4
    FeatureSpec("price", "float", (CONTINUOUS,)),
    FeatureSpec("ts", "float", (TIME,)),
])


def cfg(**kw) -> ExperimentConfig:
    values = {"d_model": 8, "n_layer": 1, "n_head": 2, "dropout": 0.0, "use_side_information_features": True}
    values.update(kw)
    return ExperimentConfig.from_dict(values).validate()


def make_batch(b: int = 3, length: int = 5) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    items = torch.randint(1, 1000, (b, length), generator=g)
    items[0, 3:] = 0
    pad = items == 0
    cat = torch.randint(1, 16, (b, length), generator=g).masked_fill(pad, 0)
    price = torch.randn(b, length, generator=g).masked_fill(pad, 0.0)
    return {"item": items, "cat": cat, "price": price, "ts": torch.zeros(b, length)}


def set_(param: torch.Tensor, values) -> None:
    with torch.no_grad():
        param.copy_(torch.tensor(values, dtype=param.dtype).view_as(param))


def test_side_embedding_dim_formula():
    assert side_embedding_dim(16, 2.0) == 4  # 16 ** 0.25 = 2 exactly: nothing to round up
    assert side_embedding_dim(121, 2.0) == 7  # 6.63
    assert side_embedding_dim(150, 8.0) == 28  # 27.997
    assert side_embedding_dim(10000, 3.0) == 30


def test_tables_dims_init_and_padding():
    torch.manual_seed(0)
    fe = FeatureEmbedding(SCHEMA, cfg(d_model=32, item_id_embeddings_init_std=0.2, other_embeddings_init_std=0.05))
    cat = fe.encoders[0][0]
    assert fe.item_table.weight.shape == (1000, 32) and cat.weight.shape == (16, 4)
    assert fe.output_dim == 32 + 4 + 1
    assert fe.input_names == ["item", "cat", "price"]  # time-tagged features are never inputs
    assert not fe.item_table.weight[0].any() and not cat.weight[0].any()  # 0 = padding = zero vector
    assert abs(fe.item_table.weight[1:].std().item() - 0.2) < 0.005  # 31,968 draws
    assert abs(cat.weight[1:].std().item() - 0.05) < 0.015  # 60 draws
    assert FeatureEmbedding(SCHEMA, cfg(item_embedding_dim=12)).item_table.weight.shape == (1000, 12)
    only_item = FeatureEmbedding(SCHEMA, cfg(use_side_information_features=False))
    assert only_item.input_names == ["item"] and only_item.output_dim == 8


def test_concat_item_categorical_and_raw_scalar():
    fe = FeatureEmbedding(SCHEMA, cfg()).eval()
    b = make_batch()
    out = fe(b)
    assert out.shape == (3, 5, 8 + 4 + 1)
    i, c = b["item"][1, 2], b["cat"][1, 2]
    assert torch.equal(out[1, 2, :8], fe.item_table.weight[i])
    assert torch.equal(out[1, 2, 8:12], fe.encoders[0][0].weight[c])
    assert out[1, 2, 12] == b["price"][1, 2]


def test_continuous_linear_projection():
    fe = FeatureEmbedding(SCHEMA, cfg(numeric_features_project_to_embedding_dim=3)).eval()
    linear = fe.encoders[1][0]
    set_(linear.weight, [1.0, 2.0, 3.0])
    set_(linear.bias, [0.0, 0.0, 1.0])
    b = make_batch()
    b["price"][2, 1] = 2.0
    out = fe(b)
    assert fe.output_dim == 8 + 4 + 3
    assert out[2, 1, 12:].tolist() == [2.0, 4.0, 7.0]  # w * x + b


def test_soft_one_hot_encoding():
    fe = FeatureEmbedding(SCHEMA, cfg(numeric_features_project_to_embedding_dim=2,
                                      numeric_features_soft_one_hot_encoding_num_embeddings=2)).eval()
    soft = fe.encoders[1][0]
    assert isinstance(soft, SoftOneHotEmbedding) and fe.output_dim == 8 + 4 + 2
    set_(soft.logits.weight, [1.0, -1.0])
    set_(soft.logits.bias, [0.0, 0.0])
    set_(soft.embeddings, [[3.0, 0.0], [0.0, 3.0]])
    # logits (+ln2/2, -ln2/2) -> softmax (2/3, 1/3) -> 2/3 * (3, 0) + 1/3 * (0, 3) = (2, 1)
    b = make_batch()
    b["price"][2, 1] = math.log(2.0) / 2
    out = fe(b)[2, 1, 12:]
    assert torch.allclose(out, torch.tensor([2.0, 1.0]), atol=1e-6)


def test_elementwise_sum_multiply_item_embedding():
    # the original's name of the option and the released library's alias give the same thing
    c = cfg(d_model=4, item_embedding_dim=2, input_features_aggregation="element-wise-sum-item-multi")
    assert c.input_features_aggregation == "elementwise_sum_multiply_item_embedding"
    fe = FeatureEmbedding(SCHEMA, c).eval()
    assert fe.output_dim == 2
    b = make_batch()
    b["price"][2, 1] = 2.0
    set_(fe.item_table.weight[b["item"][2, 1]], [1.0, 2.0])
    cat_to_item_dim = fe.encoders[0][0][1]  # categorical table at its own size, then Linear to the item dim
    assert cat_to_item_dim.in_features == 4 and cat_to_item_dim.out_features == 2
    set_(cat_to_item_dim.weight, [0.0] * 8)
    set_(cat_to_item_dim.bias, [0.5, 1.0])
    price_to_item_dim = fe.encoders[1][0]  # a raw scalar is brought to the item dim by a Linear
    set_(price_to_item_dim.weight, [1.0, 0.0])
    set_(price_to_item_dim.bias, [0.0, 0.0])
    # item * (1 + cat + price) = (1, 2) * (1 + (0.5, 1) + (2, 0)) = (3.5, 4)
    assert fe(b)[2, 1].tolist() == [3.5, 4.0]


def test_elementwise_soft_one_hot_is_projected_to_the_item_dim():
    fe = FeatureEmbedding(SCHEMA, cfg(d_model=4, item_embedding_dim=6, input_features_aggregation="elementwise_sum_multiply_item_embedding",
                                      numeric_features_project_to_embedding_dim=3, numeric_features_soft_one_hot_encoding_num_embeddings=5))
    soft, linear = fe.encoders[1][0]
    assert soft.embeddings.shape == (5, 3) and (linear.in_features, linear.out_features) == (3, 6)
    assert fe(make_batch()).shape == (3, 5, 6)


def test_layer_norm_featurewise_follows_the_original(caplog):
    with caplog.at_level(logging.WARNING):
        fe = FeatureEmbedding(SCHEMA, cfg(layer_norm_featurewise=True)).eval()
    assert "carry no information" in caplog.text and "price" in caplog.text
    b = make_batch()
    out = fe(b)

    def normalised(e):  # LayerNorm at init (weight 1, bias 0)
        return (e - e.mean(-1, keepdim=True)) / torch.sqrt(e.var(-1, unbiased=False, keepdim=True) + 1e-5)

    assert torch.allclose(out[..., :8], normalised(fe.item_table(b["item"])), atol=1e-5)  # each feature on its own
    assert torch.allclose(out[..., 8:12], normalised(fe.encoders[0][0](b["cat"])), atol=1e-5)
    b["price"] = b["price"] * 10 + 3
    assert torch.equal(fe(b)[..., 12], out[..., 12])  # a normalised scalar is its LayerNorm bias: a constant
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        FeatureEmbedding(SCHEMA, cfg(layer_norm_featurewise=True, numeric_features_project_to_embedding_dim=3))
    assert "carry no information" not in caplog.text


def test_input_projection_applies_dropout_then_layer_norm():
    proj = InputProjection(8, cfg(inp_merge="identity", layer_norm_all_features=True, input_dropout=0.5)).train()
    y = proj(torch.randn(4, 5, 8) + 3.0)
    # LayerNorm after dropout: every row is normalised even though dropout zeroed some inputs
    assert torch.allclose(y.mean(-1), torch.zeros(4, 5), atol=1e-5)
    mlp = InputProjection(13, cfg(tf_out_activation="tanh")).eval()
    x = torch.randn(2, 3, 13)
    assert torch.allclose(mlp(x), torch.tanh(mlp.proj[0](x)))


def test_compat_t4r_library_input_side(caplog):
    """compat t4r-23.12: ReLU input projection whatever tf_out_activation says; raw scalars skip the featurewise LayerNorm."""
    with caplog.at_level(logging.WARNING):
        fe = FeatureEmbedding(SCHEMA, cfg(layer_norm_featurewise=True, compat="t4r-23.12")).eval()
    assert "carry no information" not in caplog.text
    b = make_batch()
    assert torch.equal(fe(b)[..., 12], b["price"])  # the raw value, not a LayerNorm constant
    mlp = InputProjection(13, cfg(tf_out_activation="tanh", compat="t4r-23.12")).eval()
    x = torch.randn(2, 3, 13)
    assert torch.equal(mlp(x), torch.relu(mlp.proj[0](x)))


def test_sse_swaps_real_values_within_the_batch_during_training_only():
    torch.manual_seed(0)
    fe = FeatureEmbedding(SCHEMA, cfg(stochastic_shared_embeddings_replacement_prob=0.3)).train()
    values = torch.arange(1, 401).view(20, 20)  # distinct values: every swap is visible
    values[:, 15:] = 0
    before = values.clone()
    out = fe.swap_noise(values)
    assert torch.equal(values, before)  # inputs are not modified in place (labels come from them)
    real = values != 0
    assert torch.equal(out[~real], values[~real])  # padding is never swapped, nor swapped in
    assert set(out[real].tolist()) <= set(values[real].tolist())
    swapped = out != values
    assert 0.21 < swapped[real].float().mean().item() < 0.39  # p = 0.3 over 300 values (3 sd)
    assert out[swapped].unique().numel() == int(swapped.sum())  # drawn without replacement
    assert torch.equal(fe.eval().swap_noise(values), values)  # never at evaluation


def test_sse_is_seeded_by_the_global_seed():
    def swaps(seed: int) -> torch.Tensor:
        torch.manual_seed(seed)
        fe = FeatureEmbedding(SCHEMA, cfg(stochastic_shared_embeddings_replacement_prob=0.5)).train()
        return fe.swap_noise(torch.arange(1, 101).view(10, 10))

    assert torch.equal(swaps(0), swaps(0))
    assert not torch.equal(swaps(0), swaps(1))


@pytest.mark.parametrize("aggregation", ["concat", "elementwise_sum_multiply_item_embedding"])
def test_side_features_of_masked_targets_do_not_leak(aggregation):
    torch.manual_seed(0)
    c = cfg(task="mlm", input_features_aggregation=aggregation, numeric_features_project_to_embedding_dim=4)
    model = SessionModel(SCHEMA, c).eval()
    b = make_batch(6, 8)
    masked = mlm_mask(b["item"], c.mlm_probability, torch.Generator().manual_seed(3))

    def loss(x):
        return model.loss(x, torch.Generator().manual_seed(3))

    def change_side_features(where):
        return {**b, "cat": torch.where(where, b["cat"] % 15 + 1, b["cat"]), "price": torch.where(where, b["price"] + 5, b["price"])}

    with torch.no_grad():
        assert torch.equal(loss(b), loss(change_side_features(masked)))  # the [MASK] vector replaces the whole interaction
        assert not torch.equal(loss(b), loss(change_side_features(~masked & (b["item"] != 0))))  # the test can fail
        # evaluation: the features of the predicted interaction are not part of the input either
        last = (b["item"] != 0).sum(1) - 1
        at_last = torch.zeros_like(masked)
        at_last[torch.arange(6), last] = True
        prefix, _ = split_last_item(b, "item")
        prefix2, _ = split_last_item(change_side_features(at_last), "item")
        assert torch.equal(model.next_item_scores(prefix), model.next_item_scores(prefix2))


def test_clm_never_sees_the_side_features_of_the_next_interaction():
    torch.manual_seed(0)
    model = SessionModel(SCHEMA, cfg(model_type="xlnet", task="clm", numeric_features_project_to_embedding_dim=4)).eval()
    b = make_batch(4, 8)
    b["item"][0, 3:] = 1  # full-length sessions
    later = {**b, "cat": b["cat"].clone(), "price": b["price"].clone()}
    later["cat"][:, 5:] = 3
    later["price"][:, 5:] = 9.0
    mask = torch.ones(4, 8, dtype=torch.bool)
    with torch.no_grad():
        h1 = model.encode(model.embed(b), mask, causal=True)
        h2 = model.encode(model.embed(later), mask, causal=True)
    assert torch.allclose(h1[:, :5], h2[:, :5], atol=1e-6)  # positions 0..4 predict items 1..5
    assert not torch.allclose(h1[:, 5:], h2[:, 5:])


@pytest.mark.parametrize("values,match", [
    ({"numeric_features_soft_one_hot_encoding_num_embeddings": 5}, "needs numeric_features_project_to_embedding_dim"),
    ({"numeric_features_project_to_embedding_dim": -1}, "numeric_features_project_to_embedding_dim must be >= 0"),
    ({"embedding_dim_from_cardinality_multiplier": 0.0}, "embedding_dim_from_cardinality_multiplier must be > 0"),
    ({"item_embedding_dim": 0}, "item_embedding_dim must be >= 1"),
    ({"other_embeddings_init_std": -0.1}, "other_embeddings_init_std must be >= 0"),
])
def test_invalid_feature_options(values, match):
    with pytest.raises(SessrecError, match=match):
        ExperimentConfig.from_dict(values).validate()


PAPER_VARIANTS = {
    "concat": {"layer_norm_featurewise": True},
    "concat+sohe": {"layer_norm_featurewise": True, "input_dropout": 0.1, "numeric_features_project_to_embedding_dim": 8,
                    "numeric_features_soft_one_hot_encoding_num_embeddings": 5},
    "elementwise": {"layer_norm_featurewise": True, "input_dropout": 0.1,
                    "input_features_aggregation": "elementwise_sum_multiply_item_embedding",
                    "stochastic_shared_embeddings_replacement_prob": 0.1},
}


@pytest.mark.parametrize("variant", list(PAPER_VARIANTS))
def test_paper_side_information_variants_run_on_the_sample_data(tiny_data, tmp_path, variant):
    def run(out):
        c = tiny_config(tiny_data, out, use_side_information_features=True, **PAPER_VARIANTS[variant])
        return run_experiment(c, printer=lambda *_: None)

    res = run(tmp_path / "a")
    assert 0.0 <= res.metric("ndcg_at_20") <= 1.0
    if variant == "elementwise":  # with SSE: the same seed gives the same metrics
        metrics = {k: v for k, v in res.aot.items() if "/next-item/" in k}
        again = run(tmp_path / "b").aot
        assert {k: again[k] for k in metrics} == metrics


def test_side_information_without_side_features_is_said(caplog):
    """A schema (or the paper's YAML) with the item id alone: the flag cannot act."""
    item_only = SCHEMA.select([SCHEMA.item_id.name])
    with caplog.at_level(logging.WARNING):
        FeatureEmbedding(item_only, cfg(use_side_information_features=True))
    assert "use_side_information_features has no effect: the schema has no categorical or continuous" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        FeatureEmbedding(SCHEMA, cfg(use_side_information_features=True))
    assert "use_side_information_features" not in caplog.text


def test_numeric_projection_without_effect_under_elementwise_aggregation_is_warned(caplog):
    """With elementwise aggregation and no soft one-hot the continuous features go straight to the item size (QA
    helper-41: accepted without a word)."""
    with caplog.at_level(logging.WARNING):
        FeatureEmbedding(SCHEMA, cfg(input_features_aggregation="elementwise_sum_multiply_item_embedding",
                                     numeric_features_project_to_embedding_dim=3,
                                     numeric_features_soft_one_hot_encoding_num_embeddings=4))
    assert "no effect" not in caplog.text
    with caplog.at_level(logging.WARNING):
        FeatureEmbedding(SCHEMA, cfg(input_features_aggregation="elementwise_sum_multiply_item_embedding",
                                     numeric_features_project_to_embedding_dim=3))
    assert "numeric_features_project_to_embedding_dim has no effect with input_features_aggregation " \
           "elementwise_sum_multiply_item_embedding" in caplog.text
