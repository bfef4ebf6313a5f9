import json

import pytest

from thpbench.costs import CostModel, bandwidth_ns_per_page, first_touch_ns, machine


def test_every_cost_names_its_source():
    cm = CostModel.published()
    assert set(cm.sources) == set(cm.as_dict())
    assert all(v > 0 for v in cm.as_dict().values())


def test_replace_validates_and_records_the_change():
    cm = CostModel.published().replace(fault_4k_ns=100)
    assert cm.fault_4k_ns == 100 and cm.sources["fault_4k_ns"] == "set by the user"
    with pytest.raises(ValueError, match="unknown cost"):
        cm.replace(fault_ns=1)
    with pytest.raises(ValueError, match="non-negative"):
        cm.replace(copy_page_ns=-1)
    with pytest.raises(ValueError, match="non-negative"):
        cm.replace(copy_page_ns="fast")


def test_calibration_file_round_trip(tmp_path):
    data = {"date": "2026-11-26", "machine": {"host": "h", "cpu": "c", "kernel": "6.18", "cpus": 2},
            "costs": {"fault_4k_ns": 1234.5, "clear_page_ns": 50.0, "not_a_cost": 1}}
    p = tmp_path / "cal.json"
    p.write_text(json.dumps(data))
    cm = CostModel.from_calibration(p)
    assert cm.fault_4k_ns == 1234.5 and cm.clear_page_ns == 50.0
    assert "measured on h" in cm.sources["fault_4k_ns"]
    assert cm.copy_page_ns == CostModel.published().copy_page_ns


def test_first_touch_measures_the_real_kernel():
    r = first_touch_ns(8 << 20, huge=False, repeat=1)
    assert r["ns_per_page"] > 0 and r["huge_share"] == 0.0
    h = first_touch_ns(8 << 20, huge=True, repeat=1)
    assert 0.0 <= h["huge_share"] <= 1.0 and h["ns_per_fault"] > 0
    with pytest.raises(ValueError, match="multiple of 2 MiB"):
        first_touch_ns(4096)


def test_bandwidth_and_machine():
    bw = bandwidth_ns_per_page(4 << 20, repeat=1)
    assert bw["copy_page_ns"] > 0 and bw["clear_page_ns"] > 0
    assert {"host", "cpu", "kernel", "cpus", "thp_enabled"} <= set(machine())


def test_default_honours_the_pinned_calibration(monkeypatch, tmp_path):
    monkeypatch.setenv("THPBENCH_CALIBRATION", "published")
    assert CostModel.default() == CostModel.published()
    data = {"date": "d", "machine": {"host": "h", "cpu": "c", "kernel": "k", "cpus": 1},
            "costs": {"fault_4k_ns": 7.0}}
    (tmp_path / "x.json").write_text(json.dumps(data))
    monkeypatch.setenv("THPBENCH_CALIBRATION", str(tmp_path / "x.json"))
    assert CostModel.default().fault_4k_ns == 7.0


def test_the_reference_calibration_is_shipped_and_pinned():
    import os
    from pathlib import Path
    ref = Path(os.environ["THPBENCH_CALIBRATION"])     # set by the root conftest.py
    assert ref.exists() and ref.parent.name == "calibration"
    assert CostModel.default() == CostModel.from_calibration(ref)
