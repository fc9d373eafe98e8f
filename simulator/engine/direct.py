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
rounds: on every stage, round ``r`` holds the r-th forward pass and round ``F + r`` the r-th
backward (F: the most forward rounds of any stage; a round counts ``period x chunks`` passes
of its phase), each pass raised where needed so that a stage's rounds never go back and
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

from ..records import record
from ..result import StageResult
from ..workload import Phase
from .messages import has_consumer, source
from .replay import STREAMS

_STREAM_NAMES = tuple(g.value for g in STREAMS)
_PHASES = (Phase.FWD, Phase.IG)
_NEXT, _PREV = 0, 1          # send queue index of a direction


@record
class Structure:
    """A schedule's passes with integer message ids, cut into rounds (see the module doc)."""

    passes: list[list[tuple]]    # per stage: (phase, seq, recv id or -1, send queue, send id)
    bounds: list[list[int]]      # per stage: index of the first pass of each round, then len
    rounds: int
    shifted: list[bool]          # shifted[r]: round r + 1 is round r with mb + period
    period: int                  # micro-batches one round moves on
    receiver: list[int]          # message id -> the stage that receives it
    span: list[int]              # span[r]: how many rounds from r on are shifted
    flight: list[list[int]]      # per round: the messages sent by its end, received after
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
    # rounds count forward passes, then backward passes after every stage's forward rounds;
    # the walk below raises a pass into the round of the pass before it
    fwd_rounds = max((-(-sum(1 for st in steps if st[0] is Phase.FWD) // per_round)
                      for steps in schedule), default=0)
    for s in range(pp):
        mine: list[tuple] = []
        sh: list[tuple] = []
        rounds: list[int] = []
        for seq in heads[s]:
            mine.append((Phase.FWD, seq, -1, -1, -1))
            sh.append((None, -1))
            rounds.append(0)
        counts = [0, 0]
        # a pass's messages depend on its phase and chunk; their ids grow with its
        # micro-batch (mid: micro-batch innermost), so each (phase, chunk) is looked up once
        # and its ids are its micro-batch 0's plus the micro-batch
        links: dict[tuple, tuple[int, int, int]] = {}
        for phase, mb, chunk in schedule[s]:
            link = links.get((phase, chunk))
            if link is None:
                src = source(phase, 0, chunk, s, pp, chunks)
                recv_0 = -1 if src is None else mid(src[0], 0, src[2], src[3].of(s, pp))
                link = links[(phase, chunk)] = (
                    (recv_0, _NEXT if phase is Phase.FWD else _PREV, mid(phase, 0, chunk, s))
                    if has_consumer(phase, chunk, s, pp, chunks) else (recv_0, -1, -1))
            recv_0, send_q, send_0 = link
            recv = -1
            if recv_0 >= 0:
                recv = recv_0 + mb
                receiver[recv] = s
            send_id = send_0 + mb if send_q >= 0 else -1
            seq = ("mb", mb_variant[mb], chunk)
            mine.append((phase, seq, recv, send_q, send_id))
            sh.append(((phase, seq, chunk, recv >= 0, send_q), mb))
            k = phase is Phase.IG
            rounds.append(counts[k] // per_round + (fwd_rounds if k else 0))
            counts[k] += 1
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
    flight: list[list[int]] = [[] for _ in range(n_rounds)]
    for c, ms in enumerate(consumed):
        for m in ms:
            for cut in range(msg_round[m], c):
                flight[cut].append(m)
    span = [0] * (n_rounds + 1)
    for r in range(n_rounds - 1, -1, -1):
        span[r] = span[r + 1] + 1 if shifted[r] else 0
    return Structure(passes=passes, bounds=bounds, rounds=n_rounds, shifted=shifted,
                     period=period, receiver=receiver, span=span, flight=flight,
                     messages=n_ids)


assert len(STREAMS) == 4   # the pass loop below reads the streams' busy-until unrolled


class _Stage:
    __slots__ = ("rep", "t", "free", "wg", "wg_last", "zeros", "send_free", "cost", "outs",
                 "extra", "bubble", "pp", "pos", "blocking")

    def __init__(self, setup):
        self.rep = setup.replayer
        self.t = 0
        self.free = [0] * len(STREAMS)
        self.wg: dict = {}        # row key -> when its last weight-gradient collective ends
        self.wg_last = 0          # the latest of those
        self.zeros: dict = {}     # sequence -> its weight-gradient rows' all-done state
        self.send_free = [0, 0]
        self.cost = (setup.send_next_ns, setup.send_prev_ns)
        self.blocking = setup.blocking_send
        self.outs: list = []      # every pass's outcome, in order
        self.extra: list = []     # (outcome, further times) of the rounds skipped
        self.bubble = 0
        self.pp = 0
        self.pos = 0


class DirectPipeline:
    """:class:`.pipeline.PipelineSim`'s results (no trace) without its event loop."""

    def __init__(self, stages: list, struct: Structure, pp: int):
        self.struct = struct
        self.pp = pp
        self._stages = [_Stage(st) for st in stages]
        self._counts: list[list] = []
        self.results = [StageResult(stage=s) for s in range(pp)]
        self.trace = None
        self.events = sum(len(p) for p in struct.passes)
        self.skipped_rounds = 0

    def row_exposed(self, stage: int) -> dict:
        """Exposed communication per row key on one stage, over the whole iteration."""
        total: dict = {}
        for out, count in self._counts[stage]:
            for key, ns in out.row_exposed:
                total[key] = total.get(key, 0) + ns * count
        return total

    # ------------------------------------------------------------------------------------
    def run(self) -> None:
        struct, stages, pp = self.struct, self._stages, self.pp
        sent_at = [0] * struct.messages
        arrive: list = [None] * struct.messages
        waiting: dict[int, int] = {}
        passes, bounds, shifted, span = struct.passes, struct.bounds, struct.shifted, struct.span
        fwd = Phase.FWD
        # finding a repeat: rounds after which the clocks stand alike (cheap, every round),
        # then the full states after them compared
        seen: dict[tuple, int] = {}   # clocks relative to stage 0's -> round after which
        kept: dict[int, list] = {}    # round -> per stage what _snapshot keeps
        r = 0
        last_round = struct.rounds - 1
        while r < struct.rounds:
            # rounds after which nothing is compared run as one (fewer stage switches; a
            # schedule's rounds may be empty on every stage, as 1F1B's forward rounds are past
            # the warm-up)
            first = r
            while not shifted[r] and r < last_round:
                r += 1
            if r > first:
                seen.clear()
                kept = {}
            ready = list(range(pp))
            while ready:
                s = ready.pop()
                st = stages[s]
                mine, end = passes[s], bounds[s][r + 1]
                rep, free, wg, outs = st.rep, st.free, st.wg, st.outs
                memo, wg_rows, wg_get = rep._memo, rep._wg_rows, st.wg.get
                send_free, cost = st.send_free, st.cost
                t, i, wg_last, zeros = st.t, st.pos, st.wg_last, st.zeros
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
                    # PassReplayer.run's memo lookup, inlined (the event path calls it: the
                    # tests compare the two)
                    f0, f1, f2, f3 = free
                    rel_wg: tuple = ()
                    if phase is fwd:
                        rows = wg_rows[seq]
                        if rows:
                            if wg_last > t:
                                rel_wg = tuple([v - t if v > t else 0
                                                for v in [wg_get(k, 0) for k in rows]])
                            else:   # every weight gradient done: all zeros, known
                                rel_wg = zeros.get(seq) or zeros.setdefault(
                                    seq, (0,) * len(rows))
                    out = memo.get((phase, seq, (f0 - t if f0 > t else 0,
                                                 f1 - t if f1 > t else 0,
                                                 f2 - t if f2 > t else 0,
                                                 f3 - t if f3 > t else 0), rel_wg))
                    if out is None:
                        out = rep.run(phase, seq, t, free, wg)
                    # a pass leaves each stream busy until at least when it found it (the
                    # replay only moves busy-until times on): these are the maxima
                    s0, s1, s2, s3 = out.stream_free
                    free[:] = t + s0, t + s1, t + s2, t + s3
                    wg_done = out.wg_done
                    if wg_done:
                        for key, rel in wg_done:
                            wg[key] = x = t + rel
                            if x > wg_last:
                                wg_last = x
                    outs.append(out)
                    t += out.duration_ns
                    if send_q >= 0:
                        x = send_free[send_q]
                        start = t if t > x else x
                        send_free[send_q] = done = start + cost[send_q]
                        sent_at[send_id] = start
                        arrive[send_id] = done
                        w = waiting.pop(send_id, None)
                        if w is not None:
                            ready.append(w)
                        if st.blocking and done > t:
                            # the sender waits for its send (pipeline.StageSetup)
                            st.pp += done - t
                            t = done
                    i += 1
                st.t, st.pos, st.wg_last = t, i, wg_last
            stuck = [s for s in range(pp) if stages[s].pos < bounds[s][r + 1]]
            if stuck:
                # a stage waits for a message nobody sent: a schedule bug, never bad input
                raise RuntimeError(f"pipeline deadlock: stages {stuck} never finished")
            n = 0
            if shifted[r]:
                snap = kept[r] = [(st.t, st.bubble, st.pp, len(st.outs), tuple(st.free),
                                   dict(st.wg), tuple(st.send_free)) for st in stages]
                t0 = snap[0][0]
                clocks = tuple([x[0] - t0 for x in snap])
                earlier = seen.get(clocks)
                seen[clocks] = r
                if (earlier is not None and span[r] >= r - earlier
                        and self._signature(earlier, kept[earlier], sent_at, arrive)
                        == self._signature(r, snap, sent_at, arrive)):
                    n = self._repeat(kept[earlier], snap, r - earlier, r, sent_at, arrive)
            if n or not shifted[r]:
                seen.clear()
                kept = {}
            r += 1 + n
        self._finish()

    def _signature(self, r: int, snap: list, sent_at: list, arrive: list) -> tuple:
        """Everything after round ``r`` (its ``snap``) that a later pass can see, relative to
        the clock that will read it: the stages' states and the messages in flight (named
        relative to the round, so the same message a round later has the same name)."""
        struct = self.struct
        states = []
        for t, _, _, _, free, wg, send_free in snap:
            states.append((tuple(f - t if f > t else 0 for f in free),
                           frozenset((k, v - t) for k, v in wg.items() if v > t),
                           tuple(f - t if f > t else 0 for f in send_free)))
        receiver, base = struct.receiver, r * struct.period
        msgs = []
        for m in struct.flight[r]:
            t = snap[receiver[m]][0]
            sa, a = sent_at[m], arrive[m]
            msgs.append((m - base, sa - t if sa > t else 0, a - t if a > t else 0))
        return (tuple(states), frozenset(msgs))

    def _repeat(self, then: list, now: list, q: int, r: int, sent_at: list,
                arrive: list) -> int:
        """The ``q`` rounds up to ``r`` led from a state (``then``) to the same state
        (``now``): when every stage's clock moved by the same amount over them and the rounds
        that follow are the same rounds with their micro-batches moved on, they repeat
        exactly, as often as the schedule's steady part lasts. Moves the state and the
        counters on by the whole repeats; returns the rounds skipped (0: none)."""
        struct, stages = self.struct, self._stages
        delta = now[0][0] - then[0][0]
        if any(b[0] - a[0] != delta for a, b in zip(then, now)):
            return 0
        n = struct.span[r] // q
        flying = struct.flight[r]
        while n and sorted(struct.flight[r + q * n]) != sorted(m + struct.period * q * n
                                                              for m in flying):
            n -= 1   # never seen on the bundled schedules; kept exact whatever the schedule
        if not n:
            return 0
        step, shift = delta * n, struct.period * q * n
        for s, st in enumerate(stages):
            st.t += step
            st.free = [f + step for f in st.free]
            st.wg = {k: v + step for k, v in st.wg.items()}
            st.wg_last += step
            st.send_free = [f + step for f in st.send_free]
            st.bubble += (now[s][1] - then[s][1]) * n
            st.pp += (now[s][2] - then[s][2]) * n
            st.extra.extend((out, n) for out in st.outs[then[s][3]:now[s][3]])
            st.pos = struct.bounds[s][r + q * n + 1]
        # the messages in flight after the skipped rounds: those after round r, moved on
        moved = [(m + shift, sent_at[m] + step, arrive[m] + step) for m in flying]
        for m, sa, a in moved:
            sent_at[m], arrive[m] = sa, a
        self.skipped_rounds += q * n
        return q * n

    def _finish(self) -> None:
        from collections import Counter

        for s, st in enumerate(self._stages):
            times = Counter(map(id, st.outs))
            by_id = dict(zip(map(id, st.outs), st.outs))
            for out, n in st.extra:
                times[id(out)] += n
            counts = [(by_id[k], n) for k, n in times.items()]
            self._counts.append(counts)
            res = self.results[s]
            exposed = res.exposed_ns
            compute = recompute = 0
            for out, n in counts:
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
