"""The manifest-consistency model on a held-out simulated set, with a baseline in the same run.

The set is rendered from a seed no fitting uses (``HELD_OUT_SEED``; fits use small seeds, 1 by
default): for every goods class, ``per_class`` consistent scans, ``per_class`` with the wrong goods
declared and ``per_class`` with a quantity off by more than 20 % (the simulator's ``mismatch``),
calibrated with the virtual scanner's own dark/air frames like a real scan. Measured:

* class accuracy (the most probable class vs the real goods, every held-out scan),
* AUROC of goods-mismatch detection (score 1 - P(declared)) and of quantity-mismatch detection
  (score |estimate - declared| / declared), each against the consistent scans,
* at the model's thresholds: alarms per 100 consistent scans (goods, quantity, either; a scan the
  model cannot judge counts as an alarm) and the share of each mismatch kind flagged,
* the quantity's median relative error and the share within the tolerance on consistent scans,
* per goods class: the quantity tolerance the model applies (its own per class where its manifest
  has one, else the default), quantity alarms per 100 consistent scans and the share of quantity
  mismatches flagged.

The quantity check is also measured with the same model at the single declared +-20 % for every
class (``SINGLE``, the check before per-class tolerances), on the same scans: alarms, mismatches
flagged and AUROC. The quantity-mismatch AUROC scores a scan by its relative error over the
declared class's tolerance (with one tolerance for all classes that is the relative error's order).

Baseline (same scans): nearest class centroid of the mean attenuation of the load pixels for the
class (goods-mismatch score: distance to the declared class's centroid in pooled standard
deviations), and the quantity from the loaded length times one global density (units per metre).
It is fitted leave-one-out on the held-out consistent scans themselves, so it never sees the scan
it scores and needs no training set of its own.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from appliance.eval.report import GroupResult
from appliance.eval.verification import roc_auc
from appliance.xray.consistency import DEFAULT_TOLERANCE, DESCRIPTOR_NAMES, ConsistencyScorer

HELD_OUT_SEED = 9292
BASELINE = "centroid+length"
SINGLE = "single +-20 %"  # the same model, every class's quantity at the declared tolerance
_ATT = DESCRIPTOR_NAMES.index("att_mean")
_LENGTH = DESCRIPTOR_NAMES.index("length_m")


@dataclass
class ConsistencyEvalResult:
    n: dict[str, int]  # consistent, goods, quantity
    class_accuracy: float
    goods_auroc: float
    quantity_auroc: float
    alarms_per_100_consistent: float  # either check (or undecided)
    goods_alarms_per_100: float
    quantity_alarms_per_100: float
    goods_mismatches_flagged: float  # share of goods mismatches the goods check flags
    quantity_mismatches_flagged: float  # share of quantity mismatches the quantity check flags
    quantity_median_error: float  # relative, consistent scans
    quantity_within_tolerance: float  # share of consistent scans
    quantity_tolerance_at_2_per_100: float  # the tolerance that would leave 2 quantity alarms per 100 consistent scans
    undecided: int
    baseline: dict[str, float]  # the same figures for the baseline
    goods_threshold: float
    quantity_tolerance: float
    ms_per_scan: float  # descriptor + model
    render_s: float
    groups: list[GroupResult] = field(default_factory=list)
    single: dict[str, float] = field(default_factory=dict)  # the quantity figures at one +-20 % (SINGLE)
    per_class: dict[str, dict[str, float]] = field(default_factory=dict)  # goods -> quantity figures (both ways)

    def notes(self) -> list[str]:
        b = self.baseline
        return [
            f"manifest consistency, held-out simulated set (seed {HELD_OUT_SEED}): "
            + ", ".join(f"{k} {v}" for k, v in self.n.items()),
            f"class accuracy {self.class_accuracy:.3f} (baseline {b['class_accuracy']:.3f}); goods-mismatch AUROC "
            f"{self.goods_auroc:.3f} ({b['goods_auroc']:.3f}); quantity-mismatch AUROC {self.quantity_auroc:.3f} "
            f"({b['quantity_auroc']:.3f})",
            f"at P(declared) >= {self.goods_threshold:.3f} and {self._tolerance_text()}: alarms per "
            f"100 consistent scans {self.alarms_per_100_consistent:.1f} (goods {self.goods_alarms_per_100:.1f}, "
            f"quantity {self.quantity_alarms_per_100:.1f}; baseline {b['alarms_per_100_consistent']:.1f}); flagged: "
            f"goods mismatches {100 * self.goods_mismatches_flagged:.0f} %, quantity mismatches "
            f"{100 * self.quantity_mismatches_flagged:.0f} %",
            f"quantity on consistent scans: median error {100 * self.quantity_median_error:.1f} % (baseline "
            f"{100 * b['quantity_median_error']:.1f} %), within tolerance "
            f"{100 * self.quantity_within_tolerance:.0f} %; a tolerance of "
            f"+-{100 * self.quantity_tolerance_at_2_per_100:.0f} % would give 2 quantity alarms per 100",
            *self.tolerance_notes(),
        ]  # fmt: skip

    def _tolerance_text(self) -> str:
        tolerances = {round(c["tolerance"], 4) for c in self.per_class.values()} | {round(self.quantity_tolerance, 4)}
        if len(tolerances) == 1:
            return f"+-{100 * self.quantity_tolerance:.0f} %"
        return f"the quantity tolerance per class (+-{100 * min(tolerances):.0f}..{100 * max(tolerances):.0f} %)"

    def tolerance_notes(self) -> list[str]:
        """The quantity check with the model's tolerances vs the single +-20 % on the same scans."""
        if not self.single:
            return []
        s = self.single
        per = "; ".join(
            f"{g} +-{100 * c['tolerance']:.0f} %: {c['alarms_per_100']:.1f} ({c['alarms_per_100_single']:.1f}) "
            f"alarms/100, mismatches flagged {100 * c['mismatches_flagged']:.0f} % "
            f"({100 * c['mismatches_flagged_single']:.0f} %)"
            for g, c in self.per_class.items())
        return [
            f"quantity tolerance per class vs one +-{100 * DEFAULT_TOLERANCE:.0f} % (same model, same scans): quantity "
            f"alarms per 100 consistent scans {self.quantity_alarms_per_100:.1f} vs {s['quantity_alarms_per_100']:.1f}"
            f", either check {self.alarms_per_100_consistent:.1f} vs {s['alarms_per_100_consistent']:.1f}; quantity "
            f"mismatches flagged {100 * self.quantity_mismatches_flagged:.0f} % vs "
            f"{100 * s['quantity_mismatches_flagged']:.0f} %; quantity-mismatch AUROC {self.quantity_auroc:.3f} vs "
            f"{s['quantity_auroc']:.3f}",
            f"per class, tolerance: quantity alarms per 100 consistent scans (at +-20 %), mismatches flagged "
            f"(at +-20 %): {per}",
        ]  # fmt: skip


def _baseline(vectors: np.ndarray, real: list[str], declared: list[str], declared_q: np.ndarray,
              consistent: np.ndarray, labels: tuple[str, ...]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Leave-one-out nearest-centroid class, goods-mismatch score, quantity relative error."""
    att = vectors[:, _ATT].astype(np.float64)
    length = vectors[:, _LENGTH].astype(np.float64)
    real_q = declared_q.copy()  # consistent scans declare the real quantity
    predicted, goods_score, rel = [], np.zeros(len(att)), np.zeros(len(att))
    for i in range(len(att)):
        ref = consistent.copy()
        ref[i] = False  # leave the scan itself out
        cent = {g: float(att[ref & (np.array(real) == g)].mean()) for g in labels
                if (ref & (np.array(real) == g)).any()}
        spread = float(np.sqrt(np.mean([(att[j] - cent[real[j]]) ** 2 for j in np.flatnonzero(ref)
                                        if real[j] in cent]))) if cent else 1.0
        predicted.append(min(cent, key=lambda g: abs(att[i] - cent[g])) if cent else "")
        goods_score[i] = abs(att[i] - cent[declared[i]]) / max(spread, 1e-6) if declared[i] in cent else np.inf
        ok = ref & (length > 0)
        density = float(np.median(real_q[ok] / length[ok])) if ok.any() else 0.0
        rel[i] = abs(density * length[i] - declared_q[i]) / max(declared_q[i], 1.0)
    return predicted, goods_score, rel


def evaluate_consistency(scorer: ConsistencyScorer, per_class: int = 6, seed: int = HELD_OUT_SEED,
                         scale: float | None = None) -> ConsistencyEvalResult:
    """Render the held-out set and score it with ``scorer`` (a package's or an in-memory fit's)."""
    from appliance.training.xray_anomaly import TRAIN_SCALE, SimScanner
    from appliance.training.xray_consistency import render_descriptors

    labels = scorer.labels
    sim = SimScanner(scale or TRAIN_SCALE)
    sets = {kind: render_descriptors(per_class, seed, tag=tag, goods=labels, mismatch=kind or None, sim=sim)
            for tag, kind in enumerate(("", "goods", "quantity"))}
    kinds: list[str] = []
    real: list[str] = []
    declared: list[str] = []
    declared_q: list[float] = []
    vectors = []
    results = []
    ms = 0.0
    render_s = 0.0
    for kind, s in sets.items():
        render_s += s.render_s
        for i in range(len(s)):
            started = time.perf_counter()
            results.append(scorer.score_descriptor(s.descriptors[i], s.declared[i], s.declared_quantity[i]))
            ms += s.descriptor_ms[i] + 1000 * (time.perf_counter() - started)
            kinds.append(kind or "consistent")
            real.append(s.real[i])
            declared.append(s.declared[i])
            declared_q.append(s.declared_quantity[i])
            vectors.append(s.vectors[i])
    kind_arr = np.array(kinds)
    cons, goods_mm, qty_mm = kind_arr == "consistent", kind_arr == "goods", kind_arr == "quantity"
    predicted = np.array([r.predicted for r in results])
    p_decl = np.array([r.p_declared for r in results])
    rel = np.array([np.inf if r.relative_error is None else r.relative_error for r in results])
    goods_flag = np.array([not r.goods_consistent for r in results])  # False whenever it could not be checked
    qty_flag = np.array([not r.quantity_consistent for r in results])
    either = np.array([not r.consistent for r in results])
    accuracy = float((predicted == np.array(real)).mean())
    b_pred, b_goods, b_rel = _baseline(np.array(vectors), real, declared, np.array(declared_q), cons, labels)
    b_pred_arr = np.array(b_pred)
    b_goods_flag = b_pred_arr != np.array(declared)
    b_qty_flag = b_rel > scorer.quantity_tolerance
    cons_rel = rel[cons]
    real_arr = np.array(real)
    tol = np.array([scorer.tolerance_for(d) for d in declared])  # as the scorer applied it
    q_score = np.minimum(rel / tol, 1e6)  # the quantity check's score: error in units of the class's tolerance
    # the same quantity check at one +-20 % (a result without a relative error keeps its verdict)
    single_flag = np.array([not r.quantity_consistent if r.relative_error is None
                            else r.relative_error > DEFAULT_TOLERANCE for r in results])
    single_either = goods_flag | single_flag | np.array([not r.decided for r in results])
    baseline = {
        "class_accuracy": float((b_pred_arr == np.array(real)).mean()),
        "goods_auroc": roc_auc(b_goods[goods_mm], b_goods[cons]),
        "quantity_auroc": roc_auc(b_rel[qty_mm], b_rel[cons]),
        "alarms_per_100_consistent": 100 * float((b_goods_flag | b_qty_flag)[cons].mean()),
        "goods_alarms_per_100": 100 * float(b_goods_flag[cons].mean()),
        "quantity_alarms_per_100": 100 * float(b_qty_flag[cons].mean()),
        "goods_mismatches_flagged": float(b_goods_flag[goods_mm].mean()),
        "quantity_mismatches_flagged": float(b_qty_flag[qty_mm].mean()),
        "quantity_median_error": float(np.median(b_rel[cons])),
        "quantity_within_tolerance": float((b_rel[cons] <= scorer.quantity_tolerance).mean()),
    }
    n = {"consistent": int(cons.sum()), "goods mismatch": int(goods_mm.sum()), "quantity mismatch": int(qty_mm.sum())}
    total = len(results)
    per_ms = ms / max(total, 1)
    groups = [
        GroupResult("consistent: not flagged", n["consistent"], int((~either[cons]).sum()), 0, per_ms,
                    baselines={BASELINE: int((~(b_goods_flag | b_qty_flag))[cons].sum()),
                               SINGLE: int((~single_either[cons]).sum())}),
        GroupResult("goods mismatch: flagged", n["goods mismatch"], int(goods_flag[goods_mm].sum()), 0, per_ms,
                    baselines={BASELINE: int(b_goods_flag[goods_mm].sum()), SINGLE: int(goods_flag[goods_mm].sum())}),
        GroupResult("quantity mismatch: flagged", n["quantity mismatch"], int(qty_flag[qty_mm].sum()), 0, per_ms,
                    baselines={BASELINE: int(b_qty_flag[qty_mm].sum()), SINGLE: int(single_flag[qty_mm].sum())}),
    ]  # fmt: skip
    by_class: dict[str, dict[str, float]] = {}
    for g in labels:  # the quantity check per class: consistent scans within tolerance, mismatches flagged
        of = cons & (real_arr == g)
        mm = qty_mm & (real_arr == g)
        t = scorer.tolerance_for(g)
        groups.append(GroupResult(f"quantity within tolerance: {g} (+-{100 * t:.0f} %)", int(of.sum()),
                                  int((~qty_flag[of]).sum()), 0, per_ms,
                                  baselines={BASELINE: int((b_rel[of] <= scorer.quantity_tolerance).sum()),
                                             SINGLE: int((~single_flag[of]).sum())}))
        groups.append(GroupResult(f"quantity mismatch flagged: {g}", int(mm.sum()), int(qty_flag[mm].sum()), 0,
                                  per_ms, baselines={BASELINE: int(b_qty_flag[mm].sum()),
                                                     SINGLE: int(single_flag[mm].sum())}))
        by_class[g] = {
            "tolerance": t, "consistent": int(of.sum()), "quantity_mismatch": int(mm.sum()),
            "alarms_per_100": 100 * float(qty_flag[of].mean()) if of.any() else 0.0,
            "alarms_per_100_single": 100 * float(single_flag[of].mean()) if of.any() else 0.0,
            "mismatches_flagged": float(qty_flag[mm].mean()) if mm.any() else 0.0,
            "mismatches_flagged_single": float(single_flag[mm].mean()) if mm.any() else 0.0,
        }  # fmt: skip
    for g in labels:
        of = real_arr == g
        wrong = int((predicted[of] != g).sum())
        groups.append(GroupResult(f"class {g}", int(of.sum()), int((predicted[of] == g).sum()), wrong, per_ms,
                                  baselines={BASELINE: int((b_pred_arr[of] == g).sum()),
                                             SINGLE: int((predicted[of] == g).sum())},
                                  baseline_misreads={BASELINE: int((b_pred_arr[of] != g).sum()), SINGLE: wrong}))
    single = {
        "quantity_tolerance": DEFAULT_TOLERANCE,
        "alarms_per_100_consistent": 100 * float(single_either[cons].mean()),
        "quantity_alarms_per_100": 100 * float(single_flag[cons].mean()),
        "quantity_mismatches_flagged": float(single_flag[qty_mm].mean()),
        "quantity_auroc": roc_auc(np.minimum(rel[qty_mm], 1e6), np.minimum(cons_rel, 1e6)),
    }
    return ConsistencyEvalResult(
        n=n, class_accuracy=accuracy,
        goods_auroc=roc_auc(1 - p_decl[goods_mm], 1 - p_decl[cons]),
        quantity_auroc=roc_auc(q_score[qty_mm], q_score[cons]),
        alarms_per_100_consistent=100 * float(either[cons].mean()),
        goods_alarms_per_100=100 * float(goods_flag[cons].mean()),
        quantity_alarms_per_100=100 * float(qty_flag[cons].mean()),
        goods_mismatches_flagged=float(goods_flag[goods_mm].mean()),
        quantity_mismatches_flagged=float(qty_flag[qty_mm].mean()),
        quantity_median_error=float(np.median(cons_rel)),
        quantity_within_tolerance=float((~qty_flag[cons]).mean()),
        quantity_tolerance_at_2_per_100=float(np.quantile(np.minimum(cons_rel, 1e6), 0.98)),
        undecided=int(sum(not r.decided for r in results)), baseline=baseline,
        goods_threshold=scorer.goods_threshold, quantity_tolerance=scorer.quantity_tolerance,
        ms_per_scan=per_ms, render_s=render_s, groups=groups, single=single, per_class=by_class,
    )  # fmt: skip
