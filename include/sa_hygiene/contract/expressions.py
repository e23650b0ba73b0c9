"""What a workflow's scope and expectations may say, checked when the configuration loads.

A scope is a pandas expression evaluated on every row of a frame, and an expectation's
arguments are compared with a frame's columns: a name the frame lacks, a date compared with a
number, arithmetic on text (``'a' * 200000000``) or a set expectation given one value would fail
at 08:00, or silently match nothing. Here each is parsed (only comparisons, logic and arithmetic
over names and constants), and typed against the frame's column kinds (``schema.FRAMES``) and
the ``@parameters``, so ``config`` reports it with its key before anything runs.
"""

from __future__ import annotations

import ast
import datetime
import itertools
import re
from collections import deque
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sa_hygiene.contract.config import Expectation

# An @parameter of a scope or an expectation's argument: a threshold, a list, or @as_of.
PARAM = re.compile(r"@([A-Za-z_]\w*)")

_ALLOWED_NODES = (
    ast.Expression, ast.BoolOp, ast.BinOp, ast.UnaryOp, ast.Compare, ast.Name, ast.Load,
    ast.Constant, ast.And, ast.Or, ast.Not, ast.Invert, ast.Eq, ast.NotEq, ast.Lt, ast.LtE,
    ast.Gt, ast.GtE, ast.Add, ast.Sub, ast.Mult, ast.Div, ast.BitAnd, ast.BitOr, ast.USub,
    ast.In, ast.NotIn, ast.List,
)  # fmt: skip
# ``column in [constants]``: one set look-up (pandas' isin) where a chain of ``==`` would compare
# the whole column once per value (a user alert's "my region" names a region's people).
MAX_LIST_ITEMS = 5000
# A scope is evaluated on every row of a frame: a long text constant (or arithmetic that
# would build one) costs memory per evaluation, and no field of the contract needs it.
MAX_TEXT_CONSTANT = 1000


@lru_cache(maxsize=4096)
def parse_scope(expr: str) -> ast.Expression:
    """The expression's tree (``@name`` read as ``__param_name``); raises SyntaxError.

    Parsed once per distinct expression and kept (the tree is read, never changed): a user
    alert's "my region" lists a region's people, hundreds of kilobytes of text across two
    hundred alerts, which the configuration check and the engine both read, and alerts of one
    region share their scope.
    """
    text = PARAM.sub(r"__param_\1", expr)
    tree = _with_id_lists(text) if len(text) > ID_LISTS_FROM else None
    if tree is None:
        tree = ast.parse(text, mode="eval")
    for node in _nodes(tree):
        if not isinstance(node, _ALLOWED_NODES):
            raise SyntaxError(f"{type(node).__name__} is not allowed in a scope")
    return tree


# A list of quoted Ids, as the user-alert compiler writes a scope's people and accounts
# (``user_alerts._ids_of``): the same region's list is in the scope of every alert of its
# people, thousands of Ids that make most of the text Python would otherwise parse each time.
ID_LIST = re.compile(r"\['[A-Za-z0-9]{15,18}'(?:, '[A-Za-z0-9]{15,18}')*\]")
ID_LISTS_FROM = 2000  # characters: shorter texts are parsed whole
_HOLE = "__idlist_"


def _with_id_lists(text: str) -> ast.Expression | None:
    """The tree of ``text`` with its lists of quoted Ids parsed once per distinct list (shared,
    read-only nodes); None when there are none, or when one sat inside a text constant (the
    whole text is then parsed as written)."""
    if _HOLE in text:
        return None
    lists: list[str] = []

    def hole(m: re.Match) -> str:
        lists.append(m.group(0))
        return f"{_HOLE}{len(lists) - 1}"

    short = ID_LIST.sub(hole, text)
    if not lists:
        return None
    tree = ast.parse(short, mode="eval")
    if any(isinstance(x, ast.Constant) and isinstance(x.value, str) and _HOLE in x.value for x in ast.walk(tree)):
        return None  # a list's text was inside a text constant
    fill = _Fill([_id_list(t) for t in lists])
    tree = fill.visit(tree)
    return tree if len(fill.used) == len(lists) else None


@lru_cache(maxsize=512)
def _id_list(text: str) -> ast.List:
    return _IdList(tuple(re.findall(r"'([A-Za-z0-9]{15,18})'", text)))


class _IdList(ast.List):
    """A list of quoted Ids, as ``ast.parse`` makes it, but its items' nodes are made only when
    first read. The configuration check reads what it needs of such a list from what is kept on
    the node (every item a text constant: ``_all_constants``, ``_list_kinds``) and the engine
    reads its values (``columns._node``); only printing the tree (an error message's
    ``_show``) reads the items (``predicates.holds`` evaluates the text, not this tree). Two
    hundred alerts name seven regions' lists of up to 5,000 Ids: 35 ms of constant nodes a run
    for nothing.

    It prints and dumps as the ``List`` it stands for (its class is named so), and
    ``isinstance(node, ast.List)`` holds.
    """

    def __init__(self, values: tuple[str, ...] = ()):  # no values: as a copy or pickle makes it
        super().__init__(ctx=ast.Load())
        self.values = values
        self._all_constants = True
        self._members = (values, True)  # what columns._node reads: the values, all text
        self._first_of_each_type = [ast.Constant(values[0])] if values else []  # _list_kinds' answer

    @property
    def elts(self) -> list[ast.expr]:  # type: ignore[override]
        made = self.__dict__.get("_elts")
        if made is None:
            made = self.__dict__["_elts"] = list(map(ast.Constant, self.values))
        return made

    @elts.setter
    def elts(self, items: list[ast.expr]) -> None:
        self.__dict__["_elts"] = items


_IdList.__name__ = "List"  # ast.dump, unparse and messages name the node by its kind (pickle by its place)


class _Fill(ast.NodeTransformer):
    """Puts each list back where its placeholder name stands."""

    def __init__(self, lists: list[ast.List]):
        self.lists = lists
        self.used: set[int] = set()

    def visit_Name(self, node: ast.Name) -> ast.AST:
        if node.id.startswith(_HOLE) and node.id[len(_HOLE) :].isdigit():
            k = int(node.id[len(_HOLE) :])
            if k < len(self.lists) and k not in self.used:
                self.used.add(k)
                return self.lists[k]
        return node


def _nodes(tree: ast.AST):
    """``ast.walk`` without the items of a list of constants, which are yielded as the list alone:
    a user alert's "my region" lists a region's people, a thousand nodes that are all allowed
    constants and name nothing (``_membership`` checks each item's kind)."""
    todo = deque([tree])  # breadth first, in ast.walk's order
    while todo:
        node = todo.popleft()
        yield node
        if isinstance(node, ast.List) and _all_constants(node):
            continue
        todo.extend(ast.iter_child_nodes(node))


def _all_constants(node: ast.List) -> bool:
    """Whether every item of the list is a constant; kept on the node (a region's list is one
    node shared by the scopes of its people's alerts, walked by each)."""
    known = getattr(node, "_all_constants", None)
    if known is None:
        known = node._all_constants = all(type(e) is ast.Constant for e in node.elts)  # type: ignore[attr-defined]
    return known


@lru_cache(maxsize=4096)
def expression_names(expr: str) -> tuple[frozenset[str], frozenset[str]]:
    """(column names, @parameter names) used by a scope expression; raises SyntaxError."""
    tree = parse_scope(expr)
    names = {n.id for n in _nodes(tree) if isinstance(n, ast.Name)}
    return frozenset(n for n in names if not n.startswith("__param_")), frozenset(n[8:] for n in names if n.startswith("__param_"))


def value_kind(value: Any) -> str | None:
    """The frame kind (schema.FrameKind) of a configured value, "list" for a list, None for null."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, datetime.datetime):
        return "datetime"
    if isinstance(value, datetime.date):
        return "date"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list | tuple):
        return "list"
    return None


def _show(node: ast.AST) -> str:
    text = ast.unparse(node).replace("__param_", "@")
    return text if len(text) <= 60 else text[:57] + "..."


def expression_kind(node: ast.AST, columns: dict[str, str], params: dict[str, str]) -> str | None:
    """The kind of a scope (sub)expression, None when unknown (an unknown name, reported apart).

    Raises TypeError where pandas would fail at run time or build something huge: a
    comparison of different kinds (a date with a number), arithmetic on anything but numbers
    (``'a' * 200000000``), logic on anything but booleans, a very long text constant.
    """
    kind = lambda n: expression_kind(n, columns, params)  # noqa: E731
    if isinstance(node, ast.Expression):
        return kind(node.body)
    if isinstance(node, ast.Constant):
        if isinstance(node.value, str) and len(node.value) > MAX_TEXT_CONSTANT:
            raise TypeError(f"a text constant longer than {MAX_TEXT_CONSTANT} characters")
        return value_kind(node.value)
    if isinstance(node, ast.Name):
        return params.get(node.id[8:]) if node.id.startswith("__param_") else columns.get(node.id)
    if isinstance(node, ast.BoolOp) or isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not | ast.Invert):
        _expect(node, [node.values if isinstance(node, ast.BoolOp) else [node.operand]][0], {"bool"}, "logic", kind)
        return "bool"
    if isinstance(node, ast.UnaryOp):
        _expect(node, [node.operand], {"number"}, "arithmetic", kind)
        return "number"
    if isinstance(node, ast.BinOp):
        if isinstance(node.op, ast.BitAnd | ast.BitOr):
            _expect(node, [node.left, node.right], {"bool"}, "logic", kind)
            return "bool"
        _expect(node, [node.left, node.right], {"number"}, "arithmetic", kind)
        return "number"
    if isinstance(node, ast.Compare) and any(isinstance(op, ast.In | ast.NotIn) for op in node.ops):
        return _membership(node, kind)
    if isinstance(node, ast.List):
        raise TypeError(f"a list ({_show(node)}) only follows 'in'")
    if isinstance(node, ast.Compare):
        operands = [node.left, *node.comparators]
        kinds = [kind(n) for n in operands]
        for n, k in zip(operands, kinds, strict=True):
            if k in ("list", "multi"):
                raise TypeError(f"cannot compare {_show(n)} (a {k}) with one value")
        for (a, ka), (b, kb) in itertools.pairwise(zip(operands, kinds, strict=True)):
            if ka and kb and ka != kb:
                raise TypeError(f"cannot compare {_show(a)} (a {ka}) with {_show(b)} (a {kb})")
        return "bool"
    raise TypeError(f"{type(node).__name__} is not allowed in a scope")


def _membership(node: ast.Compare, kind) -> str:
    """``column in [a, b]``: one comparison, a column on the left, a list of constants of its kind."""
    if len(node.ops) != 1 or not isinstance(node.comparators[0], ast.List):
        raise TypeError(f"'in' takes one list of constants: {_show(node)}")
    items = node.comparators[0]
    if len(items.values if isinstance(items, _IdList) else items.elts) > MAX_LIST_ITEMS:
        raise TypeError(f"a list of more than {MAX_LIST_ITEMS} values")
    left = kind(node.left)
    if left in ("list", "multi"):
        raise TypeError(f"cannot look {_show(node.left)} (a {left}) up in a list")
    for item in _list_kinds(node.comparators[0]):
        k = kind(item)
        if left and k and k != left:
            raise TypeError(f"cannot look {_show(node.left)} (a {left}) up among {_show(item)} (a {k})")
    return "bool"


def _list_kinds(node: ast.List) -> list[ast.Constant]:
    """The first item of each type of a list after 'in' (a region's people are a thousand texts
    of one kind: each kind is checked once); TypeError for an item that is no constant or too
    long a text. Kept on the node: a region's list is one node shared by its alerts' scopes."""
    first = getattr(node, "_first_of_each_type", None)
    if first is not None:
        return first
    for item in node.elts:
        if not isinstance(item, ast.Constant):
            raise TypeError(f"a list after 'in' holds constants only: {_show(item)}")
    by_type: dict[type, ast.Constant] = {}
    for item in node.elts:
        by_type.setdefault(type(item.value), item)
        if isinstance(item.value, str) and len(item.value) > MAX_TEXT_CONSTANT:
            raise TypeError(f"a text constant longer than {MAX_TEXT_CONSTANT} characters")
    node._first_of_each_type = list(by_type.values())  # type: ignore[attr-defined]
    return node._first_of_each_type  # type: ignore[attr-defined]


def _expect(node: ast.AST, operands: list, kinds: set[str], what: str, kind) -> None:
    for operand in operands:
        k = kind(operand)
        if k is not None and k not in kinds:
            raise TypeError(f"{what} on {_show(operand)} (a {k}) in {_show(node)}: only on {' or '.join(sorted(kinds))}")


def check_expression(expr: str, frame: str, columns: dict[str, str], params: dict[str, str]) -> list[str]:
    try:
        tree = parse_scope(expr)
    except SyntaxError as exc:
        return [f"cannot parse {expr!r}: {exc.msg}"]
    used, used_params = expression_names(expr)
    errors = [f"unknown field {name!r} of frame {frame!r}" for name in sorted(used - set(columns))]
    errors += [f"unknown parameter @{name}" for name in sorted(used_params - set(params))]
    try:
        kind = expression_kind(tree, columns, params)
    except TypeError as exc:
        return [*errors, str(exc)]
    if kind not in ("bool", None):
        errors.append(f"{expr!r} is a {kind}, not true or false per row")
    return errors


# Which column kinds each expectation can check, and what its values must be.
EXPECTATION_KINDS = {
    "in_set": {"text", "date", "number", "bool"},
    "not_in_set": {"text", "date", "number", "bool"},
    "each_in_set": {"multi"},
    "between": {"date", "number"},
    "pair_equal": {"text", "date", "datetime", "number", "bool"},
    "pair_greater": {"date", "datetime", "number"},
    "match_regex": {"text"},
    "min_length": {"text"},
}


def check_expectation(e: Expectation, columns: dict[str, str], params: dict[str, str]) -> list[tuple[str, str]]:
    """(attribute, why) of each problem of one expectation whose columns exist."""
    column_kind = columns[e.column]
    allowed = EXPECTATION_KINDS.get(e.expectation)
    if allowed and column_kind not in allowed:
        return [("column", f"{e.expectation} cannot check {e.column!r}, a {column_kind} (only {', '.join(sorted(allowed))})")]
    errors = []
    if e.other is not None and columns[e.other] != column_kind:
        errors.append(("other", f"{e.other!r} is a {columns[e.other]}, {e.column!r} a {column_kind}"))

    def kind_of(value: Any) -> str | None:
        m = PARAM.fullmatch(value) if isinstance(value, str) else None
        return params.get(m.group(1)) if m else value_kind(value)

    if e.values is not None:
        whole = kind_of(e.values) if isinstance(e.values, str) else "list"
        if whole != "list":
            errors.append(("values", f"{e.values!r} is a {whole}: {e.expectation} needs a list of values"))
        else:
            items = e.values if isinstance(e.values, list) else []
            want = "text" if column_kind == "multi" else column_kind
            for value in items:
                k = kind_of(value)
                if k is not None and k != want:
                    errors.append(("values", f"{value!r} is a {k}, {e.column!r} holds {want} values"))
    for attr in ("min", "max"):
        value = getattr(e, attr)
        want = "number" if e.expectation == "min_length" else column_kind
        k = kind_of(value)
        if value is not None and k is not None and k != want:
            errors.append((attr, f"{value!r} is a {k}, {e.column!r} is compared as a {want}"))
    if e.regex is not None:
        try:
            re.compile(e.regex)
        except re.error as exc:
            errors.append(("regex", f"{e.expectation}: {e.regex!r} is not a regular expression: {exc}"))
    return errors
