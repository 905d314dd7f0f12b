"""Side by side with the released Transformers4Rec 23.12 on the same data, settings and CPU threads.

Runs the reference through the shared anchor script (``run_t4r.sh``, which runs the unmodified
paper-repro example) and sessrec through ``python -m t4r_paper_repro.transf_exp_main`` with the
**same command line** the anchor script builds, plus ``--compat t4r-23.12`` so that both train the
same model (the released library ignores ``--tf_out_activation`` and has no output bias or output
projection; ``--compat recsys2021`` runs the paper's code instead), each under ``/usr/bin/time -v`` for its peak RSS,
on the same synthetic REES46-layout data (``make_synth_t4r.py``). Prints, per model and side
information setting: training sessions/s, evaluation sessions/s, peak RSS, NDCG@20 AOT (mean
over seeds) and the ratios.

Without the reference environment (the venv ``run_t4r.sh`` builds) it prints sessrec's figures
and says the comparison was skipped. Nothing is built here beyond calling the shared script.

    python bench/compare_t4r.py                                # xlnet + gpt2, side info on and off, 1 seed
    python bench/compare_t4r.py --models xlnet --side-info 1 --seeds 100 101 102
    T4R_WORK=/path/to/t4r-anchor python bench/compare_t4r.py   # where run_t4r.sh keeps its venv and data

The anchors folder defaults to ``../shared/anchors`` next to the repository (``--anchors``).
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from machine import describe  # bench/machine.py: python puts the script's folder on sys.path

ROOT = Path(__file__).resolve().parent.parent
MASKING = {"xlnet": ["--attn_type", "bi", "--mlm", "--mlm_probability", "0.1"], "gpt2": [], "transfoxl": []}


def example_args(model: str, data: Path, out: Path, a: argparse.Namespace, side: bool, seed: int) -> list[str]:
    """The command line ``run_t4r.sh`` gives the example (the README's REES46 XLNet command at a smaller size)."""
    args = f"""--output_dir {out} --overwrite_output_dir --do_train --do_eval --validate_every 10 --logging_steps 20
      --save_steps 0 --data_path {data} --features_schema_path {data / 'rees46_schema_synth.pbtxt'} --data_loader_engine merlin
      --start_time_window_index 1 --final_time_window_index {a.final} --time_window_folder_pad_digits 4 --model_type {model}
      --loss_type cross_entropy --per_device_eval_batch_size {a.eval_bs} --similarity_type concat_mlp --tf_out_activation tanh
      --inp_merge mlp --learning_rate_warmup_steps 0 --learning_rate_schedule linear_with_warmup --hidden_act gelu
      --num_train_epochs {a.epochs} --dataloader_drop_last --compute_metrics_each_n_steps 1 --session_seq_length_max 20
      --eval_on_last_item_seq_only --mf_constrained_embeddings --layer_norm_featurewise --input_features_aggregation concat
      --per_device_train_batch_size {a.train_bs} --learning_rate 0.00020171456712823088 --dropout 0.0 --input_dropout 0.0
      --weight_decay 2.747484129693843e-05 --d_model {a.d_model} --item_embedding_dim {a.d_model} --n_layer 2 --n_head 8
      --label_smoothing 0.5 --stochastic_shared_embeddings_replacement_prob 0.0 --item_id_embeddings_init_std 0.09
      --other_embeddings_init_std 0.015 --embedding_dim_from_cardinality_multiplier 3.0 --eval_on_test_set --seed {seed}
      --report_to none""".split()
    return args + MASKING[model] + (["--use_side_information_features"] if side else [])


def timed(cmd: list[str], env: dict[str, str], log: Path) -> tuple[int, float]:
    """Run ``cmd`` under ``/usr/bin/time -v``; returns (exit code, peak RSS in MB of its largest process)."""
    with open(log, "w") as f:
        rc = subprocess.run(["/usr/bin/time", "-v", *cmd], stdout=f, stderr=subprocess.STDOUT, env=env).returncode
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", log.read_text(errors="replace"))
    return rc, int(m.group(1)) / 1024 if m else float("nan")


def run_reference(model: str, side: bool, seed: int, a: argparse.Namespace, work: Path) -> dict[str, float]:
    env = {**os.environ, "T4R_WORK": str(work), "D_MODEL": str(a.d_model), "EPOCHS": str(a.epochs), "FINAL": str(a.final),
           "TRAIN_BS": str(a.train_bs), "EVAL_BS": str(a.eval_bs), "SEED": str(seed), "SIDE_INFO": "1" if side else "0",
           "T4R_OUT": str(work / "compare_runs")}
    log = work / f"compare_{model}_side{int(side)}_seed{seed}.time.log"
    rc, rss = timed(["bash", str(a.anchors / "run_t4r.sh"), model], env, log)
    text = log.read_text(errors="replace")
    summary = re.search(r"T4R_SUMMARY (.*)", text)
    if not summary:
        raise SystemExit(f"reference run failed (exit {rc}); see {log}")
    fields = dict(kv.split("=", 1) for kv in summary.group(1).split() if "=" in kv)
    run_log = Path(fields["log"]).read_text(errors="replace")
    evals = [ast.literal_eval(m) for m in re.findall(r"(\{'eval_/next-item/[^}]*\})", run_log)]
    return {"train_sps": float(fields["train_sessions_per_s"]), "rss_mb": rss,
            "eval_sps": statistics.mean(e["eval_samples_per_second"] for e in evals),
            "ndcg20": float(fields["ndcg@20_AOT"])}


def run_sessrec(model: str, side: bool, seed: int, a: argparse.Namespace, data: Path, tmp: Path) -> dict[str, float]:
    out = tmp / f"sessrec_{model}_{int(side)}_{seed}"
    cmd = [sys.executable, "-m", "t4r_paper_repro.transf_exp_main", *example_args(model, data, out, a, side, seed),
           "--compat", a.compat]
    rc, rss = timed(cmd, {**os.environ, "WANDB_MODE": "disabled"}, tmp / f"{out.name}.log")
    if rc != 0:
        raise SystemExit(f"sessrec run failed (exit {rc}); see {tmp / f'{out.name}.log'}")
    res = json.loads((out / "results.json").read_text())
    w = res["windows"]
    return {"train_sps": statistics.mean(x["train_samples_per_second"] for x in w),
            "eval_sps": statistics.mean(x["metrics"]["eval_samples_per_second"] for x in w),
            "rss_mb": rss, "ndcg20": res["aot"]["eval_/next-item/ndcg_at_20"]}


def mean_over_seeds(rows: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.mean(r[k] for r in rows) for k in rows[0]} | {
        "ndcg20_std": statistics.stdev(r["ndcg20"] for r in rows) if len(rows) > 1 else 0.0}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--anchors", type=Path, default=Path(os.environ.get("T4R_ANCHORS", ROOT.parent / "shared" / "anchors")))
    ap.add_argument("--work", type=Path, default=Path(os.environ.get("T4R_WORK", Path.home() / ".cache" / "t4r-anchor")))
    ap.add_argument("--models", nargs="+", default=["xlnet", "gpt2"], choices=sorted(MASKING))
    ap.add_argument("--side-info", nargs="+", type=int, default=[1, 0], choices=[0, 1])
    ap.add_argument("--seeds", nargs="+", type=int, default=[100])
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--final", type=int, default=5)
    ap.add_argument("--train-bs", type=int, default=256)
    ap.add_argument("--eval-bs", type=int, default=200)
    ap.add_argument("--compat", default="t4r-23.12", choices=["t4r-23.12", "recsys2021"],
                    help="sessrec's model: the released library's (same model as the reference) or the paper's code")
    a = ap.parse_args(argv)

    venv_python = Path(os.environ.get("T4R_VENV", a.work / "t4r-venv")) / "bin" / "python"
    have_ref = venv_python.is_file() and subprocess.run(
        [str(venv_python), "-c", "import transformers4rec.torch"], capture_output=True).returncode == 0
    data = Path(os.environ.get("T4R_DATA", a.work / "synth_data"))
    if not (data / "rees46_schema_synth.pbtxt").is_file():
        # the anchor's generator writes its parquet files with pandas, which sessrec does not need
        python = venv_python if have_ref else Path(sys.executable)
        if subprocess.run([str(python), "-c", "import pandas"], capture_output=True).returncode:
            raise SystemExit(f"the anchor's data generator needs pandas: pip install pandas, or make the data "
                             f"elsewhere (python {a.anchors / 'make_synth_t4r.py'} DIR) and set T4R_DATA=DIR")
        data.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([str(python), str(a.anchors / "make_synth_t4r.py"), str(data)], check=True)
    print(f"machine: {describe()}; data: {data}; d_model {a.d_model}, 2 layers, batch {a.train_bs}, {a.epochs} epochs, "
          f"windows 1..{a.final}, seeds {a.seeds}, sessrec --compat {a.compat}")
    if not have_ref:
        print(f"reference environment not found ({venv_python}): comparison skipped, sessrec figures only "
              f"(build it with: T4R_WORK={a.work} bash {a.anchors / 'run_t4r.sh'})")
    header = "| model | side info | system | train sessions/s | eval sessions/s | peak RSS MB | NDCG@20 AOT |"
    lines = [header, "|---|---|---|---|---|---|---|"]
    ratios = []
    with tempfile.TemporaryDirectory() as tmp:
        for model in a.models:
            for side in map(bool, a.side_info):
                ours = mean_over_seeds([run_sessrec(model, side, s, a, data, Path(tmp)) for s in a.seeds])
                rows = [("sessrec", ours)]
                if have_ref:
                    ref = mean_over_seeds([run_reference(model, side, s, a, a.work) for s in a.seeds])
                    rows.append(("Transformers4Rec 23.12", ref))
                    ratios.append((model, side, ours["train_sps"] / ref["train_sps"], ours["eval_sps"] / ref["eval_sps"],
                                   ours["rss_mb"] / ref["rss_mb"], ours["ndcg20"] - ref["ndcg20"]))
                for name, r in rows:
                    lines.append(f"| {model} | {'on' if side else 'off'} | {name} | {r['train_sps']:.0f} | {r['eval_sps']:.0f} | "
                                 f"{r['rss_mb']:.0f} | {r['ndcg20']:.4f} ± {r['ndcg20_std']:.4f} |")
                    print(lines[-1], flush=True)
    print("\n".join(lines))
    if ratios:
        print("\n| model | side info | train speed | eval speed | peak RSS | NDCG@20 difference |\n|---|---|---|---|---|---|")
        for model, side, tr, ev, mem, dn in ratios:
            print(f"| {model} | {'on' if side else 'off'} | {tr:.2f}x | {ev:.2f}x | {mem:.2f}x | {dn:+.4f} |")


if __name__ == "__main__":
    main()
