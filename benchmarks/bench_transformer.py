"""The transformer: CPU inference per preset (200 prompts of 61 pairs), and on a GPU the
training throughput of the paper preset (bf16 compiled against float32 eager)."""
import time

import numpy as np
import torch

from mrbench.transformer.model import PRESETS, Config, InContextRegressor
from mrbench.transformer.train import predict


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

    params = (["bf16-compiled", "fp32-eager"],)
    param_names = ["mode"]
    timeout = 600

    def setup(self, mode):
        if not torch.cuda.is_available():
            raise NotImplementedError("no CUDA device")
        torch.manual_seed(0)
        self.model = InContextRegressor(Config(d=20, max_pairs=61, **PRESETS["paper"])).cuda()
        self.step = torch.compile(self.model) if mode == "bf16-compiled" else self.model
        self.bf16 = mode == "bf16-compiled"
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=1e-4)
        self.x, self.y = torch.randn(1024, 61, 20, device="cuda"), torch.randn(1024, 61, device="cuda")
        for _ in range(3):  # compile and warm up
            self._one()
        torch.cuda.synchronize()

    def _one(self):
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.bf16):
            loss = ((self.step(self.x, self.y).float() - self.y) ** 2).mean()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()

    def track_tokens_per_second(self, mode):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(20):
            self._one()
        torch.cuda.synchronize()
        return 20 * 1024 * 121 / (time.perf_counter() - t0)

    track_tokens_per_second.unit = "tokens/s"


if __name__ == "__main__":  # python -m benchmarks.bench_transformer: the README's CPU table
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((1000, 61, 20), dtype=np.float32), rng.standard_normal((1000, 61))
    for preset in PRESETS:
        model = InContextRegressor(Config(d=20, max_pairs=61, **PRESETS[preset])).eval()
        predict(model, x[:8], y[:8])  # warm-up
        t0 = time.perf_counter()
        predict(model, x, y)
        print(f"{preset}: {time.perf_counter() - t0:.2f} s to predict 1000 prompts of 61 pairs "
              f"({model.n_params():,} parameters, {torch.get_num_threads()} threads)")
