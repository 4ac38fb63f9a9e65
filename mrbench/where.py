"""`where` conditions (`--where`, a claim's `where`), parsed and evaluated without eval.

A suite file or a result directory comes from someone else: its text must never run code. The
grammar is parsed with `ast` and only these nodes are allowed: comparisons (==, !=, <, <=, >, >=,
in, not in, chained), `and`, `or`, `not`, spec field names, and literal constants (numbers,
strings, true/false, None) or lists and tuples of them after `in`. No attribute, call,
subscript, arithmetic or other name. Evaluation walks the tree over a DataFrame's columns.
"""
from __future__ import annotations

import ast
import operator

import pandas as pd

from .errors import UserError

_COMPARE = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
            ast.Gt: operator.gt, ast.GtE: operator.ge}
_CONSTANTS = {"true": True, "false": False, "True": True, "False": False, "None": None, "null": None}


def parse(text: str, fields, what: str = "--where") -> ast.Expression:
    """The checked tree of a condition over `fields`; a UserError naming what is not allowed."""
    if not isinstance(text, str) or not text.strip():
        raise UserError(f"{what}: a condition must be a non-empty string, such as \"m == 5 and sigma > 0\"")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise UserError(f"{what} {text!r} is not a valid condition: {exc.msg}") from None
    fields = set(fields)
    _check(tree.body, fields, what, text)
    return tree


def _check(node, fields, what, text, operand=True):
    def refuse(part: str):
        raise UserError(f"{what} {text!r} must be a condition: {part} is not allowed; a condition compares "
                        f"spec fields with constants using ==, !=, <, <=, >, >=, in, and, or, not, such as "
                        f"\"m == 5 and sigma > 0\" (fields: {', '.join(sorted(fields))})")

    if isinstance(node, ast.BoolOp):
        for v in node.values:
            _check(v, fields, what, text)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        _check(node.operand, fields, what, text)
    elif isinstance(node, ast.Compare):
        for op in node.ops:
            if type(op) not in _COMPARE and not isinstance(op, (ast.In, ast.NotIn)):
                refuse(f"the operator {type(op).__name__}")
        for i, side in enumerate([node.left, *node.comparators]):
            if i and isinstance(node.ops[i - 1], (ast.In, ast.NotIn)):
                if not isinstance(side, (ast.List, ast.Tuple)):
                    refuse("'in' with anything but a list of constants")
                for item in side.elts:
                    _value(item, fields, what, text, refuse, name_ok=False)
            else:
                _value(side, fields, what, text, refuse)
    elif isinstance(node, ast.Name) and node.id in fields:
        pass  # a boolean field on its own ("symmetric")
    else:
        refuse(_describe(node))


def _value(node, fields, what, text, refuse, name_ok=True):
    if isinstance(node, ast.Constant) and (node.value is None or isinstance(node.value, (bool, int, float, str))):
        return
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant) \
            and isinstance(node.operand.value, (int, float)) and not isinstance(node.operand.value, bool):
        return
    if isinstance(node, ast.Name) and (node.id in _CONSTANTS or (name_ok and node.id in fields)):
        return
    if isinstance(node, ast.Name):
        refuse(f"the name {node.id!r} (not a spec field)")
    refuse(_describe(node))


def _describe(node) -> str:
    kinds = {ast.Attribute: "an attribute", ast.Call: "a call", ast.Subscript: "a subscript",
             ast.BinOp: "arithmetic", ast.Lambda: "a lambda", ast.Name: "a name"}
    for kind, text in kinds.items():
        if isinstance(node, kind):
            return f"{text} ({ast.unparse(node)[:40]})"
    return f"{type(node).__name__} ({ast.unparse(node)[:40]})"


def evaluate(text: str, frame: pd.DataFrame, fields=None, what: str = "--where") -> pd.Series:
    """One boolean per row of `frame`: the condition over its columns (`fields`: the names
    allowed, default every column)."""
    tree = parse(text, frame.columns if fields is None else fields, what)
    for node in ast.walk(tree.body):  # a field on its own must be a true/false one ("symmetric")
        bare = isinstance(node, ast.Name) and node.id in frame.columns and not _in_compare(tree.body, node)
        if bare and not pd.api.types.is_bool_dtype(frame[node.id].dropna().infer_objects()):
            raise UserError(f"{what} {text!r} must be a condition (true or false for each spec): '{node.id}' "
                            "is not a true/false field; compare it, such as \"m == 5 and sigma > 0\"")
    out = _eval(tree.body, frame)
    if not isinstance(out, pd.Series):  # a condition on constants alone: the same for every row
        out = pd.Series(bool(out), index=frame.index)
    return out.fillna(False).astype(bool)


def _eval(node, frame):
    if isinstance(node, ast.BoolOp):
        parts = [_as_bool(_eval(v, frame), frame) for v in node.values]
        out = parts[0]
        for p in parts[1:]:
            out = (out & p) if isinstance(node.op, ast.And) else (out | p)
        return out
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return ~_as_bool(_eval(node.operand, frame), frame)
    if isinstance(node, ast.UnaryOp):  # -constant
        return -_eval(node.operand, frame)
    if isinstance(node, ast.Compare):
        out, left = None, _eval(node.left, frame)
        for op, right_node in zip(node.ops, node.comparators):
            if isinstance(op, (ast.In, ast.NotIn)):
                values = [_eval(e, frame) for e in right_node.elts]
                hit = _series(left, frame).isin(values)
                part = hit if isinstance(op, ast.In) else ~hit
                right = None
            else:
                right = _eval(right_node, frame)
                part = _compare(op, left, right, frame)
            out = part if out is None else (out & part)
            left = right
        return out
    if isinstance(node, ast.Name):
        return _CONSTANTS[node.id] if node.id in _CONSTANTS and node.id not in frame.columns else frame[node.id]
    return node.value  # ast.Constant


def _in_compare(tree, name) -> bool:
    return any(isinstance(n, ast.Compare) and any(c is name for c in ast.walk(n)) for n in ast.walk(tree))


def _compare(op, left, right, frame) -> pd.Series:
    if left is None or right is None:  # == None / != None: missing values
        other = right if left is None else left
        missing = _series(other, frame).isna()
        return missing if isinstance(op, ast.Eq) else ~missing if isinstance(op, ast.NotEq) else missing & False
    fn = _COMPARE[type(op)]

    def one(a, b) -> bool:
        if a is None or b is None or (isinstance(a, float) and a != a) or (isinstance(b, float) and b != b):
            return isinstance(op, ast.NotEq)  # a missing value equals nothing
        try:
            return bool(fn(a, b))
        except TypeError:  # ordering a string against a number, say: true for no row
            return False

    a, b = _series(left, frame), _series(right, frame)
    return pd.Series([one(x, y) for x, y in zip(a.tolist(), b.tolist())], index=frame.index, dtype=bool)


def _series(value, frame) -> pd.Series:
    return value if isinstance(value, pd.Series) else pd.Series([value] * len(frame), index=frame.index)


def _as_bool(value, frame) -> pd.Series:
    return _series(value, frame).fillna(False).astype(bool)
