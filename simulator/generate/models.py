"""Model descriptions for ``collsim generate``: presets and YAML model files.

A :class:`ModelSpec` holds the shape of a decoder-only transformer (dense or MoE). Presets
use the published architectures; the AICB-named ones also carry the values AICB's own
presets use (``aicb``), which ``--style aicb`` applies so that its files are reproduced.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace

from ..errors import InputError


@dataclass(frozen=True)
class ModelSpec:
    name: str
    layers: int
    hidden: int
    ffn: int                      # dense MLP hidden size
    heads: int
    kv_groups: int | None = None  # query groups (GQA); None = one per head (MHA)
    head_dim: int | None = None   # None = hidden / heads
    vocab: int = 50257
    max_position: int = 4096      # learned position embeddings (GPT); 0 = rotary, no table
    gated_mlp: bool = False       # SwiGLU: three matrices (gate, up, down) instead of two
    tied_embeddings: bool = True
    experts: int = 0              # routed experts per MoE layer (0 = dense model)
    topk: int = 0
    moe_ffn: int | None = None    # expert hidden size (None = ffn)
    shared_experts: int = 0       # always-active experts of size moe_ffn
    dense_layers: int = 0         # first layers that use a dense MLP in a MoE model
    # AICB preset values that differ from the architecture (applied by --style aicb)
    aicb: dict = field(default_factory=dict, compare=False, repr=False)
    aicb_tp: int | None = None    # AICB presets force this TP whatever is asked

    @property
    def is_moe(self) -> bool:
        return self.experts > 0

    @property
    def kv(self) -> int:
        return self.kv_groups or self.heads

    @property
    def hd(self) -> int:
        return self.head_dim or self.hidden // self.heads

    @property
    def expert_ffn(self) -> int:
        return self.moe_ffn or self.ffn

    def moe_layer(self, index: int) -> bool:
        """Whether layer ``index`` (0-based) has routed experts."""
        return self.is_moe and index >= self.dense_layers

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("aicb")
        d.pop("aicb_tp")
        return d


def _gpt(name, layers, hidden, heads, tp=None):
    return ModelSpec(name=name, layers=layers, hidden=hidden, ffn=4 * hidden, heads=heads,
                     vocab=50257, max_position=4096, aicb_tp=tp)


def _paper_gpt(name, layers, hidden, heads, vocab=51200, max_position=2048):
    """A GPT of learned positions, MHA, a 4h MLP and tied embeddings (Megatron-LM's GPT)."""
    return ModelSpec(name=name, layers=layers, hidden=hidden, ffn=4 * hidden, heads=heads,
                     vocab=vocab, max_position=max_position)


def _bloom(name, layers, hidden, heads):
    """BLOOM (Megatron-DeepSpeed): ALiBi, so no position table; 250,880-token vocabulary,
    tied. Its embedding layer norm (2h) is not modelled."""
    return ModelSpec(name=name, layers=layers, hidden=hidden, ffn=4 * hidden, heads=heads,
                     vocab=250880, max_position=0)


_AICB_VOCAB = {"vocab": 50257}

PRESETS: dict[str, ModelSpec] = {m.name: m for m in [
    # AICB's GPT presets (its files: vocabulary 50257, learned positions, MHA, 4h MLP)
    _gpt("gpt-7b", 36, 4096, 32, tp=4),
    _gpt("gpt-13b", 40, 5120, 40),
    _gpt("gpt-22b", 48, 6144, 64, tp=8),
    _gpt("gpt-175b", 96, 12288, 96, tp=8),
    # Narayanan et al. 2021 (Megatron-LM, SC21), Table 1 and examples/sc21/run_table_1.sh:
    # vocabulary 51,200 (GPT-2's 50,257 padded to 1024 = 128 x TP 8), sequence and learned
    # positions 2048
    _paper_gpt("gpt-1.7b", 24, 2304, 24),
    _paper_gpt("gpt-3.6b", 30, 3072, 32),
    _paper_gpt("gpt-7.5b", 36, 4096, 32),
    _paper_gpt("gpt-18b", 40, 6144, 48),
    _paper_gpt("gpt-39b", 48, 8192, 64),
    _paper_gpt("gpt-76b", 60, 10240, 80),
    _paper_gpt("gpt-145b", 80, 12288, 96),
    _paper_gpt("gpt-310b", 96, 16384, 128),
    _paper_gpt("gpt-530b", 105, 20480, 128),
    _paper_gpt("gpt-1t", 128, 25600, 160),
    # GPT-3 (Brown et al. 2020, Table 2.1) as Megatron-DeepSpeed's examples run it: GPT-2's
    # 50,257 tokens, 2048 positions. The paper's XL (24 heads of 128 over 2048) and 13B
    # (hidden 5140) do not divide; these are the 16 heads and 5120 its implementations use.
    _paper_gpt("gpt3-125m", 12, 768, 12, vocab=50257),
    _paper_gpt("gpt3-350m", 24, 1024, 16, vocab=50257),
    _paper_gpt("gpt3-760m", 24, 1536, 16, vocab=50257),
    _paper_gpt("gpt3-1.3b", 24, 2048, 16, vocab=50257),
    _paper_gpt("gpt3-2.7b", 32, 2560, 32, vocab=50257),
    _paper_gpt("gpt3-6.7b", 32, 4096, 32, vocab=50257),
    _paper_gpt("gpt3-13b", 40, 5120, 40, vocab=50257),
    _paper_gpt("gpt3-175b", 96, 12288, 96, vocab=50257),
    # BLOOM (BigScience 2022, trained with Megatron-DeepSpeed)
    _bloom("bloom-560m", 24, 1024, 16),
    _bloom("bloom-1b1", 24, 1536, 16),
    _bloom("bloom-1b7", 24, 2048, 16),
    _bloom("bloom-3b", 30, 2560, 32),
    _bloom("bloom-7b1", 30, 4096, 32),
    _bloom("bloom-176b", 70, 14336, 112),
    # Llama 2 and 3 (SwiGLU, rotary, untied embeddings, GQA on the large ones)
    ModelSpec("llama-2-7b", 32, 4096, 11008, 32, vocab=32000, max_position=0, gated_mlp=True,
              tied_embeddings=False, aicb=_AICB_VOCAB),
    ModelSpec("llama-2-13b", 40, 5120, 13824, 40, vocab=32000, max_position=0, gated_mlp=True,
              tied_embeddings=False, aicb=_AICB_VOCAB),
    ModelSpec("llama-2-70b", 80, 8192, 28672, 64, kv_groups=8, vocab=32000, max_position=0,
              gated_mlp=True, tied_embeddings=False, aicb=_AICB_VOCAB),
    ModelSpec("llama-3-8b", 32, 4096, 14336, 32, kv_groups=8, vocab=128256, max_position=0,
              gated_mlp=True, tied_embeddings=False, aicb=_AICB_VOCAB),
    ModelSpec("llama-3-70b", 80, 8192, 28672, 64, kv_groups=8, vocab=128256, max_position=0,
              gated_mlp=True, tied_embeddings=False, aicb=_AICB_VOCAB),
    ModelSpec("llama-3-405b", 126, 16384, 53248, 128, kv_groups=8, vocab=128256,
              max_position=0, gated_mlp=True, tied_embeddings=False,
              aicb={"vocab": 50257, "layers": 128}),
    # Mixtral 8x7B: AICB's preset forces TP 4 and vocabulary 50257
    ModelSpec("mixtral-8x7b", 32, 4096, 14336, 32, kv_groups=8, vocab=32000, max_position=0,
              gated_mlp=True, tied_embeddings=False, experts=8, topk=2,
              aicb=_AICB_VOCAB, aicb_tp=4),
    # DeepSeek-V3: MLA approximated as multi-head attention over the hidden size
    ModelSpec("deepseek-v3", 61, 7168, 18432, 128, vocab=129280, max_position=0,
              gated_mlp=True, tied_embeddings=False, experts=256, topk=8, moe_ffn=2048,
              shared_experts=1, dense_layers=3, aicb=_AICB_VOCAB),
]}

#: AICB's spellings of its preset names
ALIASES = {
    "gpt_7b": "gpt-7b", "gpt_13b": "gpt-13b", "gpt_22b": "gpt-22b", "gpt_175b": "gpt-175b",
    "llama_405b": "llama-3-405b", "mixtral_8x7b": "mixtral-8x7b", "mixtral_8*7b": "mixtral-8x7b",
    "llama_7b": "llama-2-7b", "llama_13b": "llama-2-13b", "llama_70b": "llama-2-70b",
    "deepseek_v3": "deepseek-v3", "deepseek": "deepseek-v3",
    # the Megatron-LM paper's sizes as its Table 1 prints them, and its script's names
    "gpt-18.4b": "gpt-18b", "gpt-39.1b": "gpt-39b", "gpt-76.1b": "gpt-76b",
    "gpt-145.6b": "gpt-145b", "gpt-310.1b": "gpt-310b", "gpt-529.6b": "gpt-530b",
    "gpt-1008b": "gpt-1t", "gpt-1000b": "gpt-1t",
    "bloom": "bloom-176b",
}

#: YAML keys (and their ModelSpec field); several spellings, Megatron's included
YAML_KEYS = {
    "name": "name",
    "layers": "layers", "num_layers": "layers",
    "hidden": "hidden", "hidden_size": "hidden",
    "ffn": "ffn", "ffn_hidden_size": "ffn",
    "heads": "heads", "num_attention_heads": "heads",
    "kv_groups": "kv_groups", "num_query_groups": "kv_groups",
    "head_dim": "head_dim", "kv_channels": "head_dim",
    "vocab": "vocab", "vocab_size": "vocab",
    "max_position": "max_position", "max_position_embeddings": "max_position",
    "gated_mlp": "gated_mlp", "swiglu": "gated_mlp",
    "tied_embeddings": "tied_embeddings",
    "experts": "experts", "num_experts": "experts",
    "topk": "topk", "moe_router_topk": "topk",
    "moe_ffn": "moe_ffn", "moe_ffn_hidden_size": "moe_ffn",
    "shared_experts": "shared_experts",
    "dense_layers": "dense_layers", "first_k_dense": "dense_layers",
}

_INT_FIELDS = {"layers", "hidden", "ffn", "heads", "kv_groups", "head_dim", "vocab",
               "max_position", "experts", "topk", "moe_ffn", "shared_experts", "dense_layers"}
_BOOL_FIELDS = {"gated_mlp", "tied_embeddings"}


def preset_names() -> list[str]:
    return sorted(PRESETS)


def get_preset(name: str) -> ModelSpec:
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    if key not in PRESETS:
        from ..readers.numbers import shown
        raise InputError(f"unknown model {shown(name)}; presets: {', '.join(preset_names())} "
                         "(or a YAML model file)", field="model")
    return PRESETS[key]


def with_overrides(model: ModelSpec, **values) -> ModelSpec:
    """The model with the given fields replaced (None values are ignored)."""
    values = {k: v for k, v in values.items() if v is not None}
    return replace(model, **values) if values else model


def with_derived_overrides(model: ModelSpec, **values) -> tuple[ModelSpec, list[str]]:
    """Overrides as :func:`with_overrides`, with the sizes derived from them following.

    A new hidden size without a new FFN size scales the FFN (and the expert FFN) by the
    model's ratio, as a preset's FFN is a multiple of its hidden size; without a new head
    count that no longer divides it, the head dimension is kept and the heads follow. Returns
    the model and one note per derived size, saying what it kept and which flag sets it.
    """
    given = {k: v for k, v in values.items() if v is not None}
    notes: list[str] = []
    hidden = given.get("hidden")
    if hidden is not None and hidden != model.hidden:
        old = model.hidden
        if "ffn" not in given:
            ffn = _scaled(model.ffn, hidden, old)
            given["ffn"] = ffn
            notes.append(f"--hidden-size {hidden}: FFN size follows at the model's ratio "
                         f"{model.ffn / old:g} x hidden: {model.ffn} -> {ffn} "
                         "(--ffn-hidden-size sets it)")
        if model.moe_ffn is not None and "moe_ffn" not in given:
            moe_ffn = _scaled(model.moe_ffn, hidden, old)
            given["moe_ffn"] = moe_ffn
            notes.append(f"--hidden-size {hidden}: expert FFN size follows: {model.moe_ffn} -> "
                         f"{moe_ffn} (--moe-ffn-hidden-size sets it)")
        if "heads" not in given and model.head_dim is None:
            hd = model.hd
            if hidden % hd == 0 and hidden // hd != model.heads:
                heads = hidden // hd
                kv = given.get("kv_groups", model.kv_groups)
                if kv is None or heads % kv == 0:
                    given["heads"] = heads
                    notes.append(f"--hidden-size {hidden}: head dimension {hd} kept, so "
                                 f"{model.heads} -> {heads} attention heads "
                                 "(--num-attention-heads sets them)")
            if "heads" not in given:
                notes.append(f"--hidden-size {hidden}: {model.heads} attention heads kept "
                             "(--num-attention-heads sets them)")
    return (replace(model, **given) if given else model), notes


def _scaled(size: int, new_hidden: int, old_hidden: int) -> int:
    """``size`` x new/old, rounded to a multiple of 64 (kernel-friendly, as presets are)."""
    exact = size * new_hidden / old_hidden
    return max(64, int(round(exact / 64)) * 64) if exact >= 64 else max(1, round(exact))


def load_model_yaml(path: str) -> ModelSpec:
    """A model from a YAML mapping; errors name the file, line and key."""
    import yaml

    from ..readers.yamlload import MAX_BYTES, compose_yaml, construct
    from ..readers.source import read_text

    node, loader = compose_yaml(read_text(path, "model YAML", limit=MAX_BYTES), path)
    if node is None or not isinstance(node, yaml.MappingNode):
        raise InputError("expected a mapping of model fields (layers, hidden, ffn, heads, ...)",
                         path=path, line=1)
    base: ModelSpec | None = None
    values: dict = {}
    for knode, vnode in node.value:
        key = str(knode.value)
        line = knode.start_mark.line + 1
        if key in ("preset", "base"):
            if not isinstance(vnode, yaml.ScalarNode):
                raise InputError("expected a preset name", path=path, line=line, field=key)
            try:
                base = get_preset(str(vnode.value))
            except InputError as exc:  # at the line of the file, not of --model
                raise InputError(exc.message, path=path, line=line, field=key) from None
            continue
        target = YAML_KEYS.get(key)
        if target is None:
            raise InputError(f"unknown model key {key!r}; known: "
                             f"{', '.join(sorted(set(YAML_KEYS)))}", path=path, line=line,
                             field=key)
        value = construct(loader, vnode)
        try:
            values[target] = _coerce(target, value)
        except ValueError as exc:
            raise InputError(str(exc), path=path, line=vnode.start_mark.line + 1,
                             field=key) from None
    if base is None:
        missing = [k for k in ("layers", "hidden", "heads") if k not in values]
        if missing:
            raise InputError(f"missing model key(s): {', '.join(missing)} (or give 'preset:')",
                             path=path, field=missing[0])
        values.setdefault("name", path.rsplit("/", 1)[-1].rsplit(".", 1)[0])
        values.setdefault("ffn", 4 * values["hidden"])
        spec = ModelSpec(**values)
    else:
        # sizes derived from an overridden one follow it, and the file is told which
        spec, derived = with_derived_overrides(base, **values)
        for note in derived:
            from ..errors import warn
            warn(f"{path}: " + note.replace("--hidden-size", "hidden").replace(
                "(--ffn-hidden-size sets it)", "(ffn sets it)").replace(
                "(--moe-ffn-hidden-size sets it)", "(moe_ffn sets it)").replace(
                "(--num-attention-heads sets them)", "(heads sets them)"))
    check_model(spec, source=path)
    return spec


def _coerce(name: str, value):
    if name in _INT_FIELDS:
        if value is None and name in ("kv_groups", "head_dim", "moe_ffn"):
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"expected a whole number, got {value!r}")
        if value < 0 or (value == 0 and name not in ("experts", "topk", "shared_experts",
                                                       "dense_layers", "max_position")):
            raise ValueError(f"must be positive, got {value}")
        return value
    if name in _BOOL_FIELDS:
        if not isinstance(value, bool):
            raise ValueError(f"expected true or false, got {value!r}")
        return value
    return str(value)


#: the largest published models are far inside these (about 128 layers, hidden 18k, 256
#: experts, vocabularies of 256k)
_SIZE_LIMITS = {"layers": 4096, "hidden": 2 ** 20, "ffn": 2 ** 22, "heads": 2 ** 16,
                "vocab": 2 ** 24, "experts": 2 ** 16, "moe_ffn": 2 ** 22, "head_dim": 2 ** 16,
                "kv_groups": 2 ** 16, "topk": 2 ** 16, "shared_experts": 2 ** 16,
                "dense_layers": 4096, "max_position": 2 ** 30}


def check_model(m: ModelSpec, source: str | None = None) -> None:
    def bad(msg, fld):
        raise InputError(msg, path=source, field=fld)

    for f in fields(m):
        if f.name in _INT_FIELDS:
            v = getattr(m, f.name)
            if v is not None and (not isinstance(v, int) or v < 0):
                bad(f"expected a non-negative whole number, got {v!r}", f.name)
    for name in ("layers", "hidden", "ffn", "heads", "vocab"):
        if getattr(m, name) < 1:
            bad(f"must be at least 1, got {getattr(m, name)}", name)
    for name, limit in _SIZE_LIMITS.items():  # beyond these a size is a typo (and a hang)
        v = getattr(m, name, None)
        if isinstance(v, int) and v > limit:
            bad(f"must be at most {limit:,}, got {v:,}", name)
    if m.head_dim is None and m.hidden % m.heads:
        bad(f"hidden size {m.hidden} is not divisible by {m.heads} heads (give head_dim)",
            "heads")
    if m.heads % m.kv:
        bad(f"{m.heads} heads are not divisible into {m.kv} query groups", "kv_groups")
    if m.is_moe:
        if not 1 <= m.topk <= m.experts:
            bad(f"top-k must be between 1 and the number of experts ({m.experts}), got {m.topk}",
                "topk")
        if m.dense_layers >= m.layers:
            bad(f"dense_layers ({m.dense_layers}) leaves no MoE layer of {m.layers}",
                "dense_layers")
    elif m.topk or m.shared_experts:
        bad("topk/shared_experts given for a model without experts (set experts)", "experts")
