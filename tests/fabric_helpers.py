"""Shared by the fabric tests: the NCCL parameters without latencies or buffers that the
hand-derived fabric tests (test_fabric*.py) price on (every time is bytes over a link's
rate), and the fabric variants the shortcut tests (test_nccl_symmetric.py,
test_fabric_speed.py) compare against their full plans on."""
from simulator.topology import load_spec, presets
from simulator.topology.overrides import apply_fabric_overrides, apply_overrides

ZERO_NCCL = """nccl:
  call_overhead: 0us
  base_latency: {ring: [0, 0, 0], tree: [0, 0, 0], p2p: [0, 0, 0]}
  hop_latency:
    nvlink: {ring: [0, 0, 0], tree: [0, 0, 0], p2p: [0, 0, 0]}
    net: {ring: [0, 0, 0], tree: [0, 0, 0], p2p: [0, 0, 0]}
  protocol_bandwidth: {LL: 0.5, LL128: 0.9, Simple: 1.0}
  buffer_size: 0
"""


def fabric_variants():
    """(name, spec): every preset with a fabric, then dgx-h100 as a fat tree, with hashed
    ECMP (oversubscribed, and on small leaves), with 4 NICs per server and on small leaves."""
    for name in presets():
        spec = load_spec(name)
        if spec.fabric is not None:
            yield name, spec
    h100 = load_spec("dgx-h100")
    yield "fat-tree", apply_fabric_overrides(h100, fabric_type="fat-tree")
    yield "hash", apply_fabric_overrides(h100, ecmp="hash:7", oversubscription=2)
    yield "hash, small leaves", apply_fabric_overrides(h100, ecmp="hash:3", servers_per_leaf=3)
    yield "4 nics", apply_overrides(h100, nics_per_server=4)
    yield "small leaves", apply_fabric_overrides(h100, servers_per_leaf=2)
