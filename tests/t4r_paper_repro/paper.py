"""The 65 published command lines, rewritten to run here, and small data sets in each data set's layout.

Only the module name, ``--data_path``, ``--feature_config`` and ``--output_dir`` of a command are
rewritten; tests append overrides (fewer steps, smaller models) at the end, where they win.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from sessrec.data.synthetic import small_cardinalities, write_synthetic_windows
from sessrec.schema import Schema, load_schema
from tests.conftest import DATA

COMMANDS_FILE = DATA / "paper_commands.txt"
FEATURE_CONFIGS = DATA / "feature_configs"
MODULES = {"hf4rec.recsys_main": "t4r_paper_repro.transf_exp_main",
           "hf4rec.baselines.recsys_baselines_main": "t4r_paper_repro.baselines_main"}
# --data_path folder name -> (feature-config folder, schema.pbtxt, the feature config with every column)
DATASETS = {
    "ecommerce": ("ecommerce_rees46", "rees46_schema.pbtxt", "session_based_features_all.yaml"),
    "yoochoose": ("ecom_yoochoose", "yoochoose_schema.pbtxt", "session_based_features_itemid_ts.yaml"),
    "g1_news": ("news_g1", "g1_schema.pbtxt", "session_based_features_all.yaml"),
    "adressa": ("news_adressa", "adressa_schema.pbtxt", "session_based_features_all.yaml"),
}
CAP = 150  # categorical cardinalities of the generated data (the real item tables have up to 390,000 rows)


@dataclass
class PaperCommand:
    title: str
    module: str  # the original module
    argv: list[str]  # the original arguments

    @property
    def is_baseline(self) -> bool:
        return "baselines" in self.module

    def value(self, flag: str) -> str:
        return self.argv[self.argv.index(flag) + 1]

    @property
    def dataset(self) -> str:
        return self.value("--data_path").split("/")[-1]

    @property
    def feature_config(self) -> str:
        return self.value("--feature_config").split("/")[-1]

    def rewritten(self, data_root: Path, configs: Path, output_dir: Path) -> list[str]:
        """The arguments with only the data, feature-config and output paths changed."""
        folder = DATASETS[self.dataset][0]
        new = {"--data_path": str(data_root / self.dataset), "--output_dir": str(output_dir),
               "--feature_config": str(configs / folder / self.feature_config)}
        out = list(self.argv)
        for flag, value in new.items():
            out[out.index(flag) + 1] = value
        return out


def paper_commands() -> list[PaperCommand]:
    from t4r_paper_repro.commands import read_commands

    return [PaperCommand(*c) for c in read_commands(COMMANDS_FILE)]


def small_feature_configs(out: Path) -> Path:
    """Copies of the feature-config fixtures with cardinalities capped at CAP (same folder layout)."""
    for path in FEATURE_CONFIGS.glob("*/*.yaml"):
        spec = yaml.safe_load(path.read_text())
        for feature in spec.values():
            if "cardinality" in feature:
                feature["cardinality"] = min(feature["cardinality"], CAP)
        target = out / path.parent.name / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(yaml.safe_dump(spec, sort_keys=False))
    return out


def dataset_schema(dataset: str, configs: Path) -> Schema:
    """Every column of a data set: its feature config's (which wins) plus the schema.pbtxt's, cardinalities capped."""
    folder, pbtxt, yaml_name = DATASETS[dataset]
    from_yaml = load_schema(configs / folder / yaml_name)
    extra = [f for f in load_schema(DATA / "schemas" / pbtxt).features if f.name not in from_yaml and not f.is_item_id]
    return small_cardinalities(Schema(from_yaml.features + extra, source=dataset), CAP)


def small_schema_pbtxt(dataset: str, out: Path) -> Path:
    """The data set's schema.pbtxt with cardinalities capped, written to ``out``."""
    path = out / DATASETS[dataset][1]
    small_cardinalities(load_schema(DATA / "schemas" / DATASETS[dataset][1]), CAP).save(path)
    return path


def write_datasets(root: Path, configs: Path, n_windows: int = 4, sessions: int = 150) -> Path:
    for seed, dataset in enumerate(DATASETS):
        write_synthetic_windows(root / dataset, dataset_schema(dataset, configs), n_windows, sessions, seed=seed)
    return root


def argv_of(row: str, dataset: str) -> PaperCommand:
    """The command of a results row (the title's last part, any case) for ``dataset`` (a --data_path folder name)."""
    found = [c for c in paper_commands() if c.title.split("|")[-1].strip().lower() == row.lower() and c.dataset == dataset]
    assert len(found) == 1, (row, dataset, [c.title for c in found])
    return found[0]
