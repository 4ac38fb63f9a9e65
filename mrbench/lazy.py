"""Deferred imports: `from mrbench.lazy import torch` imports torch on first use, so the CLI,
planning and reruns with nothing to do stay fast (torch alone takes over a second to import)."""
import importlib


class LazyModule:
    def __init__(self, name: str):
        self._name, self._module = name, None

    def __getattr__(self, attr):
        if self._module is None:
            self._module = importlib.import_module(self._name)
        return getattr(self._module, attr)


torch = LazyModule("torch")
