"""Rank classes replayed together: one set of numpy vectors per pipeline stage.

Ranks that differ only in their compute (stragglers) or their NIC (degraded links) can split a
stage into thousands of classes (a random 1% of slow ranks makes nearly every rank its own).
The row-level engine (:mod:`.detailed`) gives each class a simpy process and a rendezvous per
collective; this one replays all classes of a stage at once, the same semantics as array
arithmetic in program order:

* a compute phase adds each class's own time to its clock;
* a collective starts when every member class is ready (its clock, and its stream free
  after the previous collective on that stream), a max-reduction over the classes that meet
  (classes meet by the multiset of classes in their group, as in the row-level engine), and
  ends for all of them ``comm + update`` later; blocking ones move the clock to the end,
  weight-gradient ones only the stream;
* a pipeline pass first waits for its message from the neighbouring stage's partner class
  (a gather by partner index); stages are advanced in any order their messages allow.

Program order is a valid evaluation order because a collective's start depends only on its
members' earlier history, so the numbers are exactly the row-level engine's (tested on every
straggler and degraded-NIC case). Cost: rows x passes x a few vector operations per stage,
independent of the number of classes up to the vectors' length; no Python object per class
during the replay.
"""
from __future__ import annotations

import numpy as np

from ..parallel import stage_placements
from ..result import BREAKDOWN_GROUPS, StageResult
from ..workload import ROW_GROUPS, Group, Op, Phase
from .classes import class_colours, meeting_ids
from .detailed import scale_rows
from .messages import Direction
from .policy import COMM_OF_TAG
from .ranks import RankAttributes, rank_attributes
from .stage import StagePass, drive, queue_send, stage_passes
from .replay import STREAMS

_PP = BREAKDOWN_GROUPS.index("PP")
_STREAM_KIND = [BREAKDOWN_GROUPS.index(g.value) for g in STREAMS]
_ROW_KIND_INDEX = {g: i for i, g in enumerate(ROW_GROUPS)}


class _Meet:
    """Max over the classes of each meeting of one group kind, on one stage."""

    def __init__(self, ids: np.ndarray):
        n = len(ids)
        ids = np.unique(ids, return_inverse=True)[1].ravel()   # 0..m-1 on this stage
        m = int(ids.max()) + 1 if n else 0
        self.mode = "all" if m == 1 else "each" if m == n else "groups"
        if self.mode == "groups":
            self.order = np.argsort(ids, kind="stable")
            sorted_ids = ids[self.order]
            self.bounds = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])
            self.ids = ids

    def max(self, ready: np.ndarray) -> np.ndarray:
        if self.mode == "each":
            return ready
        if self.mode == "all":
            return np.full_like(ready, ready.max())
        return np.maximum.reduceat(ready[self.order], self.bounds)[self.ids]

    def reduce(self, values: np.ndarray, ufunc) -> np.ndarray:
        """ufunc-reduction over each meeting, broadcast back to its classes."""
        if self.mode == "each":
            return values
        if self.mode == "all":
            return np.full_like(values, ufunc.reduce(values))
        return ufunc.reduceat(values[self.order], self.bounds)[self.ids]


class _StageState:
    """Clocks, streams and tallies of the classes of one stage (vectors over them)."""

    def __init__(self, n: int):
        z = lambda: np.zeros(n, dtype=np.int64)  # noqa: E731
        self.t = z()
        self.stream_end = [z() for _ in STREAMS]
        self.wg_end: dict = {}
        self.send_free = {Direction.NEXT: z(), Direction.PREV: z()}
        self.compute = z()
        self.recompute = z()
        self.exposed = [z() for _ in BREAKDOWN_GROUPS]
        self.bubble = z()
        self.row_exposed: dict = {}
        self.events = 0
        self.pos = 0            # passes done (progress of the stage driver)
        self.done = False


class ClassReplay:
    """All rank classes of one job, replayed as vectors per stage (see module docstring)."""

    def __init__(self, plan, stragglers, degraded):
        par = plan.par
        self.plan = plan
        colour, firsts, stages, class_attrs, gids = class_colours(
            par, rank_attributes(par.world, stragglers, degraded), RankAttributes())
        self.colour = colour
        self.example = firsts
        self.class_stage = stages
        self.attrs: list[RankAttributes] = class_attrs
        self.counts = np.bincount(colour)
        n_classes = len(firsts)
        self.n_classes = n_classes
        # per stage: its classes (global ids, ascending) and each class's local index
        self.members = [np.flatnonzero(stages == s) for s in range(par.pp)]
        self.local = np.empty(n_classes, dtype=np.int64)
        for idx in self.members:
            self.local[idx] = np.arange(len(idx))
        meet = {k: meeting_ids(colour, firsts, gids[k]) for k in ROW_GROUPS}
        self.meets = [[_Meet(meet[k][idx]) for k in ROW_GROUPS] for idx in self.members]
        # pipeline partners: the class of the same position one stage on / back
        sr, world = par.stage_ranks, par.world
        self.next_class = colour[(firsts + sr) % world]
        self.prev_class = colour[(firsts - sr) % world]
        self._build_rows(meet)

    # -- per-class pricing ---------------------------------------------------------------
    def _build_rows(self, meet) -> None:
        plan, par = self.plan, self.plan.par
        compute = np.array([a.compute_factor for a in self.attrs])
        nic = np.array([a.nic_factor for a in self.attrs])
        lat = np.array([a.extra_nic_latency_ns for a in self.attrs], dtype=np.int64)
        # the slowest NIC among each class's group (all classes of a meeting agree)
        worst: dict = {}
        for k in ROW_GROUPS:
            f = np.empty(self.n_classes)
            e = np.empty(self.n_classes, dtype=np.int64)
            for s, idx in enumerate(self.members):
                m = self.meets[s][_ROW_KIND_INDEX[k]]
                f[idx] = m.reduce(nic[idx], np.minimum)
                e[idx] = m.reduce(lat[idx], np.maximum)
            worst[k] = (f, e)
        models: dict = {}

        def model(factor: float, extra: int):
            if (factor, extra) not in models:
                models[(factor, extra)] = plan.cost_model.degraded(factor, extra)
            return models[(factor, extra)]

        pp_bytes = plan.workload.pp_comm_bytes
        # a class's pricing variant: compute factor, degraded kinds, degraded sends (the
        # per-class loop reads Python lists: no numpy scalar per class and field)
        stage_of = np.asarray(self.class_stage).astype(np.int64)
        # every class sends at its stage's price unless a NIC of its pair is degraded
        self.send_ns = {
            Direction.NEXT: np.array([st.send_next_ns for st in plan.setups],
                                     dtype=np.int64)[stage_of],
            Direction.PREV: np.array([st.send_prev_ns for st in plan.setups],
                                     dtype=np.int64)[stage_of]}
        variants: dict = {}
        self.stage_variants: list[list[tuple]] = [[] for _ in range(par.pp)]
        stages, factors = stage_of.tolist(), compute.tolist()
        worst_lists = [(k, worst[k][0].tolist(), worst[k][1].tolist()) for k in ROW_GROUPS]
        nics, lats = nic.tolist(), lat.tolist()
        partners = (np.asarray(self.next_class).tolist(), np.asarray(self.prev_class).tolist())
        sends = pp_bytes and par.pp > 1
        variant_of: list[int] = []
        for c in range(self.n_classes):
            s = stages[c]
            by_model: dict = {}
            for k, f, e in worst_lists:
                fe = (f[c], e[c])
                if fe != (1.0, 0):
                    by_model.setdefault(fe, []).append(k)
            vkey = (s, factors[c], tuple(sorted((fe, tuple(ks))
                                                for fe, ks in by_model.items())))
            v = variants.get(vkey)
            if v is None:
                v = variants[vkey] = len(self.stage_variants[s])
                self.stage_variants[s].append(vkey)
            variant_of.append(v)
            if sends:
                for direction, partner in ((Direction.NEXT, partners[0][c]),
                                           (Direction.PREV, partners[1][c])):
                    nic_factor = min(nics[c], nics[partner])
                    extra_ns = max(lats[c], lats[partner])
                    if (nic_factor, extra_ns) == (1.0, 0):
                        continue
                    stage = s if direction is Direction.NEXT else (s - 1) % par.pp
                    self.send_ns[direction][c] = max(
                        model(nic_factor, extra_ns).collective_ns(Op.SENDRECV, pp_bytes, p)
                        for p in stage_placements(par, Group.PP, stage, plan.rank_map))
        self.variant = np.array(variant_of, dtype=np.int64)
        self._model = model
        self._rows_cache: dict = {}

    def _variant_rows(self, s: int, seq) -> list[list]:
        """The rows of one sequence on stage ``s`` as each pricing variant sees them."""
        plan = self.plan
        base = plan.setups[s].replayer.sequences[seq]
        per_variant = []
        for _, factor, degraded in self.stage_variants[s]:
            rows = base
            for (f, e), kinds in degraded:
                pricer = plan.pricers[s].with_cost(self._model(f, e))
                rows = [pricer.repriced(r, frozenset(kinds)) for r in rows]
            per_variant.append(scale_rows(rows, factor))
        return per_variant

    def _program(self, s: int, phase: Phase, seq) -> list[tuple]:
        """The policy's program of one pass (the row-level engine's, :mod:`.policy`), with
        each step's times as scalars where every class agrees, per-class vectors (indexed by
        local class) where they differ."""
        hit = self._rows_cache.get((s, phase, seq))
        if hit is not None:
            return hit
        from .policy import BLOCK, COMPUTE, ISSUE, SYNC, WAIT, WAIT_WG, pass_program, rules_for

        plan = self.plan
        rep = plan.setups[0].replayer
        base = plan.setups[s].replayer.sequences[seq]
        steps = pass_program(base, phase, rep.rules or rules_for(),
                             rep.dlrm_lbl, rep.seq_first.get(seq, -1))
        per_variant = self._variant_rows(s, seq)
        var = self.variant[self.members[s]]
        position = {id(r): i for i, r in enumerate(base)}

        def col(pos: int, fields: tuple):
            values = [sum(getattr(rows[pos], f) for f in fields) for rows in per_variant]
            if all(v == values[0] for v in values):
                return values[0]
            return np.array(values, dtype=np.int64)[var]

        out: list[tuple] = []   # ("C" | "B" | "I" | "W" | "G", ...) per step
        for step in steps:
            kind, row = step[0], step[1]
            pos = position[id(row)]
            if kind == COMPUTE:
                out.append(("C", col(pos, (f"{step[3]}_ns",)), step[5]))
            elif kind in (BLOCK, ISSUE):
                comm = ("fwd", "ig", "wg")[COMM_OF_TAG.get(step[5], 0)]
                cost = col(pos, (f"{comm}_comm_ns", "update_ns"))
                if kind == BLOCK:
                    out.append(("B", step[2], cost, row.key))
                else:
                    handle = step[6]
                    out.append(("I", step[2], cost, handle, handle[0] == "wg", row.key))
            elif kind == WAIT:
                out.append(("W", step[2], _STREAM_KIND[step[3]], row.key))
            elif kind == WAIT_WG:
                out.append(("G", row.key, _STREAM_KIND[row.wg_stream], row.key))
            elif kind == SYNC:
                out.append(("S", step[2], _STREAM_KIND[step[2]], row.key))
        self._rows_cache[(s, phase, seq)] = out
        return out

    # -- replay ----------------------------------------------------------------------------
    def _pass(self, s: int, st: _StageState, phase: Phase, seq) -> None:
        meets = self.meets[s]
        local: dict = {}
        row_exposed = st.row_exposed
        for step in self._program(s, phase, seq):
            kind = step[0]
            if kind == "C":
                ns = step[1]
                st.t = st.t + ns
                st.compute += ns
                if step[2]:
                    st.recompute += ns
            elif kind == "B" or kind == "I":
                stream, cost = step[1], step[2]
                ready = np.maximum(st.t, st.stream_end[stream])
                end = meets[stream].max(ready) + cost
                st.stream_end[stream] = end
                if kind == "B":
                    waited = end - st.t
                    st.exposed[_STREAM_KIND[stream]] += waited
                    _add(row_exposed, step[3], waited)
                    st.t = end
                elif step[4]:
                    st.wg_end[step[5]] = end
                else:
                    local[step[3]] = end
                st.events += 1
            elif kind == "S":   # until the stream is idle
                waited = np.maximum(st.stream_end[step[1]] - st.t, 0)
                st.exposed[step[2]] += waited
                _add(row_exposed, step[3], waited)
                st.t = st.t + waited
            else:   # "W": a non-blocking collective of this pass, "G": the row's last wg
                end = (local if kind == "W" else st.wg_end).get(step[1])
                if end is not None:
                    waited = np.maximum(end - st.t, 0)
                    st.exposed[step[2]] += waited
                    _add(row_exposed, step[3], waited)
                    st.t = st.t + waited
        st.events += 1

    def run(self) -> None:
        plan, par = self.plan, self.plan.par
        pp, chunks = par.pp, plan.chunks
        states = [_StageState(len(idx)) for idx in self.members]
        self.states = states
        sent: dict = {}   # (phase, mb, chunk, stage) -> (sent_at, arrive) over that stage
        # each stage walks its passes until it needs a message not sent yet (drive yields),
        # then the next stage runs; a round in which no stage moves is a deadlock
        drivers = {s: drive(stage_passes(plan.schedule[s], s, pp, chunks, plan.seg.mb_variant,
                                         plan.setups[s].head, plan.setups[s].tail),
                            _VectorStage(self, s, states[s], sent))
                   for s in range(pp)}
        while drivers:
            before = sum(st.pos for st in states)
            for s in list(drivers):
                try:
                    next(drivers[s])
                except StopIteration:
                    del drivers[s]
                    states[s].done = True
                    states[s].pos += 1
            if drivers and sum(st.pos for st in states) == before:
                raise RuntimeError("class replay deadlock: a stage waits for a message "
                                   "nobody sends")

    @staticmethod
    def _drain(st: _StageState) -> None:
        ends = np.stack([np.maximum(e, st.t) for e in st.stream_end])
        latest = np.argmax(ends, axis=0)            # first stream with the latest end
        last = ends[latest, np.arange(len(st.t))]
        extra = last - st.t
        for i in range(len(STREAMS)):
            st.exposed[_STREAM_KIND[i]] += np.where(latest == i, extra, 0)
        st.t = last

    # -- results ---------------------------------------------------------------------------
    def stage_results(self) -> list[StageResult]:
        """One StageResult per class, in class order, labelled as the row-level engine does."""
        from .simulate import class_attributes_text, class_label

        def ints(values) -> list[int]:
            # what int() of each element gives (truncation toward zero), as Python ints
            return np.asarray(values).astype(np.int64).tolist()

        # each stage's tallies as Python lists once, not a numpy scalar per class and field
        tallies = [(ints(st.t), ints(st.compute), ints(st.recompute),
                    [ints(e) for e in st.exposed], ints(st.bubble)) for st in self.states]
        stages, local = ints(self.class_stage), ints(self.local)
        counts, example = ints(self.counts), ints(self.example)
        texts: dict = {}   # a label's attributes part, per distinct attributes
        out = []
        for c in range(self.n_classes):
            s, i = stages[c], local[c]
            t, compute, recompute, exposed, bubble = tallies[s]
            res = StageResult(stage=s)
            res.end_ns = t[i]
            res.compute_ns = compute[i]
            res.recompute_ns = recompute[i]
            res.exposed_ns = {g: exposed[n][i] for n, g in enumerate(BREAKDOWN_GROUPS)}
            res.bubble_ns = bubble[i]
            res.rank_class = c
            res.ranks = counts[c]
            attrs = self.attrs[c]
            what = texts.get(attrs)
            if what is None:
                what = texts[attrs] = class_attributes_text(attrs)
            res.label = class_label(s, c, res.ranks, example[c], attrs, what)
            out.append(res)
        return out

    def row_exposed(self, c: int) -> dict:
        st, i = self.states[int(self.class_stage[c])], int(self.local[c])
        return {k: int(v[i]) if isinstance(v, np.ndarray) else int(v)
                for k, v in st.row_exposed.items()}

    @property
    def events(self) -> int:
        return sum(st.events * len(idx) for st, idx in zip(self.states, self.members))


class _VectorStage:
    """The class replay's executor of one stage's passes (:func:`.stage.drive`): every
    class of the stage at once; a pass whose message is not sent yet parks the stage."""

    def __init__(self, replay: ClassReplay, s: int, st: _StageState, sent: dict):
        self.replay = replay
        self.s = s
        self.st = st
        self.sent = sent
        self.pp = replay.plan.par.pp
        self.idx = replay.members[s]
        self.partner = {Direction.NEXT: replay.next_class[self.idx],
                        Direction.PREV: replay.prev_class[self.idx]}

    def receive(self, p: StagePass):
        r, st = p.receive, self.st
        assert r is not None   # the driver calls receive only for a pass that has one
        key = (r.phase, r.mb, r.chunk, r.sender_stage)
        msg = self.sent.get(key)
        while msg is None:
            yield None                      # parked until the sending stage has run
            msg = self.sent.get(key)
        at = self.replay.local[self.partner[r.sender]]
        sent_at, arrive = msg[0][at], msg[1][at]
        late = arrive > st.t
        if late.any():
            # split_wait on vectors: in flight from max(t, sent) is PP, before it bubble
            flight = np.maximum(st.t, sent_at)
            st.bubble += np.where(late, flight - st.t, 0)
            st.exposed[_PP] += np.where(late, arrive - flight, 0)
            st.t = np.maximum(st.t, arrive)

    def run_pass(self, p: StagePass):
        self.replay._pass(self.s, self.st, p.phase, p.seq)
        self.st.pos += 1
        return iter(())

    def send(self, p: StagePass):
        st, direction = self.st, p.send
        assert direction is not None   # the driver calls send only for a pass that sends
        start, arrive = queue_send(st.t, st.send_free[direction],
                                   self.replay.send_ns[direction][self.idx], np.maximum)
        st.send_free[direction] = arrive
        self.sent[(p.phase, p.mb, p.chunk, self.s)] = (start, arrive)
        if self.replay.plan.setups[self.s].blocking_send:
            # the sender waits for its send (see pipeline.StageSetup): exposed PP time
            st.exposed[_PP] += np.maximum(arrive - st.t, 0)
            st.t = np.maximum(st.t, arrive)
        return None

    def drain(self):
        self.replay._drain(self.st)
        return iter(())


def _add(tally: dict, key, values) -> None:
    prev = tally.get(key)
    tally[key] = values if prev is None else prev + values
