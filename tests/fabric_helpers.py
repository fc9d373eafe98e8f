"""The NCCL parameters without latencies or buffers that the hand-derived fabric tests
(test_fabric*.py) price on: every time is bytes over a link's rate."""

ZERO_NCCL = """nccl:
  call_overhead: 0us
  base_latency: {ring: [0, 0, 0], tree: [0, 0, 0], p2p: [0, 0, 0]}
  hop_latency:
    nvlink: {ring: [0, 0, 0], tree: [0, 0, 0], p2p: [0, 0, 0]}
    net: {ring: [0, 0, 0], tree: [0, 0, 0], p2p: [0, 0, 0]}
  protocol_bandwidth: {LL: 0.5, LL128: 0.9, Simple: 1.0}
  buffer_size: 0
"""
