"""A small bounded, thread-safe cache for what is costly to recompute but cheap to keep: compiled
metric SQL, analysis results. Keys say when an entry is valid (e.g. the store's data version)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Iterator
from typing import Any


class BoundedCache:
    """Keeps the `size` most recently added entries; adding one more drops the oldest."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: dict[Hashable, Any] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable, default: Any = None) -> Any:
        with self._lock:
            return self._items.get(key, default)

    def kept(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """The entry under `key`, computed by `compute()` and kept when there is none (two
        threads asking at once may both compute: the result is the same)."""
        value = self.get(key)
        if value is None:
            value = compute()
            self.put(key, value)
        return value

    def put(self, key: Hashable, value: Any) -> None:
        with self._lock:
            self._items.pop(key, None)
            if len(self._items) >= self.size:
                self._items.pop(next(iter(self._items)))
            self._items[key] = value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._items

    def __iter__(self) -> Iterator[Hashable]:
        with self._lock:
            return iter(list(self._items))

    def __len__(self) -> int:
        return len(self._items)
