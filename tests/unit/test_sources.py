"""Source declarations: one per contract, each consistent with it; bad ones refused."""

from __future__ import annotations

import pytest

from datong.contracts import load_resources
from datong.sources import SourceError, load_sources


def test_every_resource_has_exactly_one_source():
    sources = load_sources()
    assert sorted(s.resource for s in sources.values()) == sorted(load_resources())


def test_department_database_source_is_jdbc_and_incremental():
    source = load_sources()["human_resources.social_insurance"]
    assert source.delivery.kind == "jdbc"
    assert source.mode == "incremental" and source.watermark == "update_time"
    assert source.retries >= 2


def test_bad_declaration_is_refused_with_its_file(tmp_path):
    folder = tmp_path / "sources" / "tax"
    folder.mkdir(parents=True)
    (folder / "enterprise_taxpayer.yaml").write_text(
        "id: tax.enterprise_taxpayer\nresource: bronze.enterprise_taxpayer\ndepartment: tax\n"
        "delivery: {kind: landing, path: tax/enterprise_taxpayer}\nschedule: every day\n"
        "mode: incremental\nowner: someone\nretries: 1\n"
    )
    with pytest.raises(SourceError) as caught:
        load_sources.__wrapped__(tmp_path / "sources")
    message = str(caught.value)
    assert "enterprise_taxpayer.yaml" in message
    assert "schedule" in message and "retries" in message
