"""GPU benchmarks: skipped (NotImplementedError in setup, asv's skip) without CUDA."""
from .common import TRAINED, dataset, fitted


def _require_cuda():
    import torch

    if not torch.cuda.is_available():
        raise NotImplementedError("no CUDA device")


class TrainedFitCUDA:
    """EM and the other pool estimators on sufficient statistics, on the GPU."""

    params = (TRAINED, [20], [60000])
    param_names = ["solver", "m", "n_train"]
    timeout = 600

    def setup(self, name, m, n_train):
        _require_cuda()
        self.ds = dataset(m, 60, n_train=n_train)
        self.ds.train.fixed()
        fitted(name, self.ds, "cuda")  # warm-up: CUDA context, kernels

    def time_fit(self, name, m, n_train):
        import torch

        fitted(name, self.ds, "cuda")
        torch.cuda.synchronize()
