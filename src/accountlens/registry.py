"""One registry for what accountlens is extended by (metrics, analyses): items register
themselves by name when their module is imported; the built-in modules and those that other
installed packages name under an entry point group (`accountlens.metrics`,
`accountlens.analyses`) are imported on first use. The CLI, REST API and docs are generated
from the registries."""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Generic, Protocol, TypeVar


class Named(Protocol):
    @property
    def name(self) -> str: ...


T = TypeVar("T", bound=Named)


class Registry(Generic[T]):
    def __init__(self, kind: str, package: str, modules: tuple[str, ...], group: str,
                 error: Callable[[str], Exception]):
        """`kind`: what is registered (for messages); `modules` of `package` register the
        built-in items; `group`: the entry point group of third-party ones; `error`: the
        exception raised for an unknown name."""
        self.kind, self.group, self.error = kind, group, error
        self._modules = tuple(f"{package}.{module}" for module in modules)
        self._items: dict[str, T] = {}
        self._loaded = False
        self._lock = threading.RLock()

    def register(self, item: T) -> T:
        self._items[item.name] = item
        return item

    def all(self) -> dict[str, T]:
        """Every registered item by name, built-in ones first."""
        if not self._loaded:
            with self._lock:
                if not self._loaded:
                    for module in self._modules:
                        importlib.import_module(module)
                    for point in entry_points(group=self.group):
                        point.load()  # a module (importing it registers) or an object
                    self._loaded = True
        return self._items

    def get(self, name: str) -> T:
        items = self.all()
        if name not in items:
            raise self.error(f"unknown {self.kind} {name!r}; known: {', '.join(sorted(items))}")
        return items[name]
