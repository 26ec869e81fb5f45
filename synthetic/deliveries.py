"""What each department delivers, derived from the province's true state.

One builder per bronze resource: it yields ``(row, event_date, subject)`` for every
record the department holds at the chunk's batch. ``event_date`` is when the record last
changed, so append and incremental deliveries keep only the rows whose event falls in
the batch's window, while full snapshots keep them all. Values that are not part of the
true state (licence numbers, hospitals, schools) come from generators seeded by the
record's own key, so the same record looks the same in every batch.

Cross-department disagreements that a real province shows (a name typed with a variant
character, a stale address, a death not yet known elsewhere) are decided here and
reported through ``conflict`` so the ground truth can list them.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from synthetic.addresses import applicant_address, point_elsewhere
from synthetic.errors import ErrorRates, name_variant
from synthetic.world import Chunk, LegalPerson, Person, age, provincial_places

Row = dict[str, object]


@dataclass(frozen=True)
class Conflict:
    """A true disagreement between a source and the authoritative one."""

    subject: str
    attribute: str
    kind: str
    authoritative_source: str
    authoritative_value: object
    source: str
    value: object


@dataclass(frozen=True)
class Record:
    row: Row
    event_date: dt.date
    subject: str
    conflicts: tuple[Conflict, ...] = ()
    # Errors decided by the builder itself: (field, kind, expected outcome, true, delivered).
    injected: tuple[tuple[str, str, str, object, object], ...] = ()


class Context:
    """What a builder needs beyond the chunk: the run seed, error rates, and a stable RNG."""

    def __init__(self, seed: int, rates: ErrorRates):
        self.seed = seed
        self.rates = rates

    def rng(self, *key: object) -> random.Random:
        """A generator determined by the run seed and the record's key only."""
        return random.Random(":".join(map(str, (self.seed, *key))))


def _ts(day: dt.date, rng: random.Random) -> dt.datetime:
    return dt.datetime.combine(
        day, dt.time(rng.randint(8, 18), rng.randint(0, 59), rng.randint(0, 59))
    )


def _full_address(chunk: Chunk, person: Person) -> str:
    return chunk.addresses[person.address_id].full_address


def _typed_address(chunk: Chunk, ctx: Context, legal: LegalPerson) -> str:
    """A legal person's address as its applicant typed it, the same in every batch."""
    address = chunk.addresses[legal.address_id]
    rng = ctx.rng("applicant_address", legal.credit_code)
    return applicant_address(address, chunk.places[address.division_code], rng)


# -- 公安 public security --------------------------------------------------------------


def household_register(chunk: Chunk, ctx: Context) -> Iterator[Record]:
    for person in chunk.persons.values():
        rng = ctx.rng("household_register", person.person_id)
        cancelled = person.death_date
        conflicts: tuple[Conflict, ...] = ()
        if cancelled is not None and rng.random() < ctx.rates.deceased_still_active:
            conflicts = (
                Conflict(
                    person.person_id,
                    "alive",
                    "deceased_still_active",
                    "bronze.death_registration",
                    "deceased",
                    "bronze.household_register",
                    "active",
                ),
            )
            cancelled = None
        changed = max(d for d in (person.registration_date, cancelled, person.moved_on) if d)
        yield Record(
            {
                "person_id": person.person_id,
                "name": person.name,
                "former_name": None,
                "gender": person.gender,
                "ethnicity": person.ethnicity,
                "marital_status": person.marital_status,
                "birth_date": person.birth_date,
                "household_id": person.household_id,
                "relation_to_head": person.relation_to_head,
                "address": _full_address(chunk, person),
                "division_code": person.division_code,
                "registration_date": person.registration_date,
                "cancellation_date": cancelled,
                "cancellation_reason": "死亡" if cancelled else None,
                "update_time": _ts(changed, rng),
            },
            changed,
            person.person_id,
            conflicts,
        )


# -- 民政 civil affairs ----------------------------------------------------------------


def marriage_registration(chunk: Chunk, ctx: Context) -> Iterator[Record]:
    for person in chunk.persons.values():
        if person.gender != "1" or not person.spouse_id or person.marriage_date is None:
            continue
        wife = chunk.persons[person.spouse_id]
        rng = ctx.rng("marriage", person.person_id)
        registration_no = (
            f"J{person.division_code}-{person.marriage_date:%Y}-{rng.randint(0, 999999):06d}"
        )
        yield Record(
            {
                "registration_no": registration_no,
                "registration_type": "结婚",
                "male_id": person.person_id,
                "male_name": person.name,
                "female_id": wife.person_id,
                "female_name": wife.name,
                "registration_date": person.marriage_date,
                "registry_division_code": person.division_code,
            },
            person.marriage_date,
            person.person_id,
        )


def death_registration(chunk: Chunk, ctx: Context) -> Iterator[Record]:
    for person in chunk.persons.values():
        if person.death_date is None:
            continue
        rng = ctx.rng("death", person.person_id)
        registered = min(
            person.death_date + dt.timedelta(days=rng.randint(1, 20)), chunk.extract_date
        )
        yield Record(
            {
                "registration_no": f"S{person.division_code}{rng.randint(0, 10**8):08d}",
                "person_id": person.person_id,
                "name": person.name,
                "gender": person.gender,
                "death_date": person.death_date,
                "death_division_code": person.division_code,
                "registration_date": registered,
            },
            registered,
            person.person_id,
        )


def _legal_rows(chunk: Chunk, authority: str) -> Iterator[LegalPerson]:
    return (lp for lp in chunk.legal_persons.values() if lp.authority == authority)


def social_organization(chunk: Chunk, ctx: Context) -> Iterator[Record]:
    for org in _legal_rows(chunk, "5"):
        changed = org.deregistered or org.established
        yield Record(
            {
                "credit_code": org.credit_code,
                "name": org.name,
                "organization_type": org.entity_type,
                "legal_representative_id": org.legal_representative_id,
                "legal_representative_name": org.legal_representative_name,
                "registered_capital": org.registered_capital,
                "address": _typed_address(chunk, ctx, org),
                "division_code": org.division_code,
                "establish_date": org.established,
                "status": "注销" if org.status == "注销" else "正常",
                "deregistration_date": org.deregistered,
            },
            changed,
            org.credit_code,
        )


# -- 卫健 health -----------------------------------------------------------------------


def birth_certificate(chunk: Chunk, ctx: Context) -> Iterator[Record]:
    households: dict[str, list[Person]] = {}
    for person in chunk.persons.values():
        households.setdefault(person.household_id, []).append(person)
    for child_id, issued in chunk.births:
        child = chunk.persons[child_id]
        members = households[child.household_id]
        head = next((p for p in members if p.relation_to_head == "02"), None)
        spouse = chunk.persons.get(head.spouse_id) if head and head.spouse_id else None
        mother = next((p for p in (head, spouse) if p and p.gender == "2"), None)
        father = next((p for p in (head, spouse) if p and p.gender == "1"), None)
        rng = ctx.rng("birth", child_id)
        yield Record(
            {
                "certificate_no": f"{rng.choice('NOPQ')}{420000000 + rng.randint(0, 99999999)}",
                "child_name": child.name,
                "gender": child.gender,
                "birth_date": child.birth_date,
                "mother_id": mother.person_id if mother else None,
                "mother_name": mother.name if mother else None,
                "father_id": father.person_id if father else None,
                "father_name": father.name if father else None,
                "hospital": f"{chunk.places[child.division_code].name}人民医院",
                "division_code": child.division_code,
                "issue_date": min(issued, chunk.extract_date),
            },
            min(issued, chunk.extract_date),
            child_id,
        )


# -- 教育 education --------------------------------------------------------------------

STAGE_YEARS = {"小学": 6, "初中": 12, "高中": 15, "本科": 18}


def student_enrollment(chunk: Chunk, ctx: Context) -> Iterator[Record]:
    for person in chunk.persons.values():
        if not person.school_stage or person.death_date:
            continue
        rng = ctx.rng("school", person.person_id, person.school_stage)
        enrolled = dt.date(person.birth_date.year + STAGE_YEARS[person.school_stage], 9, 1)
        birth = person.birth_date
        conflicts: tuple[Conflict, ...] = ()
        if rng.random() < ctx.rates.birth_date_off_by_one:
            birth = birth + dt.timedelta(days=1)
            conflicts = (
                Conflict(
                    person.person_id,
                    "birth_date",
                    "birth_date_off_by_one",
                    "bronze.household_register",
                    person.birth_date,
                    "bronze.student_enrollment",
                    birth,
                ),
            )
        kind = {"小学": "小学", "初中": "中学", "高中": "中学", "本科": "大学"}[person.school_stage]
        school = f"{chunk.places[person.division_code].name}第{rng.randint(1, 12)}{kind}"
        yield Record(
            {
                "student_no": f"G{person.person_id}",
                "person_id": person.person_id,
                "name": person.name,
                "gender": person.gender,
                "birth_date": birth,
                "school_name": school,
                "school_code": f"{person.division_code}{rng.randint(1, 999):04d}",
                "stage": person.school_stage,
                "enrollment_date": min(enrolled, chunk.extract_date),
                "graduation_date": None,
                "status": "在读",
            },
            min(enrolled, chunk.extract_date),
            person.person_id,
            conflicts,
        )


# -- 人社 human resources and social security ------------------------------------------


def social_insurance(chunk: Chunk, ctx: Context) -> Iterator[Record]:
    for person in chunk.persons.values():
        if not person.employer_code:
            continue
        rng = ctx.rng("insurance", person.person_id)
        started = max(person.birth_date + dt.timedelta(days=18 * 366), dt.date(2000, 1, 1))
        started = min(started + dt.timedelta(days=rng.randint(0, 3000)), chunk.extract_date)
        ended, status, changed = None, "参保缴费", started
        conflicts: list[Conflict] = []
        if person.death_date:
            if rng.random() < ctx.rates.deceased_still_active:
                conflicts.append(
                    Conflict(
                        person.person_id,
                        "alive",
                        "deceased_still_active",
                        "bronze.death_registration",
                        "deceased",
                        "bronze.social_insurance",
                        "参保缴费",
                    )
                )
            else:
                ended, status, changed = person.death_date, "终止参保", person.death_date
        name = person.name
        variant = name_variant(name)
        if variant and rng.random() < ctx.rates.name_variant:
            conflicts.append(
                Conflict(
                    person.person_id,
                    "name",
                    "name_variant",
                    "bronze.household_register",
                    name,
                    "bronze.social_insurance",
                    variant,
                )
            )
            name = variant
        yield Record(
            {
                "person_id": person.person_id,
                "name": name,
                "insurance_type": "城镇职工基本养老保险",
                "employer_credit_code": person.employer_code,
                "start_date": started,
                "end_date": ended,
                "status": status,
                "division_code": person.division_code,
                "update_time": _ts(changed, rng),
            },
            changed,
            person.person_id,
            tuple(conflicts),
        )


# -- 税务 tax --------------------------------------------------------------------------


def natural_person_taxpayer(chunk: Chunk, ctx: Context) -> Iterator[Record]:
    for person in chunk.persons.values():
        if not person.employer_code:
            continue
        rng = ctx.rng("taxpayer", person.person_id)
        address = _full_address(chunk, person)
        conflicts: tuple[Conflict, ...] = ()
        if person.previous_address_id and rng.random() < max(
            ctx.rates.stale_address, 0.3 if ctx.rates.stale_address else 0
        ):
            stale = chunk.addresses[person.previous_address_id].full_address
            conflicts = (
                Conflict(
                    person.person_id,
                    "address",
                    "stale_address",
                    "bronze.household_register",
                    address,
                    "bronze.natural_person_taxpayer",
                    stale,
                ),
            )
            address = stale
        registered = min(
            person.birth_date + dt.timedelta(days=18 * 366 + rng.randint(0, 4000)),
            chunk.extract_date,
        )
        yield Record(
            {
                "person_id": person.person_id,
                "name": person.name,
                "address": address,
                "tax_authority_code": f"1{person.division_code}00",
                "registration_date": registered,
                "tax_status": "注销" if person.death_date else "正常",
                "update_time": _ts(person.death_date or person.moved_on or registered, rng),
            },
            person.death_date or person.moved_on or registered,
            person.person_id,
            conflicts,
        )


def enterprise_taxpayer(chunk: Chunk, ctx: Context) -> Iterator[Record]:
    for company in _legal_rows(chunk, "9"):
        rng = ctx.rng("enterprise_tax", company.credit_code)
        status = (
            "注销" if company.status == "注销" else ("非正常" if rng.random() < 0.05 else "正常")
        )
        changed = company.deregistered or company.established
        yield Record(
            {
                "credit_code": company.credit_code,
                "name": company.name,
                "taxpayer_type": "小规模纳税人"
                if company.entity_type == "individual_business" or rng.random() < 0.6
                else "一般纳税人",
                "tax_status": status,
                "registration_date": company.established + dt.timedelta(days=rng.randint(1, 30)),
                "update_time": _ts(changed, rng),
            },
            changed,
            company.credit_code,
        )


# -- 市场监管 market regulation ----------------------------------------------------------

#: One representative GB/T 4754-2017 class (4 digits) per section.
INDUSTRY_CODES = {
    "A": "0111",
    "B": "0610",
    "C": "1311",
    "D": "4411",
    "E": "4710",
    "F": "5211",
    "G": "5411",
    "H": "6210",
    "I": "6510",
    "J": "6621",
    "K": "7010",
    "L": "7211",
    "M": "7320",
    "N": "7610",
    "O": "8010",
    "P": "8331",
    "Q": "8411",
    "R": "8610",
    "S": "9521",
    "T": "9700",
}
SCOPES = {"F": "日用百货销售", "H": "餐饮服务", "E": "房屋建筑工程施工"}


def enterprise_registration(chunk: Chunk, ctx: Context) -> Iterator[Record]:
    for company in _legal_rows(chunk, "9"):
        rng = ctx.rng("enterprise", company.credit_code)
        changed = company.deregistered or company.established
        yield Record(
            {
                "credit_code": company.credit_code,
                "name": company.name,
                "entity_type": company.entity_type,
                "legal_representative_id": company.legal_representative_id,
                "legal_representative_name": company.legal_representative_name,
                "registered_capital": company.registered_capital,
                "industry_code": company.industry + INDUSTRY_CODES[company.industry],
                "status": company.status,
                "establish_date": company.established,
                "approval_date": changed,
                "deregistration_date": company.deregistered,
                "address": _typed_address(chunk, ctx, company),
                "division_code": company.division_code,
                "business_scope": "一般项目："
                + {"G": "日用百货销售", "H": "餐饮服务", "E": "房屋建筑工程施工"}.get(
                    company.industry, "技术服务、技术开发"
                ),
                "update_time": _ts(changed, rng),
            },
            changed,
            company.credit_code,
        )


# -- 编办 institution staffing ---------------------------------------------------------


def public_institution(chunk: Chunk, ctx: Context) -> Iterator[Record]:
    for unit in _legal_rows(chunk, "1"):
        rng = ctx.rng("institution", unit.credit_code)
        yield Record(
            {
                "credit_code": unit.credit_code,
                "name": unit.name,
                "legal_representative_id": unit.legal_representative_id,
                "legal_representative_name": unit.legal_representative_name,
                "funding_source": rng.choice(["财政全额拨款", "财政差额拨款", "经费自理"]),
                "registered_capital": unit.registered_capital,
                "sponsor": f"{chunk.places[unit.division_code].name}人民政府",
                "address": _typed_address(chunk, ctx, unit),
                "division_code": unit.division_code,
                "establish_date": unit.established,
                "status": "注销" if unit.status == "注销" else "正常",
            },
            unit.deregistered or unit.established,
            unit.credit_code,
        )


# -- 自然资源 natural resources ----------------------------------------------------------


def standard_address(chunk: Chunk, ctx: Context) -> Iterator[Record]:
    for address in chunk.addresses.values():
        longitude, latitude = address.longitude, address.latitude
        conflicts: tuple[Conflict, ...] = ()
        rate = ctx.rates.point_outside_division
        rng = ctx.rng("standard_address", address.address_id) if rate else None
        if rng is not None and rng.random() < rate:
            # Surveyed in the wrong place: the point lies inside another county.
            _, longitude, latitude = point_elsewhere(
                provincial_places(), address.division_code, rng
            )
            conflicts = (
                Conflict(
                    address.address_id,
                    "coordinates",
                    "point_outside_division",
                    "bronze.administrative_division",
                    address.division_code,
                    "bronze.standard_address",
                    f"{longitude:.6f},{latitude:.6f}",
                ),
            )
        yield Record(
            {
                "address_id": address.address_id,
                "full_address": address.full_address,
                "division_code": address.division_code,
                "street": None,
                "road": address.road,
                "house_number": address.house_number,
                "longitude": longitude,
                "latitude": latitude,
            },
            chunk.extract_date,
            address.address_id,
            conflicts,
        )


def administrative_division(chunk: Chunk, ctx: Context) -> Iterator[Record]:
    """行政区划: the province's GB/T 2260 divisions with history and boundaries (once)."""
    if chunk.index != 0:
        return
    from datong.reference import load_boundaries, load_divisions

    boundaries = load_boundaries()
    for division in load_divisions():
        yield Record(
            {
                "division_code": division.code,
                "name": division.name,
                "level": division.level,
                "parent_code": division.parent_code,
                "valid_from": division.valid_from,
                "valid_to": division.valid_to,
                "longitude": division.longitude,
                "latitude": division.latitude,
                "boundary_wkt": boundaries.get(division.code),
            },
            division.valid_from,
            division.code,
        )


BUILDERS: dict[str, Callable[[Chunk, Context], Iterator[Record]]] = {
    "bronze.household_register": household_register,
    "bronze.marriage_registration": marriage_registration,
    "bronze.death_registration": death_registration,
    "bronze.social_organization": social_organization,
    "bronze.birth_certificate": birth_certificate,
    "bronze.student_enrollment": student_enrollment,
    "bronze.social_insurance": social_insurance,
    "bronze.natural_person_taxpayer": natural_person_taxpayer,
    "bronze.enterprise_taxpayer": enterprise_taxpayer,
    "bronze.enterprise_registration": enterprise_registration,
    "bronze.public_institution": public_institution,
    "bronze.standard_address": standard_address,
    "bronze.administrative_division": administrative_division,
}


def adult(person: Person, on: dt.date) -> bool:
    return age(person.birth_date, on) >= 18 and person.death_date is None
