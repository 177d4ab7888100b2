"""One registry type for every named, pluggable thing: model kinds, training methods,
presets, dataset readers, inference backends.

A registry maps names to items, in registration order, each with a line of help and any
aliases (another name for the same item). Choices, `--help` texts and "unknown name" errors
all read from it, so adding an item is one `register` call and nothing else lists it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Generic, Iterator, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    item: T
    help: str
    aliases: tuple[str, ...]


class Registry(Generic[T]):
    """Named items of one kind.

    Args:
        kind: what an item is called in messages ("method", "backend").
        error: the exception `get` raises for an unknown name (called with the message).
    """

    def __init__(self, kind: str, error: Callable[[str], Exception] = KeyError):
        self.kind = kind
        self.error = error
        self._entries: dict[str, Entry[T]] = {}
        self._aliases: dict[str, str] = {}

    def register(self, name: str, item: T, help: str = "", aliases: tuple[str, ...] = ()) -> T:
        """Add (or replace) `name`; returns the item, so it can decorate a definition."""
        for a in aliases:
            if a in self._entries:
                raise ValueError(f"{self.kind} alias {a!r} is already a {self.kind} name")
        old = self._entries.get(name)
        if old is not None:
            for a in old.aliases:
                self._aliases.pop(a, None)
        self._entries[name] = Entry(name, item, help, tuple(aliases))
        self._aliases.update({a: name for a in aliases})
        return item

    def canonical(self, name: str) -> str:
        """The registered name for `name` or one of its aliases; `error` if neither."""
        if name in self._entries:
            return name
        if name in self._aliases:
            return self._aliases[name]
        raise self.error(f"unknown {self.kind} {name!r}; choose one of {', '.join(self.choices())}")

    def get(self, name: str) -> T:
        return self._entries[self.canonical(name)].item

    __getitem__ = get

    def names(self) -> tuple[str, ...]:
        """Registered names in registration order, without aliases."""
        return tuple(self._entries)

    def choices(self) -> tuple[str, ...]:
        """Every name a user may give, aliases included, sorted."""
        return tuple(sorted([*self._entries, *self._aliases]))

    def help(self, sep: str = "; ") -> str:
        """'name: help' for every item, in registration order, with its aliases."""
        parts = []
        for e in self._entries.values():
            also = f" (also {', '.join(e.aliases)})" if e.aliases else ""
            parts.append(f"{e.name}{also}: {e.help}" if e.help else f"{e.name}{also}")
        return sep.join(parts)

    def entries(self) -> tuple[Entry[T], ...]:
        return tuple(self._entries.values())

    def items(self) -> list[tuple[str, T]]:
        return [(e.name, e.item) for e in self._entries.values()]

    def values(self) -> list[T]:
        return [e.item for e in self._entries.values()]

    def __contains__(self, name: object) -> bool:
        return name in self._entries or name in self._aliases

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)
