"""Cutting one micro-batch's rows into the model chunks of the interleaved schedule.

Megatron-LM gives each virtual pipeline chunk the same number of transformer layers; the
embedding belongs to the first chunk and the output layer and loss to the last. A workload
table does not say where a layer starts, so we read it from the row names AICB, SimAI and
``collsim generate`` write:

* numbered layers (``Llama_layer12``, DeepSpeed's tables): consecutive rows with the same
  number are one layer;
* otherwise a layer starts at every row named like the first layer row (``attention_layer``,
  ``attention_column``, ``attention_column_3``: trailing numbers ignored) and runs up to the
  next one; layer rows are the ``attention*``/``mlp*``/``moe*``-like ones.

Rows before the first layer (embedding) go to the first chunk, rows after the last layer row
(final norm, output layer, loss) to the last. A table whose rows name no layers is cut by row
count, and the plan says so.
"""
from __future__ import annotations

from ..errors import InputError
from ..lazyre import LazyPattern
from ..records import record

# flags inline ((?i): re.IGNORECASE), so that importing this module does not import re
_NUMBERED = LazyPattern(r"(?i)(?:^|[^a-z])layer[_.\-]?(\d+)$")
_TRAILING_NUMBER = LazyPattern(r"[_.\-]?\d+$")
_LAYER_ROW = LazyPattern(r"(?i)^(attention|attn|self_attn|self_attention|mlp|moe|ffn|expert|"
                        r"transformer|decoder)")


@record(frozen=True)
class ChunkSplit:
    """A micro-batch's rows cut into interleaved-schedule model chunks."""

    ranges: list[tuple[int, int]]   # [start, end) of each chunk in the micro-batch's rows
    layers: int                     # layers found (0: none, cut by row count)
    note: str                       # how it was cut, for the report


def _base(name: str) -> str:
    return _TRAILING_NUMBER.sub("", name)


def find_layers(names: list[str]) -> tuple[int, list[int], int] | None:
    """(rows before the first layer, start index of each layer, first row after the last).

    None when the names show no layers.
    """
    numbers = [_NUMBERED.search(n) for n in names]
    if any(numbers):
        starts, last, prev = [], -1, None
        for i, m in enumerate(numbers):
            if m is None:
                continue
            if m.group(1) != prev:
                starts.append(i)
                prev = m.group(1)
            last = i
        return starts[0], starts, last + 1
    layer_rows = [i for i, n in enumerate(names) if _LAYER_ROW.match(n)]
    if not layer_rows:
        return None
    first = layer_rows[0]
    marker = _base(names[first])
    starts = [i for i in range(first, layer_rows[-1] + 1) if _base(names[i]) == marker]
    return first, starts, layer_rows[-1] + 1


def chunk_split(rows: list, chunks: int, path: str) -> ChunkSplit:
    """Contiguous chunks of whole layers (see the module docstring)."""
    n = len(rows)
    if chunks <= 1:
        return ChunkSplit([(0, n)], 0, "one chunk per stage")
    found = find_layers([r.name for r in rows])
    layers = len(found[1]) if found else 0
    if layers < chunks:
        if chunks > n:
            raise InputError(f"cannot split a micro-batch of {n} rows into {chunks} interleaved "
                             "chunks; lower --vpp", path=path, field="vpp")
        base, extra = divmod(n, chunks)
        bounds = [0]
        for k in range(chunks):
            bounds.append(bounds[-1] + base + (1 if k < extra else 0))
        why = ("no layers found in the row names (attention*/mlp*/layerN)" if not layers else
               f"{layers} layer(s) found in the row names cannot make {chunks} chunks of whole "
               "layers")
        return ChunkSplit([(bounds[i], bounds[i + 1]) for i in range(chunks)], 0,
                          f"{why}: the {chunks} interleaved chunks are cut by row count and may "
                          "hold unequal work")
    assert found is not None   # it found layers >= chunks >= 2
    head_end, starts, tail_start = found
    per, extra = divmod(layers, chunks)
    first_layer = [0]
    for k in range(chunks):
        first_layer.append(first_layer[-1] + per + (1 if k < extra else 0))
    bounds = [0] + [starts[first_layer[k]] for k in range(1, chunks)] + [n]
    note = (f"interleaved chunks follow layers: {layers} layers, "
            + (f"{per} per chunk" if not extra else
               f"{per + 1} in the first {extra} chunks and {per} in the rest (uneven: Megatron "
               "needs the layers to divide evenly)")
            + f"; {head_end} row(s) before the first layer in chunk 0, {n - tail_start} after "
              f"the last in chunk {chunks - 1}")
    return ChunkSplit([(bounds[i], bounds[i + 1]) for i in range(chunks)], layers, note)


def split_chunks(rows: list, chunks: int, path: str) -> list[tuple[int, int]]:
    """The [start, end) ranges of :func:`chunk_split`."""
    return chunk_split(rows, chunks, path).ranges
