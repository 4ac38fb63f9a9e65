"""The transformer trained in context (Garg et al. 2022; Pathak et al. 2023): a GPT-2-style
decoder that reads the prompt and predicts every prefix in one forward pass.

fit() loads the checkpoint of the spec's training distribution (user cache, then shipped with
the package) or trains one: on a GPU, or on the CPU when the recipe's estimated training time
fits `cpu_budget` seconds. Otherwise the cell is skipped with a message naming `mrbench train`.
A checkpoint that is not what its name says (see `checkpoints.load`) fails its cells, naming
the file and the mismatch; its weights' hash is in the cell key, so replacing it reruns them.
A checkpoint is found by training distribution, preset and dropout; the training parameters
(recipe and its overrides) apply only when it trains, and `info` records how it was trained.
The default preset, "auto", is the CPU transformer: per training distribution, the CPU preset
whose checkpoint is found (`checkpoints.resolve`); `info` names the one each cell ran.
"""
from mrbench.families.registry import family_of
from mrbench.solver import Solver, at_least, one_of
from mrbench.transformer import checkpoints
from mrbench.transformer.config import Config, make_recipe, preset_shape

CPU_FLOPS = 3e10  # effective training FLOP/s (6 * params * tokens) measured on 2 CPU cores
RECIPE_NAMES = ("auto", "cpu", "default", "pathak2023")  # auto: cpu on the CPU, default on a GPU


class Transformer(Solver):
    name = "transformer"
    trained = True
    group = "in-context"
    test_params = {"preset": "tiny", "recipe": "default", "steps": 20, "batch_size": 16}
    code_also = ("mrbench.transformer.model", "mrbench.transformer.train")  # imported in fit and predict

    def __init__(self, preset="auto", dropout=0.0, recipe="auto", steps=None, seconds=None, batch_size=None, lr=None,
                 cpu_budget=60.0):
        self.preset, self.dropout, self.recipe = preset, dropout, recipe
        self.steps, self.seconds, self.batch_size, self.lr = steps, seconds, batch_size, lr
        self.cpu_budget = cpu_budget

    def resolved(self, spec) -> str:
        return checkpoints.resolve(spec, self.preset, self.dropout)

    def checkpoint_key(self, spec) -> str:
        return checkpoints.key(spec, self.resolved(spec), self.dropout)

    def config(self, spec) -> Config:
        return Config(d=spec.d, max_pairs=spec.k_max + 1, dropout=self.dropout, **preset_shape(self.resolved(spec)))

    def check_params(self):
        super().check_params()
        if self.preset != "auto":
            preset_shape(self.preset)
        one_of("recipe", self.recipe, RECIPE_NAMES)
        for name in ("steps", "batch_size", "seconds", "lr"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
                raise ValueError(f"{name}={value!r}: must be a number > 0 (or None: the recipe's)")
        at_least("cpu_budget", self.cpu_budget, 0)
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout={self.dropout!r}: must be in [0, 1)")

    def training_recipe(self, device: str, spec):
        name = self.recipe if self.recipe != "auto" else ("default" if device.startswith("cuda") else "cpu")
        recipe = make_recipe(name, steps=self.steps, seconds=self.seconds, batch_size=self.batch_size, lr=self.lr)
        return recipe if self.lr is not None else family_of(spec).training_recipe(recipe)

    def artifact(self, spec):
        path = checkpoints.find(self.checkpoint_key(spec))
        return None if path is None else checkpoints.digest(path)

    def skip_reason(self, spec, device):
        if device.startswith("cuda") or checkpoints.find(self.checkpoint_key(spec)):
            return None
        recipe = self.training_recipe(device, spec)
        params = self.config(spec).n_params()
        estimate = 6 * params * recipe.steps * recipe.batch_size * (2 * spec.k_max + 1) / CPU_FLOPS
        estimate = min(estimate, recipe.seconds or estimate)
        if estimate > self.cpu_budget:
            # without --preset, `mrbench train` trains the suite's own variants, dropout included;
            # with it, this variant on every spec, even one the suite does not list
            extra = f" --preset {self.preset}" if self.preset != "auto" or self.dropout else ""
            extra += f" --dropout {self.dropout:g}" if self.dropout else ""
            if spec.seed > 0:  # each seed is its own training run
                extra += f" --seeds {spec.seed + 1}"
            return (f"no checkpoint for this training distribution and no GPU: training would take about "
                    f"{estimate:.0f} s on the CPU ({recipe.name} recipe; budget cpu_budget={self.cpu_budget:g} s); "
                    f"run `mrbench train --suite {spec.suite or 'SUITE'}{extra}` first (--resume continues it)")
        return None

    def fit(self, train, truth=None):
        from mrbench.transformer.train import train_model

        path = checkpoints.find(self.checkpoint_key(train.spec))
        if path is not None:
            self.model_, meta = checkpoints.load(path, self.device)
            self.checkpoint_, self.meta_ = str(path), checkpoints.provenance(meta)
            return self
        recipe = self.training_recipe(self.device, train.spec)
        self.model_, hist = train_model(train, self.config(train.spec), recipe, self.device, self.seed, progress=False)
        self.checkpoint_ = "trained in this run"
        self.meta_ = checkpoints.provenance({"preset": self.resolved(train.spec), "steps": hist.steps, "samples": hist.samples,
                                             "wall_seconds": round(hist.seconds, 3), "recipe": recipe.to_dict(),
                                             "device": self.device})
        return self

    def predict(self, x, y):
        from mrbench.transformer.model import predict

        return predict(self.model_, x, y, self.device)

    def info(self):
        return {"checkpoint": self.checkpoint_, "parameters": self.model_.n_params(), **self.meta_}
