"""The transformer trained in context (Garg et al. 2022; Pathak et al. 2023): a GPT-2-style
decoder that reads the prompt and predicts every prefix in one forward pass.

fit() loads the checkpoint of the spec's training distribution (user cache, then shipped with
the package) or trains one: on a GPU, or on the CPU when the estimated training time fits
`cpu_budget` seconds. Otherwise the cell is skipped with a message naming `mrbench train`.
The training parameters (steps, lr, ...) apply only when it trains: a checkpoint is found by
training distribution, preset and dropout, and `info` records how it was trained.
"""
from mrbench import Solver
from mrbench.transformer import checkpoints
from mrbench.solver import at_least, one_of
from mrbench.transformer.config import PRESETS, Config

CPU_FLOPS = 3e10  # effective training FLOP/s (6 * params * tokens) measured on 2 CPU cores


class Transformer(Solver):
    name = "transformer"
    trained = True
    family = "trained"
    test_params = {"preset": "tiny", "steps": 20, "batch_size": 16}
    code_also = ("mrbench.transformer.model", "mrbench.transformer.train")  # imported in fit and predict

    def __init__(self, preset="small", steps=20000, batch_size=256, lr=3e-4, dropout=0.0, seconds=None,
                 curriculum=False, position_weights="uniform", cpu_budget=60.0):
        self.preset, self.steps, self.batch_size, self.lr = preset, steps, batch_size, lr
        self.dropout, self.seconds, self.curriculum, self.cpu_budget = dropout, seconds, curriculum, cpu_budget
        self.position_weights = position_weights

    def config(self, spec) -> Config:
        return Config(d=spec.d, max_pairs=spec.k_max + 1, dropout=self.dropout, **PRESETS[self.preset])

    def check_params(self):
        super().check_params()
        one_of("preset", self.preset, PRESETS)
        one_of("position_weights", self.position_weights, ("uniform", "oracle"))
        for name in ("steps", "batch_size"):
            at_least(name, getattr(self, name), 1)
        at_least("lr", self.lr, 0, strict=True)
        at_least("cpu_budget", self.cpu_budget, 0)
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout={self.dropout!r}: must be in [0, 1)")
        if self.seconds is not None and not (isinstance(self.seconds, (int, float)) and self.seconds > 0):
            raise ValueError(f"seconds={self.seconds!r}: must be a number > 0 (or None: no time budget)")

    def skip_reason(self, spec, device):
        if device.startswith("cuda") or checkpoints.find(checkpoints.key(spec, self.preset, self.dropout)):
            return None
        params = self.config(spec).n_params()
        estimate = 6 * params * self.steps * self.batch_size * (2 * spec.k_max + 1) / CPU_FLOPS
        estimate = min(estimate, self.seconds or estimate)
        if estimate > self.cpu_budget:
            extra = f" --dropout {self.dropout:g}" if self.dropout else ""
            if spec.n_train is not None and spec.seed > 0:  # a fixed training set differs per seed
                extra += f" --seeds {spec.seed + 1}"
            return (f"no checkpoint for this training distribution and no GPU: training would take about "
                    f"{estimate:.0f} s on the CPU (budget {self.cpu_budget:g} s); run "
                    f"`mrbench train --suite {spec.suite or 'SUITE'} --preset {self.preset}{extra}` on a GPU machine")
        return None

    def fit(self, train, truth=None):
        from mrbench.transformer.train import Recipe, train_model

        name = checkpoints.key(train.spec, self.preset, self.dropout)
        path = checkpoints.find(name)
        if path is not None:
            self.model_, meta = checkpoints.load(path, self.device)
            self.checkpoint_, self.meta_ = str(path), {k: meta.get(k) for k in ("steps", "samples", "wall_seconds", "recipe")}
            return self
        recipe = Recipe(steps=self.steps, seconds=self.seconds, batch_size=self.batch_size, lr=self.lr,
                        curriculum=self.curriculum, position_weights=self.position_weights,
                        warmup=min(500, self.steps // 10))
        self.model_, hist = train_model(train, self.config(train.spec), recipe, self.device, self.seed, progress=False)
        self.checkpoint_ = "trained in this run"
        self.meta_ = {"steps": hist.steps, "samples": hist.samples, "wall_seconds": round(hist.seconds, 3),
                      "recipe": recipe.to_dict()}
        return self

    def predict(self, x, y):
        from mrbench.transformer.train import predict

        return predict(self.model_, x, y, self.device)

    def info(self):
        return {"checkpoint": self.checkpoint_, "parameters": self.model_.n_params(), **self.meta_}
