"""The small expression language in which config/claims.yaml writes the quantity that tests a claim.

A quantity is arithmetic over cells of one tidy table (the claim's ``table``)::

    acc{method=lnl, sigma2=0.020} - acc{method=baseline, sigma2=0.020}
    min(acc{method=lnl, sigma2=*} - acc{method=baseline, sigma2=*})
    mean(acc{method=random, split=train, share=0.8|0.9}) - 0.5
    map{augmentation=nomix, lr=0.001} - max(map{augmentation=nomix, lr=0.0001}, map{augmentation=nomix, lr=1e-05})

- ``measure{key=value, ...}`` is one cell: the table row whose key columns have these values, and the measure's
  columns in it (``acc`` -> ``acc_mean``, ``acc_std``, ``n_seeds``; see ``debias.claims_tables``). Values are
  numbers, bare words or quoted strings (``column="Avg (train-weighted)"``).
- ``key=*`` (every value of the key the table has) and ``key=a|b|c`` (those of them the table has) may only
  appear inside ``mean( )``, ``min( )`` or ``max( )``, which then range over them: an aggregate binds every such
  key that occurs in its arguments outside a nested aggregate, all of them jointly (the same value in every cell
  of one term), and takes the mean, the minimum or the maximum over the values of all its arguments.
- ``+``, ``-``, unary ``-``, and ``*`` or ``/`` by a number: the quantity stays linear in the cells' means, which
  is what its interval needs (``debias.claims_stats``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Union

from debias.errors import InputError

AGGREGATES = ("mean", "min", "max")
ANY = "*"


class ExpressionError(InputError, ValueError):
    """A quantity that does not parse, or uses a multi-valued key outside an aggregate."""


@dataclass(frozen=True)
class Num:
    value: float


@dataclass(frozen=True)
class Cell:
    measure: str
    selectors: tuple[tuple[str, Union[str, tuple]], ...]  # (key, ANY or a tuple of values)

    def multi_keys(self) -> set[str]:
        return {k for k, v in self.selectors if v == ANY or len(v) > 1}

    def text(self) -> str:
        sel = ", ".join(f"{k}={v if v == ANY else '|'.join(map(str, v))}" for k, v in self.selectors)
        return f"{self.measure}{{{sel}}}"


@dataclass(frozen=True)
class Neg:
    arg: "Node"


@dataclass(frozen=True)
class Bin:
    op: str
    left: "Node"
    right: "Node"


@dataclass(frozen=True)
class Agg:
    func: str
    args: tuple["Node", ...]


Node = Union[Num, Cell, Neg, Bin, Agg]

_TOKEN = re.compile(r"""\s*(?:
    (?P<number>\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_.]*)
  | (?P<string>"[^"]*"|'[^']*')
  | (?P<op>[-+*/(){},=|])
)""", re.X)


def _tokens(text: str) -> list[tuple[str, str, int]]:
    out, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if not m:
            raise ExpressionError(f"unexpected {text[pos:].strip()[:12]!r} at character {pos + 1} of {text!r}")
        kind = m.lastgroup
        out.append((kind, m.group(kind), m.start(kind)))
        pos = m.end()
    out.append(("end", "", len(text)))
    return out


class _Parser:
    def __init__(self, text: str):
        self.text, self.toks, self.i = text, _tokens(text), 0

    def peek(self) -> tuple[str, str, int]:
        return self.toks[self.i]

    def take(self, value: str | None = None, kind: str | None = None) -> tuple[str, str, int]:
        tok = self.toks[self.i]
        if (value is not None and tok[1] != value) or (kind is not None and tok[0] != kind):
            want = repr(value) if value is not None else f"a {kind}"
            found = "the end" if tok[0] == "end" else repr(tok[1])
            raise ExpressionError(f"expected {want} at character {tok[2] + 1} of {self.text!r}, found {found}")
        self.i += 1
        return tok

    def _chain(self, ops: tuple[str, str], operand) -> Node:
        """``operand (op operand)*``, left-associative."""
        node = operand()
        while self.peek()[0] == "op" and self.peek()[1] in ops:
            node = Bin(self.take()[1], node, operand())
        return node

    def expr(self) -> Node:
        return self._chain(("+", "-"), self.term)

    def term(self) -> Node:
        return self._chain(("*", "/"), self.unary)

    def unary(self) -> Node:
        if self.peek()[1] == "-":
            self.take()
            return Neg(self.unary())
        return self.atom()

    def atom(self) -> Node:
        kind, value, pos = self.peek()
        if kind == "number":
            self.take()
            return Num(float(value))
        if value == "(":
            self.take()
            node = self.expr()
            self.take(")")
            return node
        if kind != "name":
            found = "the end" if kind == "end" else repr(value)
            raise ExpressionError(f"expected a number, a cell or an aggregate at character {pos + 1} of "
                                  f"{self.text!r}, found {found}")
        self.take()
        if self.peek()[1] == "(":
            if value not in AGGREGATES:
                raise ExpressionError(f"unknown function {value!r} in {self.text!r}; known: {', '.join(AGGREGATES)}")
            self.take("(")
            args = [self.expr()]
            while self.peek()[1] == ",":
                self.take()
                args.append(self.expr())
            self.take(")")
            return Agg(value, tuple(args))
        self.take("{")
        selectors = []
        while self.peek()[1] != "}":
            if selectors:
                self.take(",")
            key = self.take(kind="name")[1]
            if key in dict(selectors):
                raise ExpressionError(f"key {key!r} given twice in the cell {value}{{...}} of {self.text!r}")
            self.take("=")
            selectors.append((key, self.values()))
        self.take("}")
        return Cell(value, tuple(selectors))

    def values(self) -> Union[str, tuple]:
        if self.peek()[1] == ANY:
            self.take()
            return ANY
        out = [self.value()]
        while self.peek()[1] == "|":
            self.take()
            out.append(self.value())
        return tuple(out)

    def value(self) -> Union[float, str]:
        kind, value, pos = self.peek()
        if kind == "number":
            self.take()
            return float(value)
        if kind == "name":
            self.take()
            return value
        if kind == "string":
            self.take()
            return value[1:-1]
        raise ExpressionError(f"expected a value at character {pos + 1} of {self.text!r}")


def parse(text: str) -> Node:
    """The expression tree of ``text``; ExpressionError names what is wrong and where."""
    if not isinstance(text, str) or not text.strip():
        raise ExpressionError(f"empty quantity {text!r}")
    p = _Parser(text)
    node = p.expr()
    p.take(kind="end")
    _check_linear(node, text)
    free = set() if isinstance(node, Agg) else {k for c in _outside_aggregates(node) for k in c.multi_keys()}
    if free:
        raise ExpressionError(f"multi-valued key(s) {', '.join(sorted(free))} (key=* or key=a|b) outside mean( ), "
                              f"min( ) or max( ) in {text!r}: say over what the quantity aggregates")
    return node


def _check_linear(node: Node, text: str) -> None:
    if isinstance(node, Bin):
        if node.op == "*" and cells(node.left) and cells(node.right):
            raise ExpressionError(f"a product of two cells in {text!r}: multiply by numbers only (the quantity must "
                                  "stay linear in the cells)")
        if node.op == "/" and cells(node.right):
            raise ExpressionError(f"a division by a cell in {text!r}: divide by numbers only (the quantity must stay "
                                  "linear in the cells)")
    for child in _children(node):
        _check_linear(child, text)


def _children(node: Node) -> tuple:
    if isinstance(node, Neg):
        return (node.arg,)
    if isinstance(node, Bin):
        return (node.left, node.right)
    if isinstance(node, Agg):
        return node.args
    return ()


def cells(node: Node) -> list[Cell]:
    """Every cell of ``node``, in order."""
    if isinstance(node, Cell):
        return [node]
    return [c for child in _children(node) for c in cells(child)]


def direct_cells(node: Node) -> list[Cell]:
    """The cells of ``node`` that are not inside an aggregate (``node`` itself may be one: its arguments count)."""
    if isinstance(node, Agg):
        return [c for a in node.args for c in _outside_aggregates(a)]
    return _outside_aggregates(node)


def _outside_aggregates(node: Node) -> list[Cell]:
    if isinstance(node, Cell):
        return [node]
    if isinstance(node, Agg):
        return []
    return [c for child in _children(node) for c in _outside_aggregates(child)]


def direct_multi_keys(node: Node) -> set[str]:
    """The multi-valued keys an aggregate ``node`` binds (or, for any other node, that nothing would bind)."""
    return {k for c in direct_cells(node) for k in c.multi_keys()}
