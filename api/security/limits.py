"""Per-key rate limits: a token bucket for each key, in each worker process."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from graph.errors import RateLimited


class RateLimiter:
    """``rate`` requests a second per key on average, bursts of up to ``burst``.

    Buckets live in the process: with N uvicorn workers a key may send up to N
    times the rate in all, which the settings' documentation says.
    """

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, key: str) -> None:
        """Spend one request of ``key``'s allowance; ``RateLimited`` when it has none."""
        now = self._clock()
        with self._lock:
            tokens, since = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - since) * self.rate)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                wait = (1.0 - tokens) / self.rate
                raise RateLimited(
                    f"over {self.rate:g} requests a second with this key; retry in {wait:.2f} s",
                    details={"retry_after_seconds": round(wait, 3)},
                )
            self._buckets[key] = (tokens - 1.0, now)
