"""TopologyView.link_index without building every link (what the fabric model uses at
scale): every id, capacity and NVLink flag equals the full Topology's, on every preset and
the fabric layouts the options make, looked up one by one before anything builds the full
table (the lazy way), and a link the topology lacks is refused."""
import pytest

from simulator.topology import Topology, load_spec, presets
from simulator.topology.overrides import apply_fabric_overrides, apply_overrides
from simulator.topology.view import TopologyView


def _variants():
    for name in presets():
        yield name, load_spec(name)
    h100 = load_spec("dgx-h100")
    yield "fat-tree", apply_fabric_overrides(h100, fabric_type="fat-tree", servers_per_leaf=3)
    yield "hash", apply_fabric_overrides(h100, ecmp="hash:7", oversubscription=2,
                                         servers_per_leaf=2)
    yield "4 nics", apply_overrides(h100, nics_per_server=4)
    yield "16 nics", apply_overrides(h100, nics_per_server=16)
    yield "small leaves", apply_fabric_overrides(h100, servers_per_leaf=2)


@pytest.mark.parametrize("name,spec", list(_variants()), ids=lambda v: v if isinstance(v, str)
                         else "")
def test_lazy_link_index_equals_the_full_one(name, spec):
    for servers in ([1] if spec.fabric is None else [1, 2, 7] if spec.servers is None
                    else [min(spec.servers, 7)]):
        full = Topology(spec, servers)
        view = TopologyView(spec, servers)
        f_table, f_caps, *f_rest = full.link_index()
        v_table, v_caps, *v_rest = view.link_index()
        # one lookup at a time, in reverse order (nothing may depend on the order)
        for lid in reversed(list(full.links)):
            assert v_table[lid] == f_table[lid], (name, servers, lid)
        assert view._full is None                                  # built nothing so far
        assert v_caps.tolist() == f_caps.tolist()
        assert v_rest[-1].tolist() == f_rest[-1].tolist()        # NVLink flags
        assert v_rest[:-1] == f_rest[:-1]                          # per server, pod, ...
        assert v_table == f_table and len(v_table) == len(f_table)


def test_lazy_link_index_builds_nothing_and_refuses_missing_links():
    spec = apply_fabric_overrides(load_spec("dgx-h100"), servers_per_leaf=4)
    view = TopologyView(spec, 4096)          # 32,768 GPUs, 1024 pods of 4 servers
    table, caps, per_server, per_pod, spl, exact, nvlink = view.link_index()
    full_small = Topology(spec, 9)           # 3 pods: server 8 and pod 2 are laid out alike
    small_table = full_small.link_index()[0]
    # server 4093 (pod 1023) is laid out like server 5 (pod 1): same place in its block
    assert table[("s4093.nic3", "pod1023.leaf3")] - 4093 * per_server == \
        small_table[("s5.nic3", "pod1.leaf3")] - 5 * per_server
    assert table[("pod1023.leaf3", "spine")] - 4096 * per_server - 1023 * per_pod == \
        small_table[("pod2.leaf3", "spine")] - 9 * per_server - 2 * per_pod
    assert len(caps) == 4096 * per_server + 1024 * per_pod
    assert view._full is None                # no link was built to answer
    for missing in (("s3.nic3", "pod1.leaf3"), ("gpu0", "gpu9"), ("s4096.nic0", "pod1024.leaf0"),
                    ("gpu17", "s3.nvsw"), ("gpu9", "s0.nvsw"), ("pod1024.leaf0", "spine"),
                    ("pod3.leaf0", "spine2"), ("x", "y"), ("gpu-1", "s0.nvsw")):
        with pytest.raises(KeyError):
            table[missing]
