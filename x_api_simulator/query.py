"""The part of X's search syntax that users write, evaluated against the simulator's posts.

Keywords (implicit AND), ``OR``, parentheses, "exact phrases", ``-negation``, ``#hashtag``,
``@mention``, ``from:``, ``lang:``, ``is:retweet`` and ``has:links``. As on X, AND binds tighter than
OR, matching ignores case, a keyword matches whole tokens of the text (runs of letters and digits;
a run of Chinese or Japanese characters is a token apart), and ``lang:``, ``is:`` and ``has:`` cannot
stand alone: a query needs at least one keyword, phrase, hashtag, mention or ``from:``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass

MAX_QUERY_LENGTH = 512  # self-serve access (Basic, Pro, pay-per-use)
_CJK = "\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af"
_TOKEN = re.compile(rf"[{_CJK}]+|[^\W{_CJK}]+")
_LEXEME = re.compile(r'\s+|\(|\)|-?"[^"]*"|-?"|-?[^\s()"]+')


class QueryError(ValueError):
    """A query the API refuses, with X's message."""

    def __init__(self, message: str, position: int):
        super().__init__(f"There were errors processing your request: {message} (at position {position})")


@dataclass(frozen=True)
class Subject:
    """What a query looks at in a post."""

    tokens: tuple[str, ...]
    hashtags: frozenset[str]
    mentions: frozenset[str]
    username: str
    lang: str | None
    is_retweet: bool
    has_links: bool


Predicate = Callable[[Subject], bool]


def tokens(text: str) -> tuple[str, ...]:
    """The lower-case tokens of a text."""
    return tuple(_TOKEN.findall(text.lower()))


@functools.lru_cache(maxsize=100_000)
def subject(text: str, username: str, lang: str | None) -> Subject:
    """What a query sees of a post."""
    lower = text.lower()
    return Subject(
        tokens=tokens(text),
        hashtags=frozenset(re.findall(r"#(\w+)", lower)),
        mentions=frozenset(re.findall(r"@(\w+)", lower)),
        username=username.lower(),
        lang=lang,
        is_retweet=text.startswith("RT @"),
        has_links=bool(re.search(r"https?://", lower)),
    )


def _contains(haystack: tuple[str, ...], needle: tuple[str, ...]) -> bool:
    size = len(needle)
    return size > 0 and any(haystack[i : i + size] == needle for i in range(len(haystack) - size + 1))


@functools.lru_cache(maxsize=256)
def parse(query: str) -> Predicate:
    """Compile a query into a predicate on a ``Subject``; raise QueryError for what X refuses."""
    if len(query) > MAX_QUERY_LENGTH:
        raise QueryError(f"Query length {len(query)} exceeds the limit of {MAX_QUERY_LENGTH} characters", 0)
    lexemes = [(m.group(), m.start()) for m in _LEXEME.finditer(query) if not m.group().isspace()]
    predicate, standalone, rest = _or(lexemes, 0, query)
    if rest < len(lexemes):
        raise QueryError(f"Unexpected '{lexemes[rest][0]}'", lexemes[rest][1] + 1)
    if not standalone:
        raise QueryError(
            "Rules must contain a non-negation term that is not lang:, is: or has: (a standalone operator)", 1
        )
    return predicate


def _or(lexemes: list, at: int, query: str) -> tuple[Predicate, bool, int]:
    """Parse ``and_group (OR and_group)*`` from ``at``: (predicate, has a standalone term, next index)."""
    options = []
    while True:
        predicate, standalone, at = _and(lexemes, at, query)
        options.append((predicate, standalone))
        if at < len(lexemes) and lexemes[at][0] == "OR":
            at += 1
            continue
        break
    if len(options) == 1:
        return predicate, standalone, at
    predicates = [predicate for predicate, _ in options]
    return (lambda s: any(p(s) for p in predicates)), all(standalone for _, standalone in options), at


def _and(lexemes: list, at: int, query: str) -> tuple[Predicate, bool, int]:
    """Parse one or more terms joined by spaces (AND)."""
    terms = []
    while at < len(lexemes) and lexemes[at][0] not in ("OR", ")"):
        term, at = _term(lexemes, at, query)
        terms.append(term)
    if not terms:
        position = lexemes[at][1] + 1 if at < len(lexemes) else len(query)
        raise QueryError(
            "Expected a term, found " + (f"'{lexemes[at][0]}'" if at < len(lexemes) else "the end"), position
        )
    predicates = [predicate for predicate, _ in terms]
    return (lambda s: all(p(s) for p in predicates)), any(standalone for _, standalone in terms), at


def _term(lexemes: list, at: int, query: str) -> tuple[tuple[Predicate, bool], int]:
    """Parse ``-``? followed by a group, a phrase or an operator."""
    text, position = lexemes[at]
    if text == "-" and at + 1 < len(lexemes) and lexemes[at + 1][0] == "(":
        (inner, _), at = _term(lexemes, at + 1, query)
        return ((lambda s: not inner(s)), False), at
    if text == "(":
        inner, standalone, at = _or(lexemes, at + 1, query)
        if at >= len(lexemes) or lexemes[at][0] != ")":
            raise QueryError("Missing closing parenthesis", position + 1)
        return (inner, standalone), at + 1
    negated = text.startswith("-")
    predicate, standalone = _atom(text.removeprefix("-"), position + negated + 1)
    if negated:
        return ((lambda s: not predicate(s)), False), at + 1
    return (predicate, standalone), at + 1


def _atom(text: str, position: int) -> tuple[Predicate, bool]:
    """One phrase, keyword or operator: (predicate, can stand alone)."""
    lower = text.lower()
    if text.startswith('"'):
        if len(text) < 2 or not text.endswith('"'):
            raise QueryError("Unterminated quoted phrase", position)
        needle = tokens(text[1:-1])
        return (lambda s: _contains(s.tokens, needle)), True
    if lower.startswith("#") and len(lower) > 1:
        return (lambda s: lower[1:] in s.hashtags), True
    if lower.startswith("@") and len(lower) > 1:
        return (lambda s: lower[1:] in s.mentions), True
    operator, colon, value = lower.partition(":")
    if colon and operator.isalpha():
        if not value:
            raise QueryError(f"Operator '{operator}:' needs a value", position)
        if operator == "from":
            return (lambda s: s.username == value.removeprefix("@")), True
        if operator == "lang":
            return (lambda s: s.lang == value), False
        if lower == "is:retweet":
            return (lambda s: s.is_retweet), False
        if lower == "has:links":
            return (lambda s: s.has_links), False
        raise QueryError(f"Operator '{operator}:' is not supported by the X API simulator", position)
    needle = tokens(text)
    if not needle:
        raise QueryError(f"'{text}' has no letters or digits to match", position)
    return (lambda s: _contains(s.tokens, needle)), True
