"""The fast engine's pipeline without the event loop: passes in dependency order, by rounds,
with the steady state's repeating rounds extrapolated exactly.

Where nothing is shared between stages (no link sharing, no jitter: :mod:`.simulate` sends
those to the event engines) a stage of the fast engine interacts with the others only through
pipeline messages. A pass starts when its stage is done with the previous pass and the
message it needs has arrived; everything else it does depends on its own stage's streams
(:mod:`.replay`). So an iteration is a longest-path (max-plus) problem over the passes, and
it is evaluated here pass by pass in dependency order, with no event queue, using exactly the
arithmetic of :class:`.pipeline.PipelineSim`'s stages (same waits, same send queues, same
drain; tests compare the two on every bundled workload, schedule and policy).

Rounds make the cost (nearly) independent of the micro-batch count. The passes are cut into
rounds: round ``r`` holds, on every stage, its r-th backward pass (forward passes where a
schedule has no backward) and the forwards after the previous one, raised where needed so
that a pass's message always comes from its own round or an earlier one. Rounds are
evaluated in order. In a schedule's steady part, round ``r + 1`` is round ``r`` with every
micro-batch index moved on by the schedule's period (checked pass by pass on the structure,
which is kept per schedule shape). When the state after round ``r`` is the state after an
earlier round ``r - q`` -- every stage's clock moved by the same amount, and everything a
later pass can see (stream busy-until times, weight-gradient completions, send queues and
messages in flight, each relative to the clock that will read it) is the same -- the next
``q`` rounds, being the same rounds moved on, repeat those ``q`` exactly, and so on for as
long as the steady part lasts: the state is moved on by whole repeats and the counters by
whole repeats' increments. (``q`` is often more than 1: on a pipeline with one slower stage
the extra time travels through the stages, one a round, and the state repeats after ``pp``
rounds.) The warm-up, the cool-down, rounds that differ (a micro-batch with other compute
times) and pipelines whose queues grow every round (no two rounds alike) are evaluated pass
by pass.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..result import StageResult
from ..workload import Phase
from .messages import has_consumer, source
from .replay import STREAMS

_STREAM_NAMES = tuple(g.value for g in STREAMS)
_PHASES = (Phase.FWD, Phase.IG)
_NEXT, _PREV = 0, 1          # send queue index of a direction


@dataclass
class Structure:
    """A schedule's passes with integer message ids, cut into rounds (see the module doc)."""

    passes: list[list[tuple]]    # per stage: (phase, seq, recv id or -1, send queue, send id)
    bounds: list[list[int]]      # per stage: index of the first pass of each round, then len
    rounds: int
    shifted: list[bool]          # shifted[r]: round r + 1 is round r with mb + period
    period: int                  # micro-batches one round moves on
    receiver: list[int]          # message id -> the stage that receives it
    produced: list[int]          # message id -> round of the pass that sends it (-1: none)
    consumed: list[list[int]]    # per round: the messages its passes receive
    lag: int                     # most rounds between sending a message and receiving it
    messages: int


_STRUCTURES: dict[tuple, Structure] = {}
_MAX_STRUCTURES = 64


def structure(key: tuple, schedule: list, pp: int, chunks: int, ga: int, mb_variant: tuple,
              heads: list, tails: list, period: int) -> Structure:
    """The schedule's :class:`Structure`, kept per ``key`` (a sweep changes prices, rarely
    the schedule's shape)."""
    hit = _STRUCTURES.get(key)
    if hit is None:
        hit = _build(schedule, pp, chunks, ga, mb_variant, heads, tails, period)
        if len(_STRUCTURES) >= _MAX_STRUCTURES:
            _STRUCTURES.pop(next(iter(_STRUCTURES)))
        _STRUCTURES[key] = hit
    return hit


def _build(schedule, pp, chunks, ga, mb_variant, heads, tails, period) -> Structure:
    def mid(phase: Phase, mb: int, chunk: int, sender: int) -> int:
        # micro-batch innermost: the same message period micro-batches later is id + period
        return (((phase is Phase.IG) * chunks + chunk) * pp + sender) * ga + mb

    n_ids = 2 * chunks * pp * ga
    receiver = [-1] * n_ids
    passes: list[list[tuple]] = []
    shape: list[list[tuple]] = []     # per pass what a shifted copy must match, and its mb
    init: list[list[int]] = []
    per_round = max(1, period * chunks)
    # rounds count backward passes (forward passes where there are none); a forward pass is
    # raised into the round of the backward before it
    by = Phase.IG if any(st[0] is Phase.IG for steps in schedule for st in steps) \
        else Phase.FWD
    for s in range(pp):
        mine: list[tuple] = []
        sh: list[tuple] = []
        rounds: list[int] = []
        for seq in heads[s]:
            mine.append((Phase.FWD, seq, -1, -1, -1))
            sh.append((None, -1))
            rounds.append(0)
        count = 0
        for phase, mb, chunk in schedule[s]:
            src = source(phase, mb, chunk, s, pp, chunks)
            recv = -1
            if src is not None:
                sender = src[3].of(s, pp)
                recv = mid(src[0], src[1], src[2], sender)
                receiver[recv] = s
            send_q = send_id = -1
            if has_consumer(phase, chunk, s, pp, chunks):
                send_q = _NEXT if phase is Phase.FWD else _PREV
                send_id = mid(phase, mb, chunk, s)
            seq = ("mb", mb_variant[mb], chunk)
            mine.append((phase, seq, recv, send_q, send_id))
            sh.append(((phase, seq, chunk, recv >= 0, send_q), mb))
            if phase is by:
                rounds.append(count // per_round)
                count += 1
            else:
                rounds.append(0)
        for phase, seq in tails[s]:
            mine.append((phase, seq, -1, -1, -1))
            sh.append((None, -1))
            rounds.append(0)
        passes.append(mine)
        shape.append(sh)
        init.append(rounds)

    # raise rounds so that each stage's rounds never go down and every message comes from the
    # receiver's round or an earlier one: a walk of the passes in dependency order
    rnd = [[0] * len(p) for p in passes]
    msg_round = [-1] * n_ids
    pos = [0] * pp
    waiting: dict[int, int] = {}
    ready = list(range(pp))
    while ready:
        s = ready.pop()
        mine, r_s, i_s = passes[s], rnd[s], init[s]
        i = pos[s]
        prev = r_s[i - 1] if i else 0
        while i < len(mine):
            _, _, recv, _, send_id = mine[i]
            r = i_s[i] if i_s[i] > prev else prev
            if recv >= 0:
                got = msg_round[recv]
                if got < 0:
                    waiting[recv] = s
                    break
                if got > r:
                    r = got
            r_s[i] = prev = r
            if send_id >= 0:
                msg_round[send_id] = r
                w = waiting.pop(send_id, None)
                if w is not None:
                    ready.append(w)
            i += 1
        pos[s] = i
    stuck = [s for s in range(pp) if pos[s] < len(passes[s])]
    if stuck:
        # a stage waits for a message nobody sends: a schedule bug, never bad input
        raise RuntimeError(f"pipeline deadlock: stages {stuck} never finished")

    n_rounds = 1 + max((r[-1] for r in rnd if r), default=0)
    bounds = []
    for r_s in rnd:
        b = [0] * (n_rounds + 1)
        i = 0
        for r in range(n_rounds + 1):
            while i < len(r_s) and r_s[i] < r:
                i += 1
            b[r] = i
        b[n_rounds] = len(r_s)
        bounds.append(b)

    def is_shift(r: int) -> bool:
        for s in range(pp):
            b = bounds[s]
            a0, a1, b1 = b[r], b[r + 1], b[r + 2]
            if a1 - a0 != b1 - a1 or a1 == a0:
                return False
            sh = shape[s]
            for j in range(a1 - a0):
                one, two = sh[a0 + j], sh[a1 + j]
                if one[0] is None or one[0] != two[0] or two[1] != one[1] + period:
                    return False
                if passes[s][a0 + j][2] >= 0 and (passes[s][a1 + j][2]
                                                   != passes[s][a0 + j][2] + period):
                    return False
        return True

    shifted = [is_shift(r) for r in range(n_rounds - 1)] + [False]
    consumed: list[list[int]] = [[] for _ in range(n_rounds)]
    for s in range(pp):
        for p, r in zip(passes[s], rnd[s]):
            if p[2] >= 0:
                consumed[r].append(p[2])
    lag = max((r - msg_round[m] for r, ms in enumerate(consumed) for m in ms), default=0)
    return Structure(passes=passes, bounds=bounds, rounds=n_rounds, shifted=shifted,
                     period=period, receiver=receiver, produced=msg_round,
                     consumed=consumed, lag=lag, messages=n_ids)


class _Stage:
    __slots__ = ("rep", "t", "free", "wg", "send_free", "cost", "counts", "bubble", "pp",
                 "pos", "outs")

    def __init__(self, setup):
        self.rep = setup.replayer
        self.t = 0
        self.free = [0] * len(STREAMS)
        self.wg: dict = {}
        self.send_free = [0, 0]
        self.cost = (setup.send_next_ns, setup.send_prev_ns)
        self.counts: dict[int, list] = {}     # id(outcome) -> [outcome, times it occurred]
        self.bubble = 0
        self.pp = 0
        self.pos = 0
        self.outs: list = []                   # outcomes since the last round the state was kept

    def state(self) -> tuple:
        """What a later pass can see, relative to the stage's clock."""
        t = self.t
        return (tuple(f - t if f > t else 0 for f in self.free),
                frozenset((k, v - t) for k, v in self.wg.items() if v > t),
                tuple(f - t if f > t else 0 for f in self.send_free))


class DirectPipeline:
    """:class:`.pipeline.PipelineSim`'s results (no trace) without its event loop."""

    def __init__(self, stages: list, struct: Structure, pp: int):
        self.struct = struct
        self.pp = pp
        self._stages = [_Stage(st) for st in stages]
        self.results = [StageResult(stage=s) for s in range(pp)]
        self.trace = None
        self.events = sum(len(p) for p in struct.passes)
        self.skipped_rounds = 0

    def row_exposed(self, stage: int) -> dict:
        """Exposed communication per row key on one stage, over the whole iteration."""
        total: dict = {}
        for out, count in self._stages[stage].counts.values():
            for key, ns in out.row_exposed:
                total[key] = total.get(key, 0) + ns * count
        return total

    # ------------------------------------------------------------------------------------
    def run(self) -> None:
        struct, stages, pp = self.struct, self._stages, self.pp
        sent_at = [0] * struct.messages
        arrive: list = [None] * struct.messages
        waiting: dict[int, int] = {}
        passes, bounds, shifted = struct.passes, struct.bounds, struct.shifted
        seen: dict[tuple, int] = {}   # state signature -> round after which it was seen
        kept: list = []               # per round since the run of shifted rounds began
        r = 0
        while r < struct.rounds:
            ready = list(range(pp))
            while ready:
                s = ready.pop()
                st = stages[s]
                mine, end = passes[s], bounds[s][r + 1]
                rep, free, wg, counts = st.rep, st.free, st.wg, st.counts
                outs, send_free, cost = st.outs, st.send_free, st.cost
                t, i = st.t, st.pos
                while i < end:
                    phase, seq, recv, send_q, send_id = mine[i]
                    if recv >= 0:
                        a = arrive[recv]
                        if a is None:
                            waiting[recv] = s
                            break
                        if a > t:
                            sa = sent_at[recv]
                            flight = sa if sa > t else t
                            st.bubble += flight - t
                            st.pp += a - flight
                            t = a
                    out = rep.run(phase, seq, t, free, wg)
                    k = 0
                    for rel in out.stream_free:
                        if t + rel > free[k]:
                            free[k] = t + rel
                        k += 1
                    for key, rel in out.wg_done:
                        wg[key] = t + rel
                    c = counts.get(id(out))
                    if c is None:
                        counts[id(out)] = [out, 1]
                    else:
                        c[1] += 1
                    outs.append(out)
                    t += out.duration_ns
                    if send_q >= 0:
                        sf = send_free[send_q]
                        start = t if t > sf else sf
                        send_free[send_q] = done = start + cost[send_q]
                        sent_at[send_id] = start
                        arrive[send_id] = done
                        w = waiting.pop(send_id, None)
                        if w is not None:
                            ready.append(w)
                    i += 1
                st.t, st.pos = t, i
            stuck = [s for s in range(pp) if stages[s].pos < bounds[s][r + 1]]
            if stuck:
                # a stage waits for a message nobody sent: a schedule bug, never bad input
                raise RuntimeError(f"pipeline deadlock: stages {stuck} never finished")
            n = 0
            if shifted[r]:
                sig = self._signature(r, sent_at, arrive)
                kept.append((r, [(st.t, st.bubble, st.pp, st.outs) for st in stages]))
                for st in stages:
                    st.outs = []
                earlier = seen.get(sig)
                if earlier is not None:
                    n = self._repeat(kept, earlier, r, sent_at, arrive)
                if n:
                    seen.clear()
                    kept = []
                else:
                    seen[sig] = r
            else:
                seen.clear()
                kept = []
                for st in stages:
                    st.outs = []
            r += 1 + n
        self._finish()

    def _signature(self, r: int, sent_at: list, arrive: list) -> tuple:
        """Everything after round ``r`` that a later pass can see, relative to the clock that
        will read it: the stages' states and the messages in flight (named relative to the
        round, so the same message a round later has the same name)."""
        struct, stages = self.struct, self._stages
        produced, receiver, base = struct.produced, struct.receiver, r * struct.period
        msgs = []
        for c in range(r + 1, min(struct.rounds, r + 1 + struct.lag)):
            for m in struct.consumed[c]:
                if produced[m] <= r:
                    t = stages[receiver[m]].t
                    sa, a = sent_at[m], arrive[m]
                    msgs.append((m - base, sa - t if sa > t else 0, a - t if a > t else 0))
        return (tuple(st.state() for st in stages), frozenset(msgs))

    def _repeat(self, kept: list, earlier: int, r: int, sent_at: list, arrive: list) -> int:
        """Rounds ``earlier + 1 .. r`` led from a state to the same state: when every stage's
        clock moved by the same amount over them and the rounds that follow are the same
        rounds with their micro-batches moved on, they repeat exactly, as often as the
        schedule's steady part lasts. Moves the state and the counters on by the whole
        repeats; returns the rounds skipped (0: none)."""
        struct, stages = self.struct, self._stages
        q = r - earlier
        by_round = {k: snaps for k, snaps in kept}
        then, now = by_round.get(earlier), by_round[r]
        if then is None:
            return 0
        delta = now[0][0] - then[0][0]
        if any(b[0] - a[0] != delta for a, b in zip(then, now)):
            return 0
        span = 0
        while r + span < struct.rounds - 1 and struct.shifted[r + span]:
            span += 1
        n = span // q
        produced, lag = struct.produced, struct.lag

        def in_flight(k: int) -> list[int]:
            return [m for c in range(k + 1, min(struct.rounds, k + 1 + lag))
                    for m in struct.consumed[c] if produced[m] <= k]

        flying = in_flight(r)
        while n and sorted(in_flight(r + q * n)) != sorted(m + struct.period * q * n
                                                          for m in flying):
            n -= 1   # never seen on the bundled schedules; kept exact whatever the schedule
        if not n:
            return 0
        step, shift = delta * n, struct.period * q * n
        block = [snaps for k, snaps in kept if earlier < k <= r]
        for s, st in enumerate(stages):
            st.t += step
            st.free = [f + step for f in st.free]
            st.wg = {k: v + step for k, v in st.wg.items()}
            st.send_free = [f + step for f in st.send_free]
            st.bubble += (now[s][1] - then[s][1]) * n
            st.pp += (now[s][2] - then[s][2]) * n
            counts = st.counts
            for snaps in block:
                for out in snaps[s][3]:
                    counts[id(out)][1] += n
            st.pos = struct.bounds[s][r + q * n + 1]
        # the messages in flight after the skipped rounds: those after round r, moved on
        moved = [(m + shift, sent_at[m] + step, arrive[m] + step) for m in flying]
        for m, sa, a in moved:
            sent_at[m], arrive[m] = sa, a
        self.skipped_rounds += q * n
        return q * n

    def _finish(self) -> None:
        for s, st in enumerate(self._stages):
            res = self.results[s]
            exposed = res.exposed_ns
            compute = recompute = 0
            for out, n in st.counts.values():
                compute += out.compute_ns * n
                recompute += out.recompute_ns * n
                for name, ns in zip(_STREAM_NAMES, out.exposed_ns):
                    if ns:
                        exposed[name] += ns * n
            res.compute_ns, res.recompute_ns = compute, recompute
            exposed["PP"] += st.pp
            res.bubble_ns = st.bubble
            # drain: the wait is charged to the stream that finishes last
            free, t = st.free, st.t
            last = max(range(len(STREAMS)), key=lambda i: free[i])
            if free[last] > t:
                exposed[STREAMS[last].value] += free[last] - t
                t = free[last]
            res.end_ns = t
