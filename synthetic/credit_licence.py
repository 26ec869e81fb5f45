"""Social-credit (双公示, red and black lists) and e-licence deliveries of a chunk."""

from __future__ import annotations

import datetime as dt
import random
import zlib
from collections.abc import Iterator
from functools import cache

from synthetic.deliveries import Conflict, Context, Record
from synthetic.identifiers import citizen_id, credit_code
from synthetic.world import Chunk, LegalPerson, Person, age

SUBJECT_KIND = {"9": "enterprise", "1": "public_institution", "5": "social_organization"}

#: (licence type code, name, issuer, years valid or None for no expiry)
LICENCE_TYPES = {
    "business_license": ("营业执照", "市场监督管理局", None),
    "resident_id_card": ("居民身份证", "公安局", 20),
    "driving_license": ("机动车驾驶证", "公安局交通管理局", 6),
    "marriage_certificate": ("结婚证", "民政局", None),
    "birth_medical_certificate": ("出生医学证明", "卫生健康委员会", None),
    "real_estate_certificate": ("不动产权证书", "自然资源和规划局", None),
    "food_business_license": ("食品经营许可证", "市场监督管理局", 5),
    "construction_qualification": ("建筑业企业资质证书", "住房和城乡建设厅", 5),
    "physician_license": ("医师执业证书", "卫生健康委员会", None),
    "degree_certificate": ("学位证书", "教育厅", None),
}


@cache
def authority_code(division_code: str, office: str) -> str:
    """The credit code of a government body (authority 1, kind 1) in a division."""
    return credit_code("1", "1", division_code, zlib.crc32(f"{division_code}{office}".encode()))


def _timestamp(day: dt.date, rng: random.Random) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(rng.randint(8, 18), rng.randint(0, 59)))


def _subject_of(legal: LegalPerson) -> tuple[str, str, str]:
    return SUBJECT_KIND[legal.authority], legal.credit_code, legal.name


def administrative_licence(chunk: Chunk, ctx: Context) -> Iterator[Record]:
    """行政许可: licensing decisions, publicised for the enterprise's lifetime."""
    for legal in chunk.legal_persons.values():
        rng = ctx.rng("admin_licence", legal.credit_code)
        if rng.random() >= 0.3:
            continue
        decided = legal.established + dt.timedelta(days=rng.randint(5, 400))
        if decided > chunk.extract_date:
            continue
        kind, subject_id, subject_name = _subject_of(legal)
        injected: tuple[tuple[str, str, str, object, object], ...] = ()
        if rng.random() < ctx.rates.dangling_reference:
            subject_id = credit_code(
                "9", "1", legal.division_code, 99_000_000 + rng.randint(0, 999_999)
            )
            injected = (
                ("subject_id", "dangling_reference", "unlinked", legal.credit_code, subject_id),
            )
        yield Record(
            {
                "decision_no": (
                    f"鄂{legal.division_code[:4]}许字〔{decided:%Y}〕{rng.randint(1, 9999)}号"
                ),
                "subject_kind": kind,
                "subject_name": subject_name,
                "subject_id": subject_id,
                "license_name": rng.choice(
                    ["食品经营许可", "道路运输经营许可", "排污许可", "建筑施工许可"]
                ),
                "license_content": "准予许可",
                "decision_date": decided,
                "valid_from": decided,
                "valid_to": decided + dt.timedelta(days=5 * 365),
                "authority_name": f"{chunk.places[legal.division_code].name}行政审批局",
                "authority_code": authority_code(legal.division_code, "行政审批局"),
            },
            decided,
            legal.credit_code,
            injected=injected,
        )


def administrative_penalty(chunk: Chunk, ctx: Context) -> Iterator[Record]:
    """行政处罚: penalty decisions with their publicity period (公示期)."""
    subjects: list[tuple[str, str, str, str, dt.date]] = []
    for legal in chunk.legal_persons.values():
        if ctx.rng("penalty", legal.credit_code).random() < 0.04:
            kind, sid, name = _subject_of(legal)
            subjects.append((kind, sid, name, legal.division_code, legal.established))
    for person in chunk.persons.values():
        if (
            age(person.birth_date, chunk.extract_date) >= 18
            and ctx.rng("penalty", person.person_id).random() < 0.002
        ):
            subjects.append(
                (
                    "natural_person",
                    person.person_id,
                    person.name,
                    person.division_code,
                    person.birth_date + dt.timedelta(days=18 * 366),
                )
            )
    for kind, subject_id, name, division, since in subjects:
        rng = ctx.rng("penalty-detail", subject_id)
        decided = max(since, chunk.extract_date - dt.timedelta(days=5 * 365)) + dt.timedelta(
            days=rng.randint(1, 1500)
        )
        if decided > chunk.extract_date:
            continue
        injected: tuple[tuple[str, str, str, object, object], ...] = ()
        if rng.random() < ctx.rates.dangling_reference:
            true_id = subject_id
            subject_id = (
                citizen_id(
                    division, dt.date(1970, 1, 1) + dt.timedelta(days=rng.randint(0, 9000)), 995
                )
                if kind == "natural_person"
                else credit_code("9", "1", division, 98_000_000 + rng.randint(0, 999_999))
            )
            injected = (("subject_id", "dangling_reference", "unlinked", true_id, subject_id),)
        # Simple penalties are public for 3 months, heavier ones for 3 years (信用修复 rules).
        heavy = rng.random() < 0.3
        yield Record(
            {
                "decision_no": f"鄂{division[:4]}罚字〔{decided:%Y}〕{rng.randint(1, 9999)}号",
                "subject_kind": kind,
                "subject_name": name,
                "subject_id": subject_id,
                "violation": rng.choice(
                    ["未按规定公示年度报告", "销售过期食品", "违规排放污水", "无证经营"]
                ),
                "penalty_type": "罚款" if not heavy else "责令停产停业",
                "penalty_amount": rng.choice([500, 2000, 5000, 10000, 50000]),
                "decision_date": decided,
                "publicity_end_date": decided + dt.timedelta(days=3 * 365 if heavy else 92),
                "authority_name": f"{chunk.places[division].name}市场监督管理局",
                "authority_code": authority_code(division, "市场监督管理局"),
            },
            decided,
            subject_id,
            injected=injected,
        )


def _list_members(chunk: Chunk, ctx: Context, list_kind: str, share: float) -> Iterator[Record]:
    for legal in chunk.legal_persons.values():
        rng = ctx.rng(list_kind, legal.credit_code)
        if legal.status != "存续" or rng.random() >= share:
            continue
        kind, subject_id, name = _subject_of(legal)
        included = max(
            legal.established, chunk.extract_date - dt.timedelta(days=900)
        ) + dt.timedelta(days=rng.randint(1, 800))
        if included > chunk.extract_date:
            continue
        yield Record(
            {
                "list_name": "纳税信用A级纳税人" if list_kind == "red" else "失信被执行人",
                "subject_kind": kind,
                "subject_id": subject_id,
                "subject_name": name,
                "reason": "年度纳税信用评价为A级"
                if list_kind == "red"
                else "有履行能力而拒不履行生效法律文书确定义务",
                "authority_name": "国家税务总局湖北省税务局"
                if list_kind == "red"
                else "湖北省高级人民法院",
                "included_date": included,
                "valid_to": included + dt.timedelta(days=365 if list_kind == "red" else 3 * 365),
                "removed_date": None,
            },
            included,
            subject_id,
        )


def credit_red_list(chunk: Chunk, ctx: Context) -> Iterator[Record]:
    return _list_members(chunk, ctx, "red", 0.02)


def credit_black_list(chunk: Chunk, ctx: Context) -> Iterator[Record]:
    return _list_members(chunk, ctx, "black", 0.01)


def e_licence(chunk: Chunk, ctx: Context) -> Iterator[Record]:
    """电子证照: every licence issued to persons and legal persons of the chunk."""
    when = chunk.extract_date
    for person in chunk.persons.values():
        years = age(person.birth_date, when)
        issued_types = []
        if years >= 16:
            issued_types.append(
                ("resident_id_card", person.birth_date + dt.timedelta(days=16 * 366))
            )
        rng = ctx.rng("licences", person.person_id)
        if years >= 20 and rng.random() < 0.35:
            issued_types.append(
                (
                    "driving_license",
                    person.birth_date + dt.timedelta(days=20 * 366 + rng.randint(0, 3000)),
                )
            )
        if years >= 23 and rng.random() < 0.2:
            issued_types.append(
                ("degree_certificate", person.birth_date + dt.timedelta(days=22 * 366 + 200))
            )
        if years >= 26 and rng.random() < 0.004:
            issued_types.append(
                ("physician_license", person.birth_date + dt.timedelta(days=26 * 366))
            )
        if person.relation_to_head == "02" and rng.random() < 0.6:
            issued_types.append(
                (
                    "real_estate_certificate",
                    max(person.registration_date, person.birth_date + dt.timedelta(days=25 * 366)),
                )
            )
        if person.marriage_date:
            issued_types.append(("marriage_certificate", person.marriage_date))
        if person.relation_to_head in ("20", "30") and (when - person.birth_date).days < 18 * 365:
            issued_types.append(
                ("birth_medical_certificate", person.birth_date + dt.timedelta(days=3))
            )
        for licence_type, issued in issued_types:
            yield from _licence(chunk, ctx, licence_type, "natural_person", person, issued)
    for legal in chunk.legal_persons.values():
        if legal.authority != "9":
            continue
        yield from _licence(chunk, ctx, "business_license", "enterprise", legal, legal.established)
        if legal.industry == "H":
            yield from _licence(
                chunk,
                ctx,
                "food_business_license",
                "enterprise",
                legal,
                legal.established + dt.timedelta(days=20),
            )
        if legal.industry == "E":
            yield from _licence(
                chunk,
                ctx,
                "construction_qualification",
                "enterprise",
                legal,
                legal.established + dt.timedelta(days=60),
            )


def _licence(
    chunk: Chunk,
    ctx: Context,
    licence_type: str,
    holder_kind: str,
    holder: Person | LegalPerson,
    issued: dt.date,
) -> Iterator[Record]:
    if issued > chunk.extract_date:
        return
    name, issuer, years = LICENCE_TYPES[licence_type]
    holder_id = holder.person_id if isinstance(holder, Person) else holder.credit_code
    rng = ctx.rng("licence", licence_type, holder_id)
    expiry = None
    conflicts: tuple[Conflict, ...] = ()
    if years:
        # Holders renew before expiry: the current licence is the latest renewal ...
        period = dt.timedelta(days=years * 365)
        renewals = max(0, (chunk.extract_date - issued) // period)
        issued = issued + renewals * period
        expiry = issued + period
        # ... except a few whose renewal never reached the e-licence library.
        if renewals and rng.random() < ctx.rates.expired_license_still_valid:
            issued, expiry = issued - period, issued
            conflicts = (
                Conflict(holder_id, "license_status", "expired_license_still_valid",
                         "bronze.e_license", f"expired {expiry}", "bronze.e_license", "有效"),
            )  # fmt: skip
    status, changed = "有效", issued
    if isinstance(holder, LegalPerson) and holder.status in ("注销", "吊销"):
        ended = holder.deregistered or issued
        if holder.status == "注销" and rng.random() < ctx.rates.deregistered_still_licensed:
            conflicts += (
                Conflict(
                    holder_id,
                    "licence_status",
                    "deregistered_still_licensed",
                    "bronze.enterprise_registration",
                    holder.status,
                    "bronze.e_license",
                    "有效",
                ),
            )
        else:
            status, changed = ("注销" if holder.status == "注销" else "吊销"), max(ended, issued)
    if (
        isinstance(holder, Person)
        and holder.death_date
        and licence_type in ("resident_id_card", "driving_license", "physician_license")
    ):
        status, changed = "注销", holder.death_date
    place = holder.division_code
    yield Record(
        {
            "license_no": f"{licence_type[:2].upper()}{place}{rng.randint(0, 10**10):010d}",
            "license_type": licence_type,
            "license_name": name,
            "holder_kind": holder_kind,
            "holder_id": holder_id,
            "holder_name": holder.name,
            "issuer_name": f"{chunk.places[place].name}{issuer}"
            if not issuer.endswith("厅")
            else f"湖北省{issuer}",
            "issuer_code": authority_code(place, issuer),
            "issue_date": issued,
            "expiry_date": expiry,
            "status": status,
            "update_time": _timestamp(changed, rng),
        },
        changed,
        holder_id,
        conflicts,
    )
