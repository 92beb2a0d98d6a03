"""The dunning procedures every worker needs, followed from the compacted
`dunning.procedures` topic by a consumer of its own (no group: every worker reads all of
it), so a published change reaches running workers without a redeploy. The same consumer
follows the compacted `dunning.rates` (reference interest rates, RULES.md section 9): a
procedure with `interest_base_rate` reads them in every proposal run."""

from __future__ import annotations

import asyncio
import hashlib
from collections import deque
from collections.abc import Mapping
from decimal import Decimal

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition

from config.settings import Settings
from domain.procedures import Procedure, procedure_to_dict
from domain.rates import RateSet, timelines
from processors import convert, faust_private, limits
from schemas.codec import Codec, CodecError
from topics import broker_quirks
from topics.catalogue import PROCEDURES, RATES

log = structlog.get_logger("dunning.procedures")


class ProcedureCatalog:
    def __init__(self, settings: Settings, codec: Codec) -> None:
        self.settings = settings
        self.codec = codec
        self.procedures: dict[str, Procedure] = {}
        self.version = ""
        self.ready = asyncio.Event()
        #: the latest records not used, and why (bounded: the topic may hold many)
        self.rejected: deque[str] = deque(maxlen=100)
        #: reference rates by (rate id, valid-from day): the latest record of each key
        self.rates: dict[tuple[str, int], RateSet] = {}
        self._timelines: dict[str, tuple[tuple[int, Decimal], ...]] = {}

    def get(self) -> Mapping[str, Procedure]:
        return self.procedures

    def rate_timelines(self) -> Mapping[str, tuple[tuple[int, Decimal], ...]]:
        """Each reference rate's steps ``(valid_from, percent)``, by day."""
        return self._timelines

    def _apply_rate(self, rate: RateSet) -> None:
        self.rates[(rate.rate_id, rate.valid_from)] = rate
        self._timelines = timelines(self.rates[k] for k in sorted(self.rates))
        log.info("rate loaded", rate_id=rate.rate_id, valid_from=rate.valid_from)

    def _new_version(self) -> None:
        """Changes whenever a procedure or a rate does: a run then looks at every account."""
        self.version = hashlib.sha256(
            repr((sorted((k, procedure_to_dict(p)) for k, p in self.procedures.items()),
                  sorted(self.rates.items()) if self.rates else None)).encode()
        ).hexdigest()[:16]

    def apply(self, value: bytes) -> None:
        """Take one record of the topic; one that cannot be used is logged and left out
        (the procedures known stay as they were): a bad procedure never stops the worker."""
        try:
            limits.check_size(value)
            rtype, raw = self.codec.decode_raw(value)
            if rtype == "InterestRateSet":
                self._apply_rate(convert.rate_set(limits.check(rtype, raw)))
                self._new_version()
                return
            if rtype != "DunningProcedureDefined":
                raise convert.Unusable("unknown_record_type", rtype)
            procedure = convert.procedure(limits.check(rtype, raw))
        except (CodecError, convert.Unusable) as exc:
            self._reject(str(exc))
            return
        except Exception as exc:  # a bug, not bad input: keep the evidence, go on
            log.exception("procedure record failed")
            self._reject(f"processing_error: {type(exc).__name__}: {exc}")
            return
        self.procedures[procedure.id] = procedure
        self._new_version()
        log.info("procedure loaded", procedure=procedure.id, levels=len(procedure.levels))

    def _reject(self, reason: str) -> None:
        self.rejected.append(reason[:300])
        log.warning("procedure record not used", reason=reason[:300])

    async def follow(self) -> None:
        """Read the topic from the start, forever; `ready` once the start-up end is reached."""
        names = [self.settings.topic(PROCEDURES), self.settings.topic(RATES)]
        kwargs = self.settings.kafka_client_kwargs()
        consumer = AIOKafkaConsumer(
            **kwargs, enable_auto_commit=False, auto_offset_reset="earliest",  # type: ignore[arg-type]
            fetch_max_wait_ms=200,
        )
        await consumer.start()
        try:
            tps = await self._partitions(consumer, names)
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = await broker_quirks.true_end_offsets(kwargs, tps)
            if all(v == 0 for v in ends.values()):
                self.ready.set()
            while True:
                batch = await consumer.getmany(timeout_ms=500)
                for records in batch.values():
                    for rec in records:
                        if rec.value is not None:
                            self.apply(rec.value)
                if not self.ready.is_set():
                    positions = {tp: await consumer.position(tp) for tp in tps}
                    if all(positions[tp] >= ends[tp] for tp in tps):
                        self.ready.set()
                        log.info("procedures ready", count=len(self.procedures))
        finally:
            await consumer.stop()

    @staticmethod
    async def _partitions(consumer: AIOKafkaConsumer, names: list[str]) -> list[TopicPartition]:
        """The partitions of every topic of `names`, once the broker knows them all."""
        while True:
            found = [consumer.partitions_for_topic(n) for n in names]
            if all(found):
                return [TopicPartition(n, p) for n, ps in zip(names, found, strict=True)
                        for p in sorted(ps or ())]
            await asyncio.sleep(0.5)
            await faust_private.refresh_metadata(consumer)
