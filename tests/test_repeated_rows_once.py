"""Passes over a table's rows that an AICB file (each micro-batch's rows written ``ga``
times) made cost once per row, now cheaper: the reader's line numbering, the policy layout
when no rule can change a row, the placeholder count shared by the planner and the report,
and the pipeline structure's message ids per (phase, chunk). Each is compared with the code
it replaced (kept here as the reference) or with numbers derived by hand."""
from __future__ import annotations

import dataclasses

import pytest

from simulator.engine import policy
from simulator.engine.direct import _build
from simulator.engine.messages import has_consumer, source
from simulator.engine.schedule import SCHEDULES, build_schedule
from simulator.readers.workload import _lines, read_workload_text
from simulator.workload import NO_COMM, Comm, Group, Op, Phase, Row, Workload, placeholder_rows

HEADER = "HYBRID_TRANSFORMER_FWD_IN_BCKWD model_parallel_NPU_group: 2 ep: 1 pp: 1 ga: 1"
ROW = "layer{} -1 {} ALLREDUCE 1024 2 ALLGATHER 2048 3 REDUCESCATTER 4096 4"


def _numbered_before(text: str) -> list[tuple[int, str]]:
    # the reader's numbering before (every line tested in Python)
    return [(n + 1, ln) for n, ln in enumerate(_lines(text)) if ln.strip()]


@pytest.mark.parametrize("tail", ["", "\n", "\n\n", "\n  \n", "\r\n"])
@pytest.mark.parametrize("middle", ["", "\n", "\n \t \n"])
def test_rows_keep_their_line_numbers(tail, middle):
    lines = [HEADER, "3", ROW.format(0, 10), ROW.format(1, 11)]
    text = "\n".join(lines) + middle + "\n" + ROW.format(2, 12) + tail
    wl = read_workload_text(text)
    blank = middle.count("\n")      # blank lines before the last row
    # by hand: rows on lines 3 and 4, the last after the blank lines
    assert [r.line for r in wl.rows] == [3, 4, 5 + blank]
    assert [r.fwd_ns for r in wl.rows] == [10, 11, 12]
    numbered = [(r.line, t) for r, t in zip(wl.rows, [ROW.format(i, 10 + i) for i in range(3)])]
    assert numbered == _numbered_before(text)[2:]


def _layout_rows_before(workload: Workload, rows: list, rules, lbl) -> list:
    """policy.layout's loop over the rows before it was skipped: the mechanism replaced."""
    n, out = len(workload.rows), []
    for i, row in enumerate(rows):
        row_rules = rules
        if workload.policy == "HYBRID_CUSTOMIZED" and row.policy in policy.POLICY_RULES:
            row_rules = policy.rules_for(row.policy)
        fwd, ig, wg = row.fwd, row.ig, row.wg
        if "fwd" not in row_rules.issues:
            fwd = NO_COMM
        if "ig" not in row_rules.issues or rules.forward_only:
            ig = NO_COMM
        if "wg" not in row_rules.issues or rules.forward_only:
            wg = NO_COMM
        if rules.skip_row0_ig_comm and i == 0:
            ig = NO_COMM
        if rules.dlrm:
            if fwd.op is not Op.ALLTOALL:
                fwd = NO_COMM
            if i > 0:
                ig = NO_COMM
            elif lbl is None or not 0 <= lbl + 1 < n:
                ig = NO_COMM
        changes: dict = {}
        if (fwd, ig, wg) != (row.fwd, row.ig, row.wg):
            changes.update(fwd=fwd, ig=ig, wg=wg)
        if rules.micro:
            changes.update(fwd_ns=0, ig_ns=0, wg_ns=0)
        if rules.wg_first and i == 0 and row.ig_ns:
            changes.update(ig_ns=0)
        out.append(dataclasses.replace(row, **changes) if changes else row)
    return out


def _table(policy_word: str) -> Workload:
    comm = Comm(Op.ALLREDUCE, Group.TP, 1 << 20)
    a2a = Comm(Op.ALLTOALL, Group.EP, 1 << 16)
    rows = tuple(Row(f"r{i}", 5 + i, a2a if i % 2 else comm, 7, comm, 9, comm, 0, line=3 + i,
                     policy="DATA" if i == 1 else "")
                 for i in range(6))
    return Workload(path="t.txt", policy=policy_word, tp=2, ep=2, all_gpus=16, rows=rows,
                    dlrm_last_bottom_layer=1 if "DLRM" in policy_word else None)


@pytest.mark.parametrize("word", sorted(policy.POLICY_RULES))
@pytest.mark.parametrize("compat", policy.COMPATS)
def test_layout_rows_are_the_per_row_loops(word, compat):
    wl = _table(word)
    lay = policy.layout(wl, compat, 16, 8)
    rules = policy.rules_for(word)
    replayed, _, _, _ = policy.REPLAYS[policy.resolve_compat(wl, compat)](
        wl, rules, 16, 8, [])
    assert list(lay.workload.rows) == _layout_rows_before(wl, replayed, rules,
                                                          wl.dlrm_last_bottom_layer)


def test_layout_keeps_the_rows_tuple_where_nothing_changes():
    wl = _table("HYBRID_TRANSFORMER_FWD_IN_BCKWD")    # AICB's: every collective issued
    assert policy.layout(wl, "simai", 16, 8).workload.rows is wl.rows
    micro = _table("MICRO")
    assert policy.layout(micro, "simai", 16, 8).workload.rows[0].fwd_ns == 0


def test_placeholder_rows_by_hand():
    def row(fwd, ig, wg):
        return Row("r", fwd, NO_COMM, ig, NO_COMM, wg, NO_COMM, 0)
    rows = (row(1, 1, 1), row(0, 0, 0), row(1, 2, 1), row(5, 5, 5), row(1, 0, 1))
    assert placeholder_rows(rows) == 3        # rows 0, 1, 4
    assert placeholder_rows(rows) == 3        # the same tuple again: the kept answer
    assert placeholder_rows(rows[:2]) == 2    # another tuple: counted
    assert placeholder_rows(list(rows)) == 3  # a list is counted (and not kept)
    assert placeholder_rows(()) == 0


@pytest.mark.parametrize("name", sorted(SCHEDULES))
@pytest.mark.parametrize("pp,chunks,ga", [(1, 1, 4), (4, 1, 8), (4, 2, 8), (3, 1, 5),
                                          (8, 1, 32), (2, 3, 6)])
def test_structure_message_ids_as_each_pass_computed_them(name, pp, chunks, ga):
    if name == "interleaved" and ga % pp:
        pytest.skip("interleaved needs ga a multiple of pp")
    if name != "interleaved" and chunks > 1:
        pytest.skip("chunks are the interleaved schedule's")
    schedule = build_schedule(name, pp, ga, chunks)

    def mid(phase, mb, chunk, sender):     # the id layout the structure documents
        return (((phase is Phase.IG) * chunks + chunk) * pp + sender) * ga + mb
    st = _build(schedule, pp, chunks, ga, (0,) * ga, [[] for _ in range(pp)],
                [[] for _ in range(pp)], 1)
    for s in range(pp):
        for (phase, mb, chunk), (_, _, recv, send_q, send_id) in zip(schedule[s],
                                                                      st.passes[s]):
            src = source(phase, mb, chunk, s, pp, chunks)
            want_recv = -1 if src is None else mid(src[0], src[1], src[2], src[3].of(s, pp))
            assert recv == want_recv
            if has_consumer(phase, chunk, s, pp, chunks):
                assert (send_q, send_id) == (0 if phase is Phase.FWD else 1,
                                             mid(phase, mb, chunk, s))
            else:
                assert (send_q, send_id) == (-1, -1)
            if recv >= 0:
                assert st.receiver[recv] == s
