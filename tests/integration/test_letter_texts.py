"""The letter service's start-up check reads the procedures in force from
`dunning.procedures` on the real broker: a level that writes a letter without a text
stops the start; the procedure as last applied is the one checked."""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path

import pytest
import yaml

from domain.procedures import parse_procedures
from letters.config import LetterSettings
from letters.service import LetterService
from letters.texts import TextsError, procedures_on_topic
from processors.convert import procedure_record
from tests.integration.harness import make_settings, provision, send
from topics.broker import EmbeddedBroker

pytestmark = pytest.mark.broker

LEVEL = {"days_in_arrears": 7, "min_item_amount": "5.00", "min_total_amount": "10.00",
         "charge": "0.00", "interest": False}


def procedure(pid: str, activities: list[list[str]]) -> dict:
    return {"id": pid, "min_days_between_dunnings": 14, "interest_rate_percent": "9.0",
            "min_interest_amount": "1.00", "levels": [
                {**copy.deepcopy(LEVEL), "level": n, "days_in_arrears": 7 * n,
                 "activities": acts} for n, acts in enumerate(activities, start=1)]}


def publish(settings, *procedures: dict) -> None:  # noqa: ANN001
    parsed = parse_procedures(yaml.safe_load(yaml.safe_dump({"procedures": list(procedures)})))
    send(settings, "dunning.procedures",
         [("DunningProcedureDefined", procedure_record(p)) for p in parsed])


def test_the_start_up_check_reads_the_procedures_in_force(
        broker: EmbeddedBroker, unique: str, tmp_path: Path) -> None:
    settings = make_settings(broker, f"texts{unique}", tmp_path / "state", partitions=1)
    provision(settings)
    letter = ["letter"]
    publish(settings, procedure("LONG", [letter, letter, letter, letter]),
            procedure("SHORT", [letter, ["collection"]]))
    assert asyncio.run(procedures_on_topic(settings)) == {"LONG": (1, 2, 3, 4),
                                                          "SHORT": (1,)}

    service = LetterService(settings, LetterSettings())
    try:
        with pytest.raises(TextsError) as caught:
            asyncio.run(service.run(idle_seconds=0.5))
    finally:
        service.close()
    assert "procedure LONG, level 4, language de: no text" in str(caught.value)
    assert "SHORT" not in str(caught.value)

    # With a text for level 4 in the default language, it starts (de/fr letters of level
    # 4 are written in English).
    folder = tmp_path / "texts"
    folder.mkdir()
    (folder / "en.toml").write_text('[levels.4]\ntitle = "Last call"\nbody = "Pay now."\n')
    service = LetterService(settings, LetterSettings(texts_folder=folder))
    try:
        assert asyncio.run(service.run(idle_seconds=0.5)) == []
    finally:
        service.close()

    # LONG applied again without its fourth letter: the check follows the last one.
    publish(settings, procedure("LONG", [letter, letter, letter, ["collection"]]))
    assert asyncio.run(procedures_on_topic(settings))["LONG"] == (1, 2, 3)
