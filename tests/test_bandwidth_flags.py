"""Bandwidth flags and keys are named by the quantity and take a unit: `--nic-bw 400Gbit/s`.
A bare number is GB/s, with a warning when the part could not carry it; the old `*gbps`
spellings still work with a deprecation warning; the header prints both units."""
import json
import subprocess
import sys
import warnings

import pytest

from repo_paths import ROOT, WORKLOADS
from simulator.errors import SimulationWarning
from simulator.sweep.spec import spec_from_dict
from simulator.units import format_bandwidth, implausible_bandwidth

SEED = str(WORKLOADS / "seed004_moe_tp8_ep4_pp4_128gpus.txt")


def collsim(*args):
    return subprocess.run([sys.executable, "-m", "simulator", *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)


def warnings_of(p) -> list[str]:
    return [ln for ln in p.stderr.splitlines() if ln.startswith("warning:")]


def test_plausibility_limits_by_part():
    # 100 GB/s = 800 Gbit/s is the fastest NIC shipped; NVLink 5 is 900 GB/s per GPU
    assert implausible_bandwidth("100", 100.0, "nic", "--nic-bw") is None
    assert "--nic-bw 400" in implausible_bandwidth("400", 400.0, "nic", "--nic-bw")
    assert implausible_bandwidth("400Gbit/s", 50.0, "nic", "--nic-bw") is None
    # an explicit unit is taken as meant, even when large
    assert implausible_bandwidth("3200Gbit/s", 400.0, "nic", "--nic-bw") is None
    assert implausible_bandwidth("2000", 2000.0, "nvlink", "--nvlink-bw") is None
    assert implausible_bandwidth("2001", 2001.0, "nvlink", "--nvlink-bw") is not None
    # 50 GB/s is 50 * 8 = 400 Gbit/s
    assert format_bandwidth(50.0) == "50 GB/s (400 Gbit/s)"
    assert format_bandwidth(450.0) == "450 GB/s (3600 Gbit/s)"


def test_nic_bw_with_units_and_header_both_ways():
    a = collsim("simulate", SEED, "--nic-bw", "400Gbit/s")
    b = collsim("simulate", SEED, "--nic-bw", "50GB/s")
    assert a.returncode == b.returncode == 0, a.stderr
    assert a.stdout == b.stdout
    assert not any("bandwidth" in w or "deprecated" in w for w in warnings_of(a))
    header = [ln for ln in a.stdout.splitlines() if ln.startswith("bandwidth")]
    assert header == ["bandwidth    NVLink 450 GB/s (3600 Gbit/s) per GPU per direction; "
                      "8 NIC(s) per server of 50 GB/s (400 Gbit/s) each (8 GPUs)"]
    # the cluster's name follows the flags: 200 Gbit/s NICs are not '8x400g'
    c = collsim("simulate", SEED, "--nic-bw", "200Gbit/s", "--cost-model", "simai")
    assert "cluster=h100-8x200g" in c.stdout and "25 GB/s (200 Gbit/s)" in c.stdout


def test_bare_number_implausible_for_a_nic_warns():
    p = collsim("simulate", SEED, "--nic-bw", "400", "--json", "-")
    assert p.returncode == 0
    said = [w for w in warnings_of(p) if "a bare number is GB/s" in w]
    assert len(said) == 1 and "400 GB/s (3200 Gbit/s)" in said[0] and "400Gbit/s" in said[0]
    # it is still 400 GB/s (as asked), faster than the default 50
    fast = json.loads(p.stdout)["iteration_time_us"]
    default = json.loads(collsim("simulate", SEED, "--json", "-").stdout)["iteration_time_us"]
    assert fast < default
    q = collsim("simulate", SEED, "--nvlink-bw", "3600", "--quiet")
    assert any("more than NVLink per GPU carries" in w for w in warnings_of(q))


def test_old_spellings_are_deprecated_aliases():
    old = collsim("simulate", SEED, "--nic-gbps", "25", "--nvlink-gbps", "900", "--json", "-")
    new = collsim("simulate", SEED, "--nic-bw", "25", "--nvlink-bw", "900", "--json", "-")
    assert old.returncode == new.returncode == 0, old.stderr
    assert json.loads(old.stdout) == json.loads(new.stdout)
    dep = [w for w in warnings_of(old) if "deprecated" in w]
    assert len(dep) == 2 and "use --nic-bw" in " ".join(dep) and "use --nvlink-bw" in " ".join(dep)
    assert not [w for w in warnings_of(new) if "deprecated" in w]
    assert "--nic-gbps" not in collsim("simulate", "--help").stdout


def test_sweep_keys_take_units_and_old_names_warn():
    base = {"model": "mixtral-8x7b", "gpus": 64, "global_batch": 64, "tp": 4, "ep": 8}
    spec = spec_from_dict({"base": base, "grid": {"nic_bw": ["400Gbit/s", "25GB/s", 12.5]}})
    assert [p["nic_bw"] for p in spec.points] == [50.0, 25.0, 12.5]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        old = spec_from_dict({"base": {**base, "nic_gbps": 25}})
    assert old.points[0]["nic_bw"] == 25.0 and "nic_gbps" not in old.points[0]
    assert any("'nic_gbps' is deprecated" in str(w.message) and "'nic_bw'" in str(w.message)
               for w in caught if issubclass(w.category, SimulationWarning))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        spec_from_dict({"base": {**base, "nic_bw": 400}})
    assert any("a bare number is GB/s" in str(w.message) for w in caught)
    with pytest.raises(Exception, match="unknown bandwidth unit"):
        spec_from_dict({"base": {**base, "nic_bw": "400furlongs"}})
