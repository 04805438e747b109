"""The synthetic X-ray cargo scanner: determinism, geometry, TIP, dual energy, calibration frames, manifests."""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from appliance.errors import SimulationError
from appliance.sim.xray import (
    ANOMALY_KINDS,
    GOODS_CLASSES,
    ScanSpec,
    calibration_frames,
    make_grid,
    make_scanner,
    random_spec,
    render_scan,
    simulate_xray,
)
from appliance.sim.xray_goods import GOODS, MATERIALS

SCALE = 0.2


def _spec(seed: int, goods: str | None = "fruit", anomaly=None, **kw) -> ScanSpec:
    return random_spec(np.random.default_rng(seed), goods, anomaly, **kw)


def _calibrate(counts: np.ndarray, dark: np.ndarray, air: np.ndarray) -> np.ndarray:
    """Flat field as DOMAIN.md describes it: -ln((I - dark) / (air - dark))."""
    d = dark.astype(np.float64).mean(axis=1)[:, None]
    a = air.astype(np.float64).mean(axis=1)[:, None]
    t = (counts.astype(np.float64) - d) / np.maximum(a - d, 1.0)
    return -np.log(np.clip(t, 1e-6, None))


# -- materials ----------------------------------------------------------------------------------


def test_low_high_ratio_rises_with_z_organic_inorganic_metal() -> None:
    by_cat: dict[str, list[float]] = {}
    for m in MATERIALS.values():
        assert m.mu_low > m.mu_high > 0
        by_cat.setdefault(m.category, []).append(m.ratio)
    assert max(by_cat["organic"]) < min(by_cat["inorganic"])
    assert max(by_cat["inorganic"]) < min(by_cat["metal"])


# -- determinism and shapes ----------------------------------------------------------------------


def test_same_seed_same_scan_other_seed_other_noise() -> None:
    spec = _spec(3, "parcels", "weapon")
    assert spec == _spec(3, "parcels", "weapon")  # random_spec is deterministic from the rng
    assert ScanSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec  # truth["spec"] round-trips
    a = render_scan(spec, 11, SCALE)
    b = render_scan(spec, 11, SCALE)
    for name in ("high", "low", "attenuation_high", "attenuation_low"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert a.truth == b.truth
    assert a.masks.keys() == b.masks.keys() and all(np.array_equal(a.masks[k], b.masks[k]) for k in a.masks)
    c = render_scan(spec, 12, SCALE)
    assert c.high.shape == a.high.shape
    assert not np.array_equal(c.high, a.high)


@pytest.mark.parametrize(("containers", "cols"), [(("40",), (3700, 4300)), (("20",), (2100, 2700)),
                                                  (("20", "20"), (3700, 4400))])
def test_full_scale_geometry(containers: tuple[str, ...], cols: tuple[int, int]) -> None:
    grid, lay = make_grid(_spec(5, "fruit", containers=containers), 1.0)
    assert grid.rows == 1500
    assert cols[0] <= grid.cols <= cols[1]
    assert len(lay.containers) == len(containers)
    small, _ = make_grid(_spec(5, "fruit", containers=containers), 0.25)
    assert small.rows == 375 and abs(small.cols - grid.cols / 4) <= 2


def test_full_size_40ft_renders_in_seconds() -> None:
    spec = _spec(8, "fruit", "dense_block", containers=("40",))
    started = time.perf_counter()
    r = render_scan(spec, 1, 1.0)
    elapsed = time.perf_counter() - started
    assert r.high.shape[0] == 1500 and 3700 <= r.high.shape[1] <= 4300
    assert r.high.dtype == np.uint16 and r.low.dtype == np.uint16 and r.high.shape == r.low.shape
    assert elapsed < 20.0, f"full-size render took {elapsed:.1f} s"


@pytest.mark.parametrize("goods", GOODS_CLASSES)
def test_every_goods_class_and_variant_renders_a_counted_load(goods: str) -> None:
    for i, variant in enumerate(GOODS[goods].variants):
        spec = _spec(20 + i, goods)
        spec = dataclasses.replace(spec, load=dataclasses.replace(spec.load, variant=variant))
        r = render_scan(spec, 2, 0.15)
        load = r.truth["load"]
        assert load["goods"] == goods and load["variant"] == variant
        assert load["quantity"] > 0 and load["quantity"] == sum(u[4] for u in load["units"])
        assert load["unit"] == GOODS[goods].unit_of(variant)
        mask = r.masks["load"]
        assert mask.sum() > 200, f"{goods}/{variant}: load barely drawn"
        x, y, w, h = load["bbox"]
        inside = np.zeros_like(mask)
        inside[y : y + h, x : x + w] = True
        assert not (mask & ~inside).any()
        assert r.attenuation_high[mask].mean() > 0.3
        # units lie within the containers
        (cx, cy, _cw, ch) = r.truth["vehicle"]["containers"][0]["bbox"]
        last = r.truth["vehicle"]["containers"][-1]["bbox"]
        for ux, uy, uw, uh, _n in load["units"]:
            assert cx - 2 <= ux and ux + uw <= last[0] + last[2] + 2
            assert cy - 2 <= uy and uy + uh <= cy + ch + 2


# -- TIP anomalies --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ANOMALY_KINDS)
def test_tip_adds_attenuation_inside_its_mask_only(kind: str) -> None:
    for seed in (1, 2):
        spec = _spec(100 + seed, "electronics" if seed == 1 else "coke", kind)
        r = render_scan(spec, seed, SCALE)
        clean = render_scan(dataclasses.replace(spec, anomalies=()), seed, SCALE)
        (a,) = r.truth["anomalies"]
        assert a["kind"] == kind
        mask = r.masks[a["mask"]]
        assert mask.any()
        x, y, w, h = a["bbox"]
        box = np.zeros_like(mask)
        box[y : y + h, x : x + w] = True
        assert not (mask & ~box).any(), "mask outside its bbox"
        ys, xs = np.nonzero(mask)
        assert (xs.min(), ys.min(), xs.max(), ys.max()) == (x, y, x + w - 1, y + h - 1), "bbox not tight"
        added = r.attenuation_high - clean.attenuation_high
        assert added[mask].min() > -1e-3
        assert added[mask].mean() > 0.05
        assert np.abs(added[~mask]).max() < 1e-3, "TIP changed pixels outside its mask"
        assert a["area_px"] == int(mask.sum())
        # the counts see it too: fewer photons where the threat is
        assert r.high[mask].astype(float).mean() < clean.high[mask].astype(float).mean()


def test_tip_specific_truth() -> None:
    r = render_scan(_spec(7, "fruit", "undeclared_goods"), 1, SCALE)
    (a,) = r.truth["anomalies"]
    assert a["goods"] != "fruit" and a["goods"] in GOODS_CLASSES and a["units"] >= 1
    assert a["stack"] in r.truth["spec"]["load"]["skip_stacks"]
    r = render_scan(_spec(9, "parcels", "hidden_compartment"), 1, SCALE)
    (a,) = r.truth["anomalies"]
    assert a["variant"] in ("false_wall", "double_floor")
    load = r.truth["spec"]["load"]
    assert load["front_gap_m"] > a["size_m"] or load["floor_raise_m"] > a["size_m"]
    r = render_scan(_spec(4, "seafood", ["dense_block", "weapon"]), 1, SCALE)
    kinds = [x["kind"] for x in r.truth["anomalies"]]
    assert kinds == ["dense_block", "weapon"]
    assert r.truth["anomalies"][0]["material"] in ("steel", "lead", "tungsten")
    assert r.truth["anomalies"][1]["shape"] in ("pistol", "rifle")


# -- dual energy -----------------------------------------------------------------------------------


def test_dual_energy_ratio_orders_organic_inorganic_metal_in_noise_free_and_calibrated_images() -> None:
    scanner = make_scanner(round(1500 * SCALE), seed=4)
    frames = calibration_frames(scanner, 4)
    ratios: dict[str, tuple[float, float]] = {}
    for goods in ("fruit", "fertiliser"):
        spec = _spec(31, goods, "dense_block")
        spec = dataclasses.replace(spec, anomalies=(dataclasses.replace(
            spec.anomalies[0], params={**spec.anomalies[0].params, "material": "steel", "cm": 12.0, "wrap": False}),))
        r = render_scan(spec, 3, SCALE, scanner=scanner)
        m = r.masks["load"] & ~r.masks["anomaly0"]
        good = m & (r.attenuation_high > 0.5) & (r.attenuation_high < 5.0)
        good[list(scanner.dead_rows) + list(scanner.hot_rows)] = False
        assert good.sum() > 500
        cal_h = _calibrate(r.high, frames["dark"]["high"], frames["air"]["high"])
        cal_l = _calibrate(r.low, frames["dark"]["low"], frames["air"]["low"])
        ratios[goods] = (float(r.attenuation_low[good].sum() / r.attenuation_high[good].sum()),
                         float(cal_l[good].sum() / cal_h[good].sum()))
        metal = r.truth["anomalies"][0]["added_ratio_low_high"]
    for k in (0, 1):
        assert ratios["fruit"][k] < ratios["fertiliser"][k] < metal, ratios
    assert metal == pytest.approx(MATERIALS["steel"].ratio, rel=1e-3)


# -- scanner: dark / air frames and the counts formula --------------------------------------------------


def test_dark_and_air_frames_follow_the_counts_formula() -> None:
    scanner = make_scanner(300, seed=9)
    frames = calibration_frames(scanner, 9, columns=64)
    for energy in ("high", "low"):
        dark_f, air_f = frames["dark"][energy], frames["air"][energy]
        assert dark_f.shape == air_f.shape == (300, 64) and dark_f.dtype == np.uint16
        dark, air = scanner.levels(energy)
        np.testing.assert_allclose(dark_f.mean(axis=1), dark, atol=4.0)  # beam off: dark + read noise
        live = np.setdiff1d(np.arange(300), list(scanner.dead_rows) + list(scanner.hot_rows))
        rel = air_f.mean(axis=1)[live] / air[live]
        assert np.abs(rel - 1).max() < 0.03  # open beam: air level within the beam fluctuation
        assert air_f.std(axis=1)[live].mean() > 0  # noise is there
        for r in scanner.dead_rows:
            assert abs(float(air_f[r].mean()) - float(dark_f[r].mean())) < 10
        for r in scanner.hot_rows:
            assert dark_f[r].mean() > 55_000 and air_f[r].mean() > 55_000
    # a scan by the same scanner: air columns in front of the truck read like the air frame, and
    # flat-field calibration with the frames gives back the attenuation it was rendered with
    spec = _spec(12, "fruit")
    r = render_scan(spec, 5, 0.2, scanner=scanner)
    assert r.high.shape[0] == 300
    lead_cols = max(3, int(r.truth["vehicle"]["cab_bbox"][0]) - 3)
    live = np.setdiff1d(np.arange(300), list(scanner.dead_rows) + list(scanner.hot_rows))
    front = r.high[live, :lead_cols].astype(float).mean(axis=1)
    assert np.abs(front / frames["air"]["high"][live].astype(float).mean(axis=1) - 1).max() < 0.04
    cal = _calibrate(r.high, frames["dark"]["high"], frames["air"]["high"])
    region = np.zeros(r.high.shape, bool)
    region[live] = True
    region &= (r.attenuation_high > 0.3) & (r.attenuation_high < 4.0)
    assert region.sum() > 1000
    err = np.median(np.abs(cal[region] - r.attenuation_high[region]))
    assert err < 0.08, err
    # photon starvation behind the engine block and axles: counts at the dark level
    starved = r.attenuation_high > 12
    assert starved.any()
    dark = scanner.dark_high[:, None].repeat(r.high.shape[1], axis=1)
    assert np.abs(r.high[starved & region.any(axis=1)[:, None]].astype(float)
                  - dark[starved & region.any(axis=1)[:, None]]).mean() < 30


# -- manifests ----------------------------------------------------------------------------------------


def test_manifest_mismatches_are_recorded() -> None:
    for seed in range(6):
        ok = render_scan(_spec(seed, None), 0, 0.1).truth["manifest"]
        assert ok["mismatches"] == [] and ok["declared_goods"] == ok["real_goods"]
        assert ok["declared_quantity"] == ok["real_quantity"] > 0
        goods = render_scan(_spec(seed, None, mismatch="goods"), 0, 0.1).truth["manifest"]
        assert goods["mismatches"] == ["goods"] and goods["declared_goods"] != goods["real_goods"]
        assert goods["declared_goods"] in GOODS_CLASSES
        qty = render_scan(_spec(seed, None, mismatch="quantity"), 0, 0.1).truth["manifest"]
        assert qty["mismatches"] == ["quantity"] and qty["declared_goods"] == qty["real_goods"]
        assert abs(qty["declared_quantity"] - qty["real_quantity"]) > 0.2 * qty["real_quantity"]


def test_bad_requests_are_refused() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(SimulationError, match="unknown goods class 'gold'"):
        random_spec(rng, "gold")
    with pytest.raises(SimulationError, match="unknown anomaly 'bomb'"):
        random_spec(rng, "fruit", "bomb")
    with pytest.raises(SimulationError, match="unknown mismatch"):
        random_spec(rng, "fruit", mismatch="colour")
    with pytest.raises(SimulationError, match="scale"):
        render_scan(_spec(1), 1, 5.0)
    with pytest.raises(SimulationError, match="rows"):
        render_scan(_spec(1), 1, 0.2, scanner=make_scanner(100))


def test_empty_container() -> None:
    r = render_scan(_spec(2, "empty", "dense_block"), 1, SCALE)
    assert r.truth["load"] is None and "load" not in r.masks
    assert r.truth["manifest"]["declared_goods"] == "empty" and r.truth["manifest"]["real_quantity"] == 0
    assert r.masks["anomaly0"].any()


# -- a folder of scans --------------------------------------------------------------------------------


def test_simulate_xray_writes_the_ingest_layout(tmp_path: Path) -> None:
    out = tmp_path / "xr"
    res = simulate_xray(out, 4, 21, scale=0.12, anomaly_share=1.0, mismatch_share=0.5)
    truth = json.loads((out / "truth.json").read_text(encoding="utf-8"))
    assert truth["format"] == "gate-xray-sim/1" and len(truth["scans"]) == 4 == res.scans
    assert sum(res.anomalies.values()) == 4
    cal = json.loads((out / "calibration" / "calibration.json").read_text(encoding="utf-8"))
    rows = truth["scans"][0]["shape"][0]
    for kind in ("dark", "air"):
        for energy in ("high", "low"):
            img = cv2.imread(str(out / "calibration" / cal["files"][kind][energy]), cv2.IMREAD_UNCHANGED)
            assert img.dtype == np.uint16 and img.shape == (rows, 64)
    for s in truth["scans"]:
        side = json.loads((out / s["files"]["sidecar"]).read_text(encoding="utf-8"))
        assert side["declared_goods"] == s["manifest"]["declared_goods"]
        assert side["declared_quantity"] == s["manifest"]["declared_quantity"]
        high = cv2.imread(str(out / s["files"]["high"]), cv2.IMREAD_UNCHANGED)
        assert high.dtype == np.uint16 and list(high.shape) == s["shape"]
        for a in s["anomalies"]:
            m = cv2.imread(str(out / a["mask"]), cv2.IMREAD_UNCHANGED)
            assert m.shape == high.shape and set(np.unique(m)) <= {0, 255}
            assert int((m > 0).sum()) == a["area_px"]
    with pytest.raises(SimulationError, match="not empty"):
        simulate_xray(out, 1, 1, scale=0.1)
    again = simulate_xray(out, 1, 1, scale=0.1, overwrite=True)
    assert len(json.loads(again.truth_path.read_text(encoding="utf-8"))["scans"]) == 1
    assert sorted(p.name for p in (out / "scans").iterdir()) == ["XR00001.json", "XR00001_high.png",
                                                                 "XR00001_low.png"]


def test_cli_parser_runs_the_simulator(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from appliance.xray.sim_cli import add_parsers

    parser = argparse.ArgumentParser()
    add_parsers(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["simulate-xray", "--out", str(tmp_path / "o"), "--scans", "2", "--seed", "3",
                              "--scale", "0.1", "--anomaly-share", "0.5", "--mismatch-share", "0",
                              "--goods", "coke,chemicals"])
    assert args.func(args) == 0
    assert "2 scans" in capsys.readouterr().out
    truth = json.loads((tmp_path / "o" / "truth.json").read_text(encoding="utf-8"))
    assert {s["load"]["goods"] for s in truth["scans"]} <= {"coke", "chemicals"}
    with pytest.raises(SystemExit):
        parser.parse_args(["simulate-xray", "--out", "x", "--anomaly-share", "1.5"])


def test_the_penetration_limit_is_where_the_signal_is_five_times_its_noise() -> None:
    from appliance.sim.xray import make_scanner, penetration_limit

    scanner = make_scanner(200)
    limit = penetration_limit(scanner)
    full = float(np.median(scanner.air_high - scanner.dark_high))
    signal = full * np.exp(-limit)
    noise = np.sqrt(scanner.counts_per_photon * signal + scanner.read_noise**2)
    assert abs(signal / noise - 5.0) < 0.01


@pytest.mark.parametrize("goods", ["chemicals", "fertiliser"])
def test_threats_are_projected_where_the_beam_still_penetrates(goods: str) -> None:
    """Dense loads: a dense block lands mostly over scene the beam goes through (measured on the same scan
    rendered without it), not where the detector is already starved."""
    import dataclasses

    from appliance.sim.xray import VISIBLE_MARGIN, VISIBLE_SHARE, make_scanner, penetration_limit

    rng = np.random.default_rng(11)
    shares = []
    for i in range(4):
        spec = random_spec(rng, goods=goods, anomaly="dense_block")
        scan = render_scan(spec, 300 + i, scale=0.25)
        clean = render_scan(dataclasses.replace(spec, anomalies=()), 300 + i, scale=0.25)
        truth = scan.truth["anomalies"][0]
        mask = scan.masks[truth["mask"]]
        limit = penetration_limit(make_scanner(mask.shape[0]))
        measured = float((clean.attenuation_high[mask] <= limit - VISIBLE_MARGIN).mean())
        # (the truth measures before the scan-speed warp, this after it: a few % apart on small blocks)
        assert abs(measured - truth["visible_share"]) < 0.1
        shares.append(measured)
        if truth["placement_tries"] < 12:
            assert measured >= VISIBLE_SHARE - 0.1
    assert np.mean(shares) >= VISIBLE_SHARE - 0.05
