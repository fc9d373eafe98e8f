"""Topology YAML: presets, the graph and its routes, and errors that name file, line and key."""
import textwrap

import pytest

from simulator.errors import InputError
from simulator.topology import Topology, load_spec, presets, read_spec

PRESETS = ("dgx-h100", "h200x2", "hgx-h200", "dgx-a100", "h800-roce", "fat-tree-h100")

SMALL = """\
name: small
gpus_per_server: 2
servers: 2
scale_up: {type: nvswitch, bandwidth: 100GB/s, efficiency: 1}
nics: {per: gpu, count: 1, bandwidth: 80Gbit/s, latency: 1us, efficiency: 1}
fabric: {type: rail-optimized, servers_per_leaf: 1, leaf_latency: 2us, spine_latency: 3us}
"""


def write(tmp_path, text, name="t.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def error_of(tmp_path, text) -> str:
    path = write(tmp_path, text)
    with pytest.raises(InputError) as exc:
        Topology(read_spec(path))
    return str(exc.value)


@pytest.mark.parametrize("name", PRESETS)
def test_presets_load_and_say_where_their_figures_come_from(name):
    assert name in presets()
    spec = load_spec(name)
    assert spec.scale_up.bandwidth_gbps > 0 and spec.gpus_per_server >= 2
    text = open(spec.source).read()
    assert text.startswith(f"# {name}:") and "Sources of the figures" in text
    Topology(spec, spec.servers or 2 if spec.fabric else 1)


def test_h200x2_is_two_gpus_on_18_nvlinks():
    topo = Topology(load_spec("h200x2"))
    assert topo.num_gpus == 2 and topo.spec.nics is None
    (link,) = topo.route(0, 1)
    assert link == ("gpu0", "gpu1") and topo.links[link].bandwidth == pytest.approx(478)
    with pytest.raises(InputError, match="no fabric"):
        Topology(load_spec("h200x2"), servers=2)


def test_preset_size_suffix_and_auto_servers():
    assert load_spec("fat-tree-h100:256").servers == 32
    assert load_spec("fat-tree-h100").servers == 128
    assert load_spec("dgx-h100").servers is None          # auto: as many as the job needs
    with pytest.raises(InputError, match="do not fill whole servers"):
        load_spec("dgx-h100:12")
    with pytest.raises(InputError, match="unknown topology 'nope'.*presets: .*dgx-h100"):
        load_spec("nope")


def test_graph_nodes_links_and_routes(tmp_path):
    topo = Topology(read_spec(write(tmp_path, SMALL)))
    g = topo.graph
    assert sum(1 for _, d in g.nodes(data=True) if d["kind"] == "gpu") == 4
    assert {"s0.nvsw", "s1.nic0", "pod0.leaf1", "pod1.leaf0", "spine"} <= set(g.nodes)
    # every physical link is two directed edges with its own bandwidth
    assert g.edges["s0.nic0", "pod0.leaf0"]["bandwidth"] == pytest.approx(10.0)
    assert g.edges["pod0.leaf0", "s0.nic0"]["bandwidth"] == pytest.approx(10.0)
    # inside a server: through the NVSwitch
    assert topo.route(0, 1) == (("gpu0", "s0.nvsw"), ("s0.nvsw", "gpu1"))
    # across servers on one rail: own NIC, rail leaf, spine (servers under different leaves)
    assert topo.route(1, 3) == (("gpu1", "s0.nic1"), ("s0.nic1", "pod0.leaf1"),
                                ("pod0.leaf1", "spine"), ("spine", "pod1.leaf1"),
                                ("pod1.leaf1", "s1.nic1"), ("s1.nic1", "gpu3"))
    # to another rail's GPU: stay on the sender's rail, then NVLink on the far side
    assert topo.route(0, 3)[-3:] == (("s1.nic0", "gpu2"), ("gpu2", "s1.nvsw"),
                                     ("s1.nvsw", "gpu3"))
    # wire latency: 1 us cable + 2 us leaf + 3 us spine + 2 us leaf + 1 us cable
    assert topo.path_latency_ns(topo.route(1, 3)) == 9_000
    caps = topo.capacities()
    assert caps[("gpu0", "s0.nvsw")] == pytest.approx(100.0)


def test_oversubscription_narrows_leaf_uplinks(tmp_path):
    text = SMALL.replace("servers_per_leaf: 1,", "servers_per_leaf: 1, oversubscription: 4,")
    topo = Topology(read_spec(write(tmp_path, text)))
    # one server per leaf: 10 GB/s of NICs below, 10 / 4 above
    assert topo.links[("pod0.leaf0", "spine")].bandwidth == pytest.approx(2.5)


def test_nics_shared_per_server(tmp_path):
    text = SMALL.replace("nics: {per: gpu, count: 1,", "nics: {per: server, count: 1,")
    topo = Topology(read_spec(write(tmp_path, text)))
    assert topo.nic_of(0) == topo.nic_of(1) == 0
    # GPU 1 reaches the shared NIC through GPU 0 (PCIe of GPU 0's switch) over NVLink first
    assert topo.route(1, 2)[:3] == (("gpu1", "s0.nvsw"), ("s0.nvsw", "gpu0"),
                                    ("gpu0", "s0.nic0"))


def test_placement_permutation(tmp_path):
    text = SMALL + "placement: {ranks: [0, 2, 1, 3]}\n"
    topo = Topology(read_spec(write(tmp_path, text)))
    assert [topo.gpu_of_rank(r) for r in range(4)] == [0, 2, 1, 3]


# -- errors name the file, the line and the key --------------------------------------------
def test_unknown_key_with_line_and_suggestion(tmp_path):
    msg = error_of(tmp_path, SMALL.replace("fabric:", "fabrik:"))
    assert msg.startswith(f"{tmp_path / 't.yaml'}:6: fabrik: unknown key")
    assert "did you mean 'fabric'" in msg


def test_nested_unknown_key(tmp_path):
    text = """\
    name: x
    gpus_per_server: 2
    scale_up:
      type: nvswitch
      bandwith: 100GB/s
    """
    msg = error_of(tmp_path, text)
    assert ":5: scale_up.bandwith: unknown key in scale_up keys (did you mean 'bandwidth'?)" in msg


def test_missing_bandwidth(tmp_path):
    text = """\
    name: x
    gpus_per_server: 2
    scale_up:
      type: nvswitch
      latency: 1us
    """
    assert ":3: scale_up.bandwidth: missing (per GPU per direction" in error_of(tmp_path, text)
    text2 = SMALL.replace("bandwidth: 80Gbit/s, ", "")
    assert ":5: nics.bandwidth: missing" in error_of(tmp_path, text2)


def test_bad_values_point_at_their_line(tmp_path):
    assert ":4: scale_up.bandwidth: unknown bandwidth unit" in error_of(
        tmp_path, SMALL.replace("100GB/s", "100furlongs"))
    assert ":4: scale_up.efficiency: must be in (0, 1]" in error_of(
        tmp_path, SMALL.replace("efficiency: 1}\nnics", "efficiency: 1.5}\nnics"))
    assert ":2: gpus_per_server: expected a whole number" in error_of(
        tmp_path, SMALL.replace("gpus_per_server: 2", "gpus_per_server: two"))
    assert ":3: servers: duplicate key (first at line 2)" in error_of(tmp_path, "name: a\nservers: 1\nservers: 2\n")
    assert ":2: not valid YAML: mapping values are not allowed" in error_of(
        tmp_path, "name: a\nservers: 1: 2\n")


def test_gpus_not_reachable(tmp_path):
    # four GPUs, but links join only 0-1 and 2-3
    text = """\
    name: islands
    gpus_per_server: 4
    servers: 1
    scale_up:
      type: direct
      bandwidth: 100GB/s
      links: [[0, 1], [2, 3]]
    """
    msg = error_of(tmp_path, text)
    assert "GPUs not reachable over NVLink: local GPU(s) [2, 3]" in msg
    assert "scale_up.links" in msg
    # several servers but nothing between them
    text2 = SMALL.replace("servers: 2", "servers: 3").split("nics:")[0]
    assert ":3: servers: GPUs on different servers are not reachable" in error_of(tmp_path, text2)


def test_placement_errors(tmp_path):
    msg = error_of(tmp_path, SMALL + "placement: {ranks: [0, 1, 1]}\n")
    assert ":7: placement.ranks[2]: GPU 1 is given to ranks 1 and 2" in msg
    msg = error_of(tmp_path, SMALL + "placement: {ranks: [0, 9]}\n")
    assert "placement.ranks[1]: GPU 9 does not exist" in msg


def test_direct_links_split_the_gpu_bandwidth(tmp_path):
    text = """\
    name: mesh
    gpus_per_server: 4
    servers: 1
    scale_up: {type: direct, bandwidth: 300GB/s}
    """
    topo = Topology(read_spec(write(tmp_path, text)))
    # full mesh by default: 3 links per GPU, 100 GB/s each
    assert topo.links[("gpu0", "gpu3")].bandwidth == pytest.approx(100)
    assert topo.route(2, 1) == (("gpu2", "gpu1"),)


def test_efficiency_per_group_size(tmp_path):
    text = SMALL.replace("efficiency: 1}\nnics",
                         "efficiency: {default: 1, all_gather: {2: 0.5, 8: 0.8}}}\nnics")
    su = read_spec(write(tmp_path, text)).scale_up
    # linear in log2(ranks) between the given sizes, the nearest one outside them
    assert su.efficiency_for("all_gather", 2) == pytest.approx(0.5)
    assert su.efficiency_for("all_gather", 4) == pytest.approx(0.65)
    assert su.efficiency_for("all_gather", 64) == pytest.approx(0.8)
    assert su.efficiency_for("all_reduce", 4) == 1
    bad = SMALL.replace("efficiency: 1}\nnics", "efficiency: {default: 1, all_gather: {1: 0.5}}}\nnics")
    assert "scale_up.efficiency.all_gather: group sizes are whole numbers >= 2" in error_of(
        tmp_path, bad)
