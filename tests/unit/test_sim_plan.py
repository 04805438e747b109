"""The lane plan: determinism, timeline, and truth/manifest consistency of mismatches."""

from __future__ import annotations

import itertools
import json

import pytest

from appliance.errors import SimulationError
from appliance.sim import identities as ids
from appliance.sim.model import MISMATCH_KINDS
from appliance.sim.traffic import LanePlan, plan_lane


def _entry_for(plan: LanePlan, vehicle: dict) -> dict | None:
    """The manifest entry of a truth vehicle: by declaration, or for IGVs (which may pass
    more than once) by fleet ID plus the best agreement on cargo."""
    if vehicle["declaration"] is not None:
        found = [e for e in plan.manifest["entries"] if e["declaration"] == vehicle["declaration"]]
        assert len(found) <= 1
        return found[0] if found else None
    candidates = [e for e in plan.manifest["entries"] if e["fleet_id"] == vehicle["fleet_id"]]

    def agreement(entry: dict) -> int:
        return (entry["containers"] == vehicle["containers"]) + (
            entry["seals"] == [s["serial"] for s in vehicle["seals"]]
        )

    return max(candidates, key=agreement, default=None)


def test_plan_is_deterministic_for_a_seed() -> None:
    a = json.dumps(plan_lane(30, 5).truth(), ensure_ascii=False, sort_keys=True)
    b = json.dumps(plan_lane(30, 5).truth(), ensure_ascii=False, sort_keys=True)
    c = json.dumps(plan_lane(30, 6).truth(), ensure_ascii=False, sort_keys=True)
    assert a == b
    assert a != c
    m1, m2 = plan_lane(30, 5).manifest, plan_lane(30, 5).manifest
    assert m1 == m2


def test_timeline_is_ordered_and_on_the_frame_grid() -> None:
    plan = plan_lane(25, 9, fps=5.0, gap_s=2.0)
    previous = None
    for v in plan.vehicles:
        assert v.t_enter == pytest.approx(plan.start_time + v.enter_frame / plan.fps)
        assert v.t_exit == pytest.approx(plan.start_time + v.exit_frame / plan.fps)
        assert 8 <= v.frames <= 13  # about 2 s in view at 5 fps
        if previous is not None:
            # 2 s of empty lane; 90 s more where day turns to night or back
            dusk = previous.conditions.light != v.conditions.light
            assert v.enter_frame - previous.exit_frame - 1 == (460 if dusk else 10)
        if v.kiosk_ms is not None:
            assert v.t_enter * 1000 <= v.kiosk_ms <= v.t_exit * 1000
        previous = v
    assert plan.frames > plan.vehicles[-1].exit_frame


def test_rate_per_day_sets_the_mean_headway() -> None:
    plan = plan_lane(400, 3, rate_per_day=3500)
    enters = [v.t_enter for v in plan.vehicles]
    headways = [b - a for a, b in itertools.pairwise(enters)]
    assert sum(headways) / len(headways) == pytest.approx(86400 / 3500, rel=0.15)
    assert min(headways) > 1.5  # never two vehicles in view at once


def test_mix_of_vehicles_and_conditions() -> None:
    plan = plan_lane(300, 4, night_share=0.3)
    kinds = [v.body for v in plan.vehicles]
    assert 0.04 < kinds.count("igv") / 300 < 0.18
    assert {v.country for v in plan.vehicles if v.body != "igv"} == {"VN", "CN"}
    lights = [v.conditions.light for v in plan.vehicles]
    assert lights.count("night") == 90
    # Light comes in one spell (wrapping round the run), not flipping between trucks.
    assert sum(a != b for a, b in itertools.pairwise(lights)) <= 2
    weather = [v.conditions.weather for v in plan.vehicles]
    assert 0.08 < weather.count("rain") / 300 < 0.35
    assert sum(a != b for a, b in itertools.pairwise(weather)) < 0.25 * 300  # spells, not coin flips
    for v in plan.vehicles:
        if v.body == "igv":
            assert v.tractor_plate is None and v.fleet_id and v.declaration is None
        else:
            assert v.tractor_plate is not None and v.fleet_id is None and v.declaration
        for c in v.containers:
            assert ids.iso6346_valid(c.number)


def test_no_mismatch_means_manifest_matches_truth() -> None:
    plan = plan_lane(40, 8, mismatch_share=0.0)
    truth = plan.truth()
    for v in truth["vehicles"]:
        assert v["mismatches"] == [] and v["expected_verdict"] == "CLEAR"
        if v["kind"] == "igv":
            continue
        entry = _entry_for(plan, v)
        assert entry is not None
        assert entry["tractor_plate"] == v["tractor_plate"]["text"]
        assert entry["containers"] == v["containers"]
        assert entry["seals"] == [s["serial"] for s in v["seals"]]


def test_each_mismatch_is_visible_in_the_manifest() -> None:
    plan = plan_lane(120, 12, mismatch_share=1.0)
    truth = plan.truth()
    seen = set()
    for v in truth["vehicles"]:
        assert len(v["mismatches"]) == 1 and v["expected_verdict"] == "HOLD"
        kind = v["mismatches"][0]
        seen.add(kind)
        entry = _entry_for(plan, v)
        if kind == "undeclared":
            assert not any(e["declaration"] == v["declaration"] for e in plan.manifest["entries"])
            continue
        assert entry is not None, v["id"]
        if kind == "container_number":
            declared, real = entry["containers"][0]["number"], v["containers"][0]["number"]
            assert declared != real and ids.iso6346_valid(declared)
            assert entry["seals"] == [s["serial"] for s in v["seals"]]
        elif kind == "seal_number":
            assert entry["seals"][0] != v["seals"][0]["serial"]
            assert entry["containers"] == v["containers"]
        elif kind == "seal_missing":
            assert v["seals"] == [{"serial": None, "present": False, "symbology": None}]
            assert len(entry["seals"]) == 1 and ids.SEAL_RE.fullmatch(entry["seals"][0])
        elif kind == "plate":
            assert entry["tractor_plate"] != v["tractor_plate"]["text"]
            assert len(entry["tractor_plate"]) == len(v["tractor_plate"]["text"])
    assert seen == set(MISMATCH_KINDS)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"vehicles": 0},
        {"fps": 0.0},
        {"gap_s": -1.0},
        {"gap_s": None},
        {"rate_per_day": 0.0},
        {"night_share": 1.5},
        {"mismatch_share": -0.1},
        {"width": 32},
    ],
)
def test_bad_requests_raise_simulation_error(kwargs: dict) -> None:
    args = {"vehicles": 3, "seed": 1} | kwargs
    with pytest.raises(SimulationError):
        plan_lane(**args)
