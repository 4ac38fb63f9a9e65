"""The transformer under asv: `TransformerPredict` (200 prompts of 61 pairs per preset) and
`TransformerTrainCUDA` (tokens per second of the paper preset at batch 1024, bf16 compiled
against float32 eager). The study commands (throughput tables, time to quality, recipe
comparisons) are `python -m studies.transformer`; `TrainStep` serves both."""
import time

import numpy as np
import torch

from mrbench.transformer.config import preset_shape
from mrbench.transformer.model import PRESETS, Config, InContextRegressor, predict

MODES = ["bf16-compiled", "fp32-eager"]  # the GPU table
CPU_MODES = ["fp32-eager", "bf16-autocast", "fp32-compiled"]  # the CPU table
CPU_SHAPES = ["2x4x64", "cpu", "4x4x96", "small"]  # the cpu preset is 3x4x64


class TrainStep:
    """One optimizer step of a preset (or LxHxW shape) on a fixed random batch: `mode` says
    whether it runs under bf16 autocast ("bf16" in it) and torch.compile ("compiled" in it).
    The GPU table's bf16-compiled falls back to fp32 eager without CUDA (a smoke test)."""

    def __init__(self, mode: str, preset: str = "paper", batch: int = 1024, device: str = "cuda", P: int = 61):
        torch.manual_seed(0)
        self.model = InContextRegressor(Config(d=20, max_pairs=P, **preset_shape(preset))).to(device)
        cuda = device.startswith("cuda")
        smoke = mode == "bf16-compiled" and not cuda
        self.bf16 = "bf16" in mode and not smoke
        self.step = torch.compile(self.model) if "compiled" in mode and not smoke else self.model
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=1e-4, fused=device.startswith("cuda") or None)
        self.x, self.y = torch.randn(batch, P, 20, device=device), torch.randn(batch, P, device=device)
        self.tokens, self.device = batch * (2 * P - 1), device
        for _ in range(3):  # compile and warm up
            self()
        self.sync()

    def sync(self):
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()

    def __call__(self):
        with torch.autocast(torch.device(self.device).type, dtype=torch.bfloat16, enabled=self.bf16):
            loss = ((self.step(self.x, self.y).float() - self.y) ** 2).mean()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()

    def tokens_per_second(self, steps: int = 20, seconds: float = 0.0) -> float:
        """Tokens per second over `steps` steps, or more until `seconds` have passed."""
        self.sync()
        t0, done = time.perf_counter(), 0
        while done < steps or time.perf_counter() - t0 < seconds:
            self()
            done += 1
        self.sync()
        return done * self.tokens / (time.perf_counter() - t0)


class TransformerPredict:
    params = (list(PRESETS),)
    param_names = ["preset"]
    timeout = 600

    def setup(self, preset):
        torch.manual_seed(0)
        self.model = InContextRegressor(Config(d=20, max_pairs=61, **PRESETS[preset])).eval()
        rng = np.random.default_rng(0)
        self.x = rng.standard_normal((200, 61, 20), dtype=np.float32)
        self.y = rng.standard_normal((200, 61))

    def time_predict(self, preset):
        predict(self.model, self.x, self.y)

    def peakmem_predict(self, preset):
        predict(self.model, self.x, self.y)


class TransformerTrainCUDA:
    """Tokens per second of training steps of the paper preset at batch 1024 (CUDA only)."""

    params = (MODES,)
    param_names = ["mode"]
    timeout = 600

    def setup(self, mode):
        if not torch.cuda.is_available():
            raise NotImplementedError("no CUDA device")
        self.step = TrainStep(mode)

    def track_tokens_per_second(self, mode):
        return self.step.tokens_per_second()

    track_tokens_per_second.unit = "tokens/s"


