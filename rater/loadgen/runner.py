"""One load-generator run: generate chunks, publish them, price them, write the manifest.

    scenario = setup_scenario(settings)                 # accounts, tariffs, switches
    manifest = run(settings, LoadgenOptions(count=100_000, invalid_fraction=0.01), scenario)

Chunks are generated (vectorised) and published with send_batch; their calls are priced by the
reference (memoised) once publishing is done (or, optionally, in a second process meanwhile);
the manifest is the sum over chunks.
Publishing is open loop: at a target rate the schedule is absolute from the first message, so
time spent generating a chunk is caught up, never silently lost.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tqdm import tqdm

from rater import kafka
from rater.errors import ConfigError
from rater.loadgen.generate import GenerationOptions, Generator
from rater.loadgen.manifest import Manifest, ManifestBuilder
from rater.loadgen.numbers import NumberBook
from rater.loadgen.population import Scenario
from rater.loadgen.pricing import BackgroundPricer
from rater.loadgen.publish import Publisher
from rater.loadgen.scenario import load_tariffs
from rater.logs import get_logger
from rater.settings import Settings
from rater.tariffs.model import TariffTable

log = get_logger(__name__)

DEFAULT_CHUNK = 50_000
#: chunk size when publishing as fast as possible for a duration (bounds the overshoot)
_DURATION_CHUNK = 10_000


@dataclass(frozen=True)
class LoadgenOptions:
    """How much to publish, how fast, and what it looks like."""

    count: int | None = None
    duration_s: float | None = None
    #: messages per second; None: as fast as possible
    rate: float | None = None
    generation: GenerationOptions = field(default_factory=GenerationOptions)
    manifest_path: Path | None = None
    #: default: a fresh id per run (time + random), so a second run is new traffic
    run_id: str | None = None
    #: default: settings.topic_cdrs
    topic: str | None = None
    progress: bool = True
    chunk_size: int = DEFAULT_CHUNK
    #: price the manifest in a second process while publishing; the default prices in this
    #: process once publishing is done: on 2 busy cores the second process (spawned, loading
    #: the tariffs) slowed publishing down more than it saved
    price_in_background: bool = False

    def __post_init__(self) -> None:
        if self.count is None and self.duration_s is None:
            raise ConfigError("give a count or a duration")
        if self.count is not None and self.count < 1:
            raise ConfigError(f"count must be at least 1, not {self.count}")
        if self.duration_s is not None and self.duration_s <= 0:
            raise ConfigError(f"duration must be positive, not {self.duration_s}")
        if self.rate is not None and self.rate <= 0:
            raise ConfigError(f"rate must be positive, not {self.rate}")
        if self.chunk_size < 1:
            raise ConfigError("chunk size must be at least 1")

    @property
    def total(self) -> int | None:
        """Messages to publish; None: as many as fit in the duration."""
        if self.count is not None:
            return self.count
        if self.rate is not None and self.duration_s is not None:
            return max(1, round(self.rate * self.duration_s))
        return None


def new_run_id(now: datetime | None = None) -> str:
    """'lg' + UTC time to the second + 4 random hex digits: unique per run, sortable."""
    moment = now or datetime.now(UTC)
    return f"lg{moment:%y%m%d%H%M%S}{secrets.token_hex(2)}"


def run(
    settings: Settings,
    options: LoadgenOptions,
    scenario: Scenario,
    tariffs: Mapping[str, Sequence[TariffTable]] | None = None,
) -> Manifest:
    """Generate, publish and price one run; returns (and writes, if asked) its manifest."""
    return asyncio.run(run_async(settings, options, scenario, tariffs))


async def run_async(  # noqa: PLR0915 - a run's steps in order: generate, publish, price, write the manifest
    settings: Settings,
    options: LoadgenOptions,
    scenario: Scenario,
    tariffs: Mapping[str, Sequence[TariffTable]] | None = None,
) -> Manifest:
    """`run` for callers that already have an event loop."""
    started_at = datetime.now(UTC)
    wall = time.perf_counter()
    run_id = options.run_id or new_run_id(started_at)
    topic = options.topic or settings.topic_cdrs
    if tariffs is None:
        tariffs = load_tariffs(settings, scenario)
    prefixes = sorted(
        {
            row.prefix
            for r in scenario.resellers
            for table in tariffs[r.buy_tariff]
            for row in table.rows
        }
    )
    book = NumberBook.from_prefixes(
        prefixes, seed=options.generation.seed, zipf_exponent=options.generation.zipf_exponent
    )
    generator = Generator(
        scenario, book, options.generation, run_id, now=int(started_at.timestamp())
    )
    builder = ManifestBuilder(scenario, generator.cards, generator.card_customer)

    if topic == settings.topic_cdrs:
        await kafka.ensure_topics(settings)
    else:
        await kafka.create_topics(settings, {topic: settings.partitions})
    total = options.total
    chunk_size = options.chunk_size
    if options.rate is not None:
        chunk_size = min(chunk_size, max(1_000, int(options.rate)))  # about a second's worth
    elif total is None:
        chunk_size = min(chunk_size, _DURATION_CHUNK)
    generate_s = 0.0
    producer = kafka.producer(settings)
    bar = tqdm(
        total=total,
        unit="msg",
        unit_scale=True,
        desc=f"loadgen {run_id}",
        disable=not options.progress,
    )
    with BackgroundPricer(
        scenario, tariffs, book, inline=not options.price_in_background
    ) as pricer:
        await producer.start()
        try:
            publisher = Publisher(producer, topic, rate=options.rate, progress=bar)
            await publisher.start()
            made = 0
            clock = time.perf_counter()
            while True:
                if total is not None:
                    n = min(chunk_size, total - made)
                else:
                    assert options.duration_s is not None
                    n = 0 if time.perf_counter() - clock >= options.duration_s else chunk_size
                if n <= 0:
                    break
                t0 = time.perf_counter()
                chunk = generator.chunk(n)
                generate_s += time.perf_counter() - t0
                await publisher.publish(chunk.keys, chunk.values)
                made += len(chunk)
                # the reference prices it in another process while the next chunk is made
                pricer.submit(chunk)
            stats = await publisher.flush()
        finally:
            bar.close()
            await producer.stop()
        for chunk, priced in pricer.results():
            builder.add(chunk, priced)

    manifest = builder.build(
        run_id=run_id,
        topic=topic,
        seed=options.generation.seed,
        created_at=started_at.isoformat(),
        options=_options_json(options),
    )
    manifest.publish = stats.to_json()
    manifest.timings = {
        "generate": round(generate_s, 3),
        "publish_busy": round(stats.busy_seconds, 3),
        "wait_for_pricing": round(pricer.seconds, 3),
        "total": round(time.perf_counter() - wall, 3),
    }
    manifest.reference_calls = pricer.reference_calls
    if options.manifest_path is not None:
        manifest.write(options.manifest_path)
    log.info(
        "loadgen done", run_id=run_id, published=stats.messages, rate=round(stats.rate),
        seconds=round(stats.seconds, 2), manifest=str(options.manifest_path or ""),
    )  # fmt: skip
    return manifest


def _options_json(options: LoadgenOptions) -> dict[str, Any]:
    out = asdict(options)
    out["manifest_path"] = str(options.manifest_path) if options.manifest_path else None
    out["generation"]["invalid_kinds"] = [k.value for k in options.generation.invalid_kinds]
    return out
