"""Model configuration and presets (no torch import: planning and skip checks stay light)."""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, replace

TOKEN_FORMATS = ("interleaved", "pairs")


@dataclass(frozen=True)
class Config:
    d: int = 20  # covariate dimension
    max_pairs: int = 61  # k_max + 1
    n_layer: int = 12
    n_head: int = 8
    n_embd: int = 256
    dropout: float = 0.0
    # "interleaved" (x and y tokens, Garg et al.) or "pairs" (one token per pair); checkpoints
    # written before the field existed have no entry and are interleaved
    tokens: str = "interleaved"

    def __post_init__(self):
        if self.tokens not in TOKEN_FORMATS:
            raise ValueError(f"tokens={self.tokens!r}: must be one of {', '.join(TOKEN_FORMATS)}")

    def token_dim(self) -> int:
        return 2 * self.d + 1 if self.tokens == "pairs" else self.d

    def n_tokens(self) -> int:
        return self.max_pairs if self.tokens == "pairs" else 2 * self.max_pairs - 1

    def to_dict(self) -> dict:
        return asdict(self)

    def n_params(self) -> int:
        """Parameters of InContextRegressor(self), counted without building it."""
        C = self.n_embd
        blocks = self.n_layer * (12 * C * C + 13 * C)  # LayerNorms, qkv, projection, MLP
        return (self.token_dim() + 1) * C + self.n_tokens() * C + blocks + 2 * C + C + 1


PRESETS = {
    "paper": dict(n_layer=12, n_head=8, n_embd=256),  # about 9.5M parameters
    "small": dict(n_layer=6, n_head=4, n_embd=128),
    # chosen by the CPU learning curves in the README (3 layers, 4 heads, width 64: 0.16M)
    "cpu": dict(n_layer=3, n_head=4, n_embd=64),
    # the cpu shape with one token per pair (half the sequence): see the README's speed table
    "cpu-pairs": dict(n_layer=3, n_head=4, n_embd=64, tokens="pairs"),
    "tiny": dict(n_layer=2, n_head=2, n_embd=32),
}
# Any other shape as LAYERSxHEADSxWIDTH, e.g. "4x4x96" (the width a multiple of the heads).
_SHAPE = re.compile(r"^(\d+)x(\d+)x(\d+)$")


def preset_shape(preset: str) -> dict:
    """n_layer, n_head, n_embd of a named preset or of a `LxHxW` shape; ValueError otherwise."""
    if preset in PRESETS:
        return PRESETS[preset]
    match = _SHAPE.match(str(preset))
    if match:
        n_layer, n_head, n_embd = map(int, match.groups())
        if n_layer >= 1 and n_head >= 1 and n_embd % n_head == 0 and n_embd >= n_head:
            return dict(n_layer=n_layer, n_head=n_head, n_embd=n_embd)
    raise ValueError(f"preset={preset!r}: valid presets are {', '.join(PRESETS)}, or LAYERSxHEADSxWIDTH "
                     f"such as 4x4x96 (width a multiple of the heads)")


@dataclass
class Recipe:
    name: str = "default"
    steps: int = 20000
    seconds: float | None = None  # wall-clock budget; whichever of steps/seconds ends first
    batch_size: int = 256
    lr: float = 3e-4
    # linear warm-up: a fraction of the budget when < 1 (steps or seconds, as the budget is
    # counted), else a number of steps
    warmup: float = 0.02
    weight_decay: float = 0.0
    # number of pairs trained on: 11, growing by 2 up to k_max + 1 (by default half-way through
    # the budget: curriculum_share).
    # Uncompiled, the prompts themselves are shortened (a step costs what its prompts do);
    # compiled, the loss is masked instead, so that the shapes stay fixed
    curriculum: bool = False
    curriculum_dims: bool = False  # with the curriculum, also grow the dimension from 5 (fresh prompts)
    # the share of the budget left after the initial plateau over which the curriculum grows to
    # whole prompts (the rest trains on them)
    curriculum_share: float = 0.5
    # Garg et al.'s curriculum: one more phase (+2 pairs, +1 dimension) every phase_steps steps,
    # instead of growing with the budget once the plateau is left
    phase_steps: int | None = None
    schedule: str = "cosine"  # after the warm-up: "cosine" to a tenth at the end, or "constant"
    # "uniform": plain MSE over all positions; "oracle": each position's squared error divided
    # by the oracle's MSE there (plus 1% of E[y^2], so sigma = 0 stays finite), which makes the
    # loss track the mean NMSE ratio to the oracle and weighs short prefixes by their ratio
    position_weights: str = "uniform"
    compile: bool | None = None  # torch.compile; None: on CUDA only
    bf16: bool | None = None  # bf16 autocast; None: on CUDA only
    eval_every: int = 1000  # steps between evaluations
    eval_seconds: float | None = None  # or training seconds between evaluations
    # a fixed training set (n_train) can be overfit: stop once `patience` evaluations on whole
    # prompts have not improved the held-out score on its best by 0.1% (None: never stop early)
    patience: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)


# Named recipes: `mrbench train --recipe NAME`; command-line options override their fields.
RECIPES = {
    "default": Recipe(),
    # The 2-core CPU recipe, chosen by the learning curves in the README: fp32 eager (bf16 and
    # torch.compile were slower there) and a real curriculum over the prompt length and the
    # dimension, which is what leaves the initial plateau; a budget in seconds.
    "cpu": Recipe(name="cpu", steps=10**8, seconds=5400.0, batch_size=128, lr=3e-3, curriculum=True,
                  curriculum_dims=True, eval_every=10**9, eval_seconds=120.0, patience=5),
    # Pathak et al., App. C (for GPUs): Adam (AdamW without weight decay is Adam), batch 64, a
    # curriculum "as in Garg et al." in phases of 2000 steps (11 -> 61 pairs, 5 -> 20
    # dimensions: 50,000 steps), then a final stage of 250,000 steps; a constant step size of
    # 1e-4 (App. C's "0.1" is implausible for Adam, which moves each weight by about the step
    # size; 1e-4 is Garg et al.'s, whose procedure App. C follows). Use it with `--preset paper`.
    "pathak2023": Recipe(name="pathak2023", steps=300_000, batch_size=64, lr=1e-4, warmup=0.0, schedule="constant",
                         curriculum=True, curriculum_dims=True, phase_steps=2000, eval_every=10_000),
}


def make_recipe(name: str, **overrides) -> Recipe:
    """A named recipe with the given fields replaced (None: keep the recipe's). Naming a step
    budget without a seconds budget replaces the recipe's budget: `--steps 60` runs 60 steps."""
    given = {k: v for k, v in overrides.items() if v is not None}
    if "steps" in given:
        given.setdefault("seconds", None)
    return replace(RECIPES[name], **given)
