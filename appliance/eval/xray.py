"""``appliance eval xray --data DIR``: the anomaly model on a held-out simulated set and on real images.

The model is the store's ``xray-anomaly`` model when one is installed, else one fitted in this run
on simulated normal scans (``--fit-scans`` per goods class; the report says which). The held-out
simulated set is rendered from a seed the fitting never uses (``xray_sim.HELD_OUT_SEED``). ``DIR``
is a folder in the ../shared/eval/xray layout (``baggage_patches/``, ``cargo_scans/``); the JSON
``score`` is the threat-vs-benign ROC AUC on the baggage patches, as the issue defines it.
"""

from __future__ import annotations

from pathlib import Path

from appliance.errors import ApplianceError
from appliance.eval.report import EvalReport
from appliance.xray.anomaly import AnomalyScorer

CONSISTENCY_MODEL = "sim-consistency"  # what `appliance train xray-consistency` names its model by default


def evaluate_xray(folder: Path, per_class: int = 4, fit_scans: int = 6, consistency_fit_scans: int = 10,
                  consistency_per_class: int = 4, model: str | None = None) -> EvalReport:
    from appliance.bench.xray import store_scorer
    from appliance.eval.xray_real import evaluate_baggage, evaluate_cargo_scans, patch_scorer
    from appliance.eval.xray_sim import evaluate_sim_xray
    from appliance.training.xray_anomaly import fit_from_simulation, scorer_for

    scorer, source = store_scorer(model) if model else store_scorer()
    if model and scorer is None:
        raise ApplianceError(f"xray-anomaly/{model} is not in the model store (`appliance models list` shows what is)")
    sim_scorer: AnomalyScorer
    if scorer is None:
        fitted, threshold, _ = fit_from_simulation("knn", fit_scans, seed=1)
        sim_scorer = scorer_for(fitted, 1.0, threshold)  # simulated scans are rendered at the model's pitch
        scorer = sim_scorer
        source = f"fitted in this run (knn, {fit_scans} normal scans per class, seed 1)"
    else:
        sim_scorer = AnomalyScorer(scorer.run, scorer.labels, 1.0, scorer.threshold)
    notes = [f"model: {source}"]
    groups = []
    sim = evaluate_sim_xray(sim_scorer, per_class=per_class)
    groups += sim.groups
    kinds = [k for k in sim.auroc if k != "all"]
    notes.append("held-out simulated set: " + ", ".join(f"{k} {v} scans" for k, v in sim.n.items()))
    notes.append("image AUROC / AP per anomaly type (ours | intensity baseline): " + "; ".join(
        f"{k} {sim.auroc[k]:.3f}/{sim.ap[k]:.3f} | {sim.baseline_auroc[k]:.3f}/{sim.baseline_ap[k]:.3f}"
        for k in [*kinds, "all"]))
    notes.append(f"alarms per 100 clean scans at the threshold {sim.threshold:.2f}: {sim.alarms_per_100_clean:.1f}")
    score = sim.auroc["all"]
    baselines = {"intensity (sim, all types)": sim.baseline_auroc["all"]}
    metric = "image AUROC on the held-out simulated set (no real folder given)"
    n = sum(sim.n.values())
    c_groups, c_notes = _consistency(consistency_fit_scans, consistency_per_class)
    groups += c_groups
    notes += c_notes
    if (folder / "baggage_patches").is_dir():
        group, ours, base, more = evaluate_baggage(folder / "baggage_patches", patch_scorer(scorer))
        groups.append(group)
        notes += more
        score, n = ours, group.n
        baselines = {"intensity": base, "ours on simulated held-out set": sim.auroc["all"]}
        metric = "threat-vs-benign ROC AUC on real baggage patches"
    if (folder / "cargo_scans").is_dir():
        group, more = evaluate_cargo_scans(folder / "cargo_scans")
        groups.append(group)
        notes += more
    return EvalReport(task="xray", metric=metric, score=score, n=n, misreads=0, ms_per_item=sim.ms_per_scan,
                      baselines=baselines, groups=groups, notes=notes)


def _consistency(fit_scans: int, per_class: int) -> tuple[list, list[str]]:
    """The manifest-consistency model on its held-out simulated set (the store's model, else fitted here)."""
    from appliance.eval.xray_consistency import evaluate_consistency
    from appliance.inference.session import SessionOptions
    from appliance.inference.store import ModelStore
    from appliance.training.xray_consistency import fit_from_simulation
    from appliance.xray.consistency import ConsistencyScorer

    model = ModelStore().open_if_present("xray-consistency", CONSISTENCY_MODEL, SessionOptions(intra_op_threads=1))
    scorer = ConsistencyScorer.from_model(model) if model is not None else None
    source = f"xray-consistency/{CONSISTENCY_MODEL} v{model.manifest.version} from the store" if model else ""
    if scorer is None:
        scorer = fit_from_simulation(fit_scans, seed=1).scorer()
        source = f"fitted in this run ({fit_scans} consistent scans per class, seed 1)"
    result = evaluate_consistency(scorer, per_class=per_class)
    return list(result.groups), [f"manifest consistency model: {source}", *result.notes()]
