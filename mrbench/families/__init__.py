"""Data families, registered like solvers. See base.Family for the contract, registry for
how they are found, fields for how raw values become a Spec of one."""
from .base import Family
from .fields import make_spec
from .registry import families, family_of, get, own_fields, register

__all__ = ["Family", "families", "family_of", "get", "make_spec", "own_fields", "register"]
