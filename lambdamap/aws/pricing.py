"""AWS Lambda's price model, as pure arithmetic (no boto3): what an invocation of a given duration costs.

Every invocation is billed for its duration rounded up to the millisecond, at the configured memory (GB-seconds),
plus a price per request. The prices are configuration (:class:`LambdaPricing`), defaulting to the published
on-demand prices of US East (N. Virginia), first volume tier, from https://aws.amazon.com/lambda/pricing/. Other
regions: pass your own ``LambdaPricing``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class LambdaPricing:
    """USD prices of AWS Lambda on-demand use (defaults: us-east-1, first tier, as published)."""

    gb_second_x86_64: float = 0.0000166667
    gb_second_arm64: float = 0.0000133334
    per_request: float = 0.20 / 1_000_000

    def gb_second(self, architecture: str) -> float:
        if architecture not in ("x86_64", "arm64"):
            raise ValueError(f"architecture must be 'x86_64' or 'arm64', got {architecture!r}")
        return self.gb_second_arm64 if architecture == "arm64" else self.gb_second_x86_64


DEFAULT_PRICING = LambdaPricing()


def lambda_cost(invocation_seconds: Iterable[float], memory_mb: int, *, architecture: str = "x86_64",
                pricing: LambdaPricing = DEFAULT_PRICING) -> float:
    """Estimated USD cost of invocations lasting ``invocation_seconds`` each, at ``memory_mb``."""
    if not 128 <= memory_mb <= 10_240:
        raise ValueError(f"Lambda memory must be 128 to 10240 MB, got {memory_mb}")
    durations = list(invocation_seconds)
    billed_ms = sum(math.ceil(max(0.0, d) * 1000) for d in durations)
    gb_seconds = memory_mb / 1024 * billed_ms / 1000
    return gb_seconds * pricing.gb_second(architecture) + len(durations) * pricing.per_request
