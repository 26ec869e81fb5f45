"""The true state of a synthetic province: households, persons, legal persons, licences.

Generated in independent chunks of households (each chunk seeded from the run seed and
its index), so memory stays bounded and any chunk can be rebuilt alone. Every later
batch replays the same chunk and then applies each month's events (births, deaths,
moves, marriages, new and closed enterprises), so batch K is a pure function of
(seed, chunk, K).
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field, replace
from functools import cache
from typing import Any

from faker.providers.person.zh_CN import Provider as ChineseNames

from synthetic.addresses import point_in_division
from synthetic.identifiers import citizen_id, credit_code

#: Extraction date of batch 1; batch K is (K-1) months later.
FIRST_EXTRACT = dt.date(2026, 6, 30)

SURNAMES = list(ChineseNames.last_names.keys())
SURNAME_WEIGHTS = list(ChineseNames.last_names.values())
GIVEN_MALE = ChineseNames.first_names_male
GIVEN_FEMALE = ChineseNames.first_names_female
ROAD_WORDS = [
    "解放",
    "建设",
    "人民",
    "中山",
    "和平",
    "友谊",
    "新华",
    "光明",
    "长江",
    "汉江",
    "东湖",
    "珞喻",
    "民主",
    "胜利",
    "青年",
    "文化",
    "学府",
    "工业",
    "滨江",
    "幸福",
]
ROAD_SUFFIXES = ["路", "街", "大道", "巷"]
# Minority shares that differ from the provincial mean: 恩施 is largely 土家族 and 苗族.
ETHNICITY_ENSHI = (("01", 0.45), ("15", 0.46), ("06", 0.07), ("03", 0.02))
ETHNICITY_DEFAULT = (("01", 0.985), ("15", 0.01), ("06", 0.003), ("03", 0.002))

ENTERPRISE_TYPES = (
    # (entity type code, GB 32100 type digit under authority 9, share)
    ("individual_business", "2", 0.60),
    ("limited_liability_company", "1", 0.33),
    ("joint_stock_company", "1", 0.03),
    ("sole_proprietorship", "1", 0.02),
    ("farmers_cooperative", "3", 0.02),
)
INDUSTRY_SECTIONS = "ABCDEFGHIJKLMNOPQRST"
# Shares of new registrations by GB/T 4754-2017 section: retail and wholesale (F) lead.
INDUSTRY_WEIGHTS = (4, 1, 14, 1, 8, 30, 6, 12, 3, 2, 3, 3, 4, 1, 6, 1, 2, 2, 1, 0)


@dataclass(frozen=True)
class Place:
    """A county-level division with where its seat is."""

    code: str
    name: str
    prefecture: str
    prefecture_name: str
    longitude: float
    latitude: float


@dataclass(frozen=True)
class Address:
    address_id: str
    full_address: str
    division_code: str
    road: str
    house_number: str
    longitude: float
    latitude: float


@dataclass(frozen=True)
class Person:
    person_id: str
    name: str
    gender: str  # GB/T 2261.1: 1 male, 2 female
    ethnicity: str  # GB/T 3304
    birth_date: dt.date
    household_id: str
    relation_to_head: str  # GB/T 4761: 02 head, 10 spouse, 20 son, 30 daughter, 50 parent
    address_id: str
    division_code: str
    registration_date: dt.date
    marital_status: str = "10"  # GB/T 2261.2
    spouse_id: str | None = None
    marriage_date: dt.date | None = None
    death_date: dt.date | None = None
    moved_on: dt.date | None = None
    previous_address_id: str | None = None
    employer_code: str | None = None
    school_stage: str | None = None


@dataclass(frozen=True)
class LegalPerson:
    """An enterprise, public institution or social organisation."""

    credit_code: str
    name: str
    authority: str  # 9 market regulation, 1 institution staffing, 5 civil affairs
    entity_type: str
    legal_representative_id: str
    legal_representative_name: str
    registered_capital: int
    industry: str
    address_id: str
    division_code: str
    established: dt.date
    status: str  # 存续, 吊销, 注销
    deregistered: dt.date | None = None


@dataclass
class Chunk:
    """Everything true about one chunk of households at one batch."""

    index: int
    batch: int
    extract_date: dt.date
    places: dict[str, Place]
    addresses: dict[str, Address] = field(default_factory=dict)
    persons: dict[str, Person] = field(default_factory=dict)
    legal_persons: dict[str, LegalPerson] = field(default_factory=dict)
    births: list[tuple[str, dt.date]] = field(default_factory=list)  # (person_id, issued)
    events: list[tuple[str, str, dt.date]] = field(default_factory=list)  # kind, subject, date


@cache
def provincial_places() -> tuple[Place, ...]:
    """County-level divisions currently valid in the shipped GB/T 2260 reference data."""
    from datong.reference import load_divisions

    divisions = load_divisions()
    by_code = {d.code: d for d in divisions}
    places = []
    for division in divisions:
        if division.level != "county" or division.valid_to is not None:
            continue
        parent = by_code[division.parent_code]
        places.append(
            Place(
                division.code,
                division.name,
                parent.code,
                parent.name,
                division.longitude,
                division.latitude,
            )
        )
    # Province-administered county-level units have no county children: they are places too.
    for division in divisions:
        if (
            division.code.startswith("429")
            and division.valid_to is None
            and not any(p.prefecture == division.code for p in places)
        ):
            places.append(
                Place(
                    division.code,
                    division.name,
                    division.code,
                    division.name,
                    division.longitude,
                    division.latitude,
                )
            )
    return tuple(sorted(places, key=lambda p: p.code))


@cache
def id_address_code(division_code: str, birth_year: int) -> str:
    """The address code an ID issued to someone born that year carries (GB 11643).

    A county created after the birth year cannot appear in the ID: people born earlier
    carry the code in force then. stdnum's table of historic codes decides; we fall back
    to the prefecture's code, then the province's.
    """
    from stdnum.cn import ric

    for code in (division_code, division_code[:4] + "00", division_code[:2] + "0000"):
        if ric.is_valid(citizen_id(code, dt.date(birth_year, 1, 1), 1)):
            return code
    return division_code[:2] + "0000"


def extract_date(batch: int) -> dt.date:
    """The extraction date of a batch: batch 1 on FIRST_EXTRACT, then one month apart."""
    month = FIRST_EXTRACT.month - 1 + (batch - 1)
    year = FIRST_EXTRACT.year + month // 12
    month = month % 12 + 1
    last_day = (dt.date(year + month // 12, month % 12 + 1, 1) - dt.timedelta(days=1)).day
    return dt.date(year, month, last_day)


class ChunkBuilder:
    """Builds one chunk's true state for batch 1, then evolves it batch by batch."""

    def __init__(self, seed: int, index: int, persons: int, id_sequences: dict[Any, int]) -> None:
        self.seed = seed
        self.index = index
        self.persons = persons
        self.rng = random.Random(f"{seed}:{index}:base")
        self.places = provincial_places()
        self.place_weights = [3 if p.prefecture == "420100" else 1 for p in self.places]
        self.id_sequences = id_sequences
        self.serial = 0

    # -- helpers ------------------------------------------------------------------------

    def _next_serial(self) -> int:
        self.serial += 1
        return self.index * 1_000_000 + self.serial

    def _name(self, rng: random.Random, gender: str, surname: str | None = None) -> str:
        surname = surname or rng.choices(SURNAMES, SURNAME_WEIGHTS)[0]
        pool = GIVEN_MALE if gender == "1" else GIVEN_FEMALE
        given = rng.choice(pool) + (rng.choice(pool) if rng.random() < 0.7 else "")
        return surname + given

    def _person_id(self, place: Place, birth: dt.date, gender: str, rng: random.Random) -> str:
        key = (id_address_code(place.code, birth.year), birth)
        used = self.id_sequences.setdefault(key, 0)
        # Sequence numbers per (division, birth date) are unique across the whole run;
        # the parity encodes the gender.
        sequence = used + 1 if (used + 1) % 2 == (1 if gender == "1" else 0) else used + 2
        if sequence > 999:
            place = rng.choice(self.places)
            return self._person_id(place, birth, gender, rng)
        self.id_sequences[key] = sequence
        return citizen_id(key[0], birth, sequence)

    def _newborn_id(self, place: Place, born: dt.date, gender: str) -> str:
        """IDs for babies born after batch 1, from a sequence range owned by this chunk.

        Chunks evolve one after another, so a shared counter would give a baby a different
        ID depending on how many batches were generated; a chunk-owned range does not.
        """
        parity = 1 if gender == "1" else 0
        code = id_address_code(place.code, born.year)
        for attempt in range(250):
            sequence = 500 + (self.index * 37 + attempt * 2) % 498
            sequence += (sequence % 2) != parity
            key = (code, born, sequence)
            if key not in self.id_sequences:
                self.id_sequences[key] = 1
                return citizen_id(code, born, sequence)
        raise RuntimeError(f"no free ID sequence for {place.code} {born}")

    def _address(self, chunk: Chunk, place: Place, rng: random.Random) -> Address:
        serial = self._next_serial()
        # A doorplate (county, road, number) names one standard address: draw again on reuse.
        for _ in range(100):
            road = rng.choice(ROAD_WORDS) + rng.choice(ROAD_SUFFIXES)
            number = f"{rng.randint(1, 999)}号"
            doorplate = ("doorplate", place.code, road, number)
            if doorplate not in self.id_sequences:
                break
        self.id_sequences[doorplate] = 1
        full = f"湖北省{place.prefecture_name if place.prefecture != place.code else ''}"
        full += f"{place.name}{road}{number}"
        east, north = rng.uniform(-0.02, 0.02), rng.uniform(-0.02, 0.02)
        longitude, latitude = point_in_division(place, east, north)
        address = Address(
            address_id=f"{place.code}{serial:012d}",
            full_address=full,
            division_code=place.code,
            road=road,
            house_number=number,
            longitude=longitude,
            latitude=latitude,
        )
        chunk.addresses[address.address_id] = address
        return address

    @staticmethod
    def _ethnicity(place: Place, rng: random.Random) -> str:
        table = ETHNICITY_ENSHI if place.prefecture == "422800" else ETHNICITY_DEFAULT
        return rng.choices([c for c, _ in table], [w for _, w in table])[0]

    @staticmethod
    def _birth(rng: random.Random, low_age: int, high_age: int, on: dt.date) -> dt.date:
        days = rng.randint(low_age * 365, high_age * 365 + 364)
        return on - dt.timedelta(days=days)

    # -- batch 1 ------------------------------------------------------------------------

    def build(self) -> Chunk:
        rng = self.rng
        when = extract_date(1)
        chunk = Chunk(self.index, 1, when, {p.code: p for p in self.places})
        # Whole households until the chunk holds its share of persons (the last may overshoot
        # by a few members; the manifest reports the true count).
        while len(chunk.persons) < self.persons:
            self._household(chunk, rng, when)
        adults = [p for p in chunk.persons.values() if _age(p.birth_date, when) >= 20]
        for _ in range(max(1, round(len(chunk.persons) * 0.06))):
            self._enterprise(chunk, rng, adults, when, authority="9")
        for _ in range(max(1, round(len(chunk.persons) * 0.002))):
            self._enterprise(chunk, rng, adults, when, authority=rng.choice("15"))
        self._employ(chunk, rng, when)
        return chunk

    def _household(self, chunk: Chunk, rng: random.Random, when: dt.date) -> None:
        place = rng.choices(self.places, self.place_weights)[0]
        address = self._address(chunk, place, rng)
        household_id = f"H{place.code}{self._next_serial():010d}"
        surname = rng.choices(SURNAMES, SURNAME_WEIGHTS)[0]
        ethnicity = self._ethnicity(place, rng)
        head_gender = "1" if rng.random() < 0.7 else "2"
        head_birth = self._birth(rng, 22, 80, when)

        members: list[str] = []

        def add(gender: str, birth: dt.date, relation: str, name: str) -> Person:
            person_id = self._person_id(place, birth, gender, rng)
            registered = max(birth, dt.date(1985, 1, 1)) + dt.timedelta(days=rng.randint(0, 60))
            person = Person(
                person_id=person_id,
                name=name,
                gender=gender,
                ethnicity=ethnicity,
                birth_date=birth,
                household_id=household_id,
                relation_to_head=relation,
                address_id=address.address_id,
                division_code=place.code,
                registration_date=min(registered, when),
            )
            chunk.persons[person_id] = person
            members.append(person_id)
            return person

        head = add(head_gender, head_birth, "02", self._name(rng, head_gender, surname))
        if rng.random() < 0.75 and _age(head_birth, when) >= 22:
            spouse_gender = "2" if head_gender == "1" else "1"
            spouse_birth = head_birth + dt.timedelta(days=rng.randint(-1500, 1500))
            spouse_birth = min(spouse_birth, when - dt.timedelta(days=20 * 366))
            spouse = add(spouse_gender, spouse_birth, "10", self._name(rng, spouse_gender))
            youngest = max(head_birth, spouse_birth)
            married = youngest + dt.timedelta(days=rng.randint(22 * 365, 30 * 365))
            married = min(married, when - dt.timedelta(days=30))
            self._marry(chunk, head, spouse, married)
            for _ in range(rng.choices([0, 1, 2, 3], [0.15, 0.45, 0.32, 0.08])[0]):
                born = married + dt.timedelta(days=rng.randint(300, 15 * 365))
                if born >= when:
                    continue
                gender = rng.choice("12")
                child = add(
                    gender, born, "20" if gender == "1" else "30", self._name(rng, gender, surname)
                )
                if (when - born).days < 18 * 365:
                    chunk.births.append((child.person_id, born + dt.timedelta(days=3)))
        if rng.random() < 0.12:
            gender = rng.choice("12")
            parent_birth = head_birth - dt.timedelta(days=rng.randint(20 * 365, 35 * 365))
            add(
                gender,
                parent_birth,
                "50",
                self._name(rng, gender, surname if gender == "1" else None),
            )
        # Natural mortality within the last years: kept in the register as cancelled.
        for person_id in members:
            person = chunk.persons[person_id]
            if _age(person.birth_date, when) > 70 and rng.random() < 0.06:
                died = when - dt.timedelta(days=rng.randint(10, 3 * 365))
                chunk.persons[person.person_id] = replace(person, death_date=died)

    def _marry(self, chunk: Chunk, one: Person, other: Person, on: dt.date) -> None:
        chunk.persons[one.person_id] = replace(
            one, marital_status="20", spouse_id=other.person_id, marriage_date=on
        )
        chunk.persons[other.person_id] = replace(
            other, marital_status="20", spouse_id=one.person_id, marriage_date=on
        )

    def _enterprise(
        self, chunk: Chunk, rng: random.Random, adults: list[Person], when: dt.date, authority: str
    ) -> LegalPerson:
        representative = rng.choice(adults)
        place = chunk.places[representative.division_code]
        address = self._address(chunk, place, rng)
        if authority == "9":
            entity_type, kind = rng.choices(
                [(t, k) for t, k, _ in ENTERPRISE_TYPES], [w for _, _, w in ENTERPRISE_TYPES]
            )[0]
        elif authority == "1":
            entity_type, kind = "public_institution", "2"
        else:
            entity_type, kind = rng.choice(
                [("social_group", "1"), ("private_non_enterprise_unit", "2"), ("foundation", "3")]
            )
        industry = rng.choices(INDUSTRY_SECTIONS, INDUSTRY_WEIGHTS)[0]
        serial = self._next_serial()
        code = credit_code(authority, kind, place.code, serial)
        established = when - dt.timedelta(days=rng.randint(30, 25 * 365))
        roll = rng.random()
        status, deregistered = "存续", None
        if roll < 0.08:
            status, deregistered = "注销", established + dt.timedelta(days=rng.randint(30, 3000))
            if deregistered >= when:
                status, deregistered = "存续", None
        elif roll < 0.12 and authority == "9":
            status = "吊销"
        stem = representative.name[0] if entity_type == "individual_business" else place.name[:2]
        trade = rng.choice(["商贸", "科技", "餐饮", "建筑", "物流", "农业", "医药", "教育", "文化"])
        suffix = {
            "individual_business": "经营部",
            "limited_liability_company": "有限公司",
            "joint_stock_company": "股份有限公司",
            "sole_proprietorship": "商行",
            "farmers_cooperative": "专业合作社",
            "public_institution": "服务中心",
            "social_group": "协会",
            "private_non_enterprise_unit": "培训中心",
            "foundation": "基金会",
        }[entity_type]
        name = f"{place.name}{stem}{trade}{suffix}" + (
            f"({serial % 1000})" if entity_type != "individual_business" else ""
        )
        legal = LegalPerson(
            credit_code=code,
            name=name,
            authority=authority,
            entity_type=entity_type,
            legal_representative_id=representative.person_id,
            legal_representative_name=representative.name,
            registered_capital=rng.choice([3, 5, 10, 50, 100, 200, 500, 1000]) * 10_000,
            industry=industry,
            address_id=address.address_id,
            division_code=place.code,
            established=established,
            status=status,
            deregistered=deregistered,
        )
        chunk.legal_persons[code] = legal
        return legal

    def _employ(self, chunk: Chunk, rng: random.Random, when: dt.date) -> None:
        employers = [e.credit_code for e in chunk.legal_persons.values() if e.status == "存续"]
        for person in list(chunk.persons.values()):
            age = _age(person.birth_date, when)
            stage = None
            if 6 <= age < 12:
                stage = "小学"
            elif 12 <= age < 15:
                stage = "初中"
            elif 15 <= age < 18:
                stage = "高中"
            elif 18 <= age < 22 and rng.random() < 0.5:
                stage = "本科"
            employer = None
            employable = 18 <= age < 60 and stage is None and person.death_date is None
            if employable and employers and rng.random() < 0.7:
                employer = rng.choice(employers)
            if stage or employer:
                chunk.persons[person.person_id] = replace(
                    person, school_stage=stage, employer_code=employer
                )

    # -- later batches -----------------------------------------------------------------

    def evolve(self, chunk: Chunk) -> Chunk:
        """Apply one month of events to ``chunk``; returns the next batch's state."""
        batch = chunk.batch + 1
        when = extract_date(batch)
        since = chunk.extract_date
        rng = random.Random(f"{self.seed}:{self.index}:batch{batch}")
        chunk = Chunk(
            chunk.index,
            batch,
            when,
            chunk.places,
            dict(chunk.addresses),
            dict(chunk.persons),
            dict(chunk.legal_persons),
            list(chunk.births),
            [],
        )

        def some_day() -> dt.date:
            return since + dt.timedelta(days=rng.randint(1, (when - since).days))

        living = [p for p in chunk.persons.values() if p.death_date is None]
        for person in living:
            roll = rng.random()
            age = _age(person.birth_date, when)
            if roll < 0.0015 + (0.004 if age > 75 else 0):
                died = some_day()
                chunk.persons[person.person_id] = replace(person, death_date=died)
                chunk.events.append(("death", person.person_id, died))
            elif roll < 0.006 and person.relation_to_head == "02":
                self._move_household(chunk, person, rng, some_day())
        couples = [
            p
            for p in living
            if p.relation_to_head == "02" and p.spouse_id and 22 <= _age(p.birth_date, when) <= 40
        ]
        for head in couples:
            if rng.random() < 0.01:
                born = some_day()
                gender = rng.choice("12")
                place = chunk.places[head.division_code]
                child = Person(
                    person_id=self._newborn_id(place, born, gender),
                    name=self._name(rng, gender, head.name[0]),
                    gender=gender,
                    ethnicity=head.ethnicity,
                    birth_date=born,
                    household_id=head.household_id,
                    relation_to_head="20" if gender == "1" else "30",
                    address_id=head.address_id,
                    division_code=head.division_code,
                    registration_date=min(born + dt.timedelta(days=20), when),
                )
                chunk.persons[child.person_id] = child
                chunk.births.append((child.person_id, born + dt.timedelta(days=3)))
                chunk.events.append(("birth", child.person_id, born))
        singles = [
            p for p in living if p.marital_status == "10" and 22 <= _age(p.birth_date, when) <= 45
        ]
        men = [p for p in singles if p.gender == "1"]
        women = [p for p in singles if p.gender == "2"]
        for man, woman in zip(men, women, strict=False):
            if rng.random() < 0.05:
                married = some_day()
                self._marry(
                    chunk, chunk.persons[man.person_id], chunk.persons[woman.person_id], married
                )
                chunk.events.append(("marriage", man.person_id, married))
        adults = [
            p
            for p in chunk.persons.values()
            if p.death_date is None and _age(p.birth_date, when) >= 20
        ]
        for _ in range(rng.randint(0, max(1, len(chunk.legal_persons) // 60))):
            new = self._enterprise(chunk, rng, adults, since, authority="9")
            chunk.legal_persons[new.credit_code] = replace(
                new, established=some_day(), status="存续", deregistered=None
            )
            chunk.events.append(("enterprise_established", new.credit_code, since))
        for legal in list(chunk.legal_persons.values()):
            if legal.status == "存续" and rng.random() < 0.005:
                closed = some_day()
                chunk.legal_persons[legal.credit_code] = replace(
                    legal, status="注销", deregistered=closed
                )
                chunk.events.append(("enterprise_deregistered", legal.credit_code, closed))
        return chunk

    def _move_household(self, chunk: Chunk, head: Person, rng: random.Random, on: dt.date) -> None:
        place = rng.choices(self.places, self.place_weights)[0]
        address = self._address(chunk, place, rng)
        for member in list(chunk.persons.values()):
            if member.household_id == head.household_id and member.death_date is None:
                chunk.persons[member.person_id] = replace(
                    member,
                    address_id=address.address_id,
                    division_code=place.code,
                    previous_address_id=member.address_id,
                    moved_on=on,
                )
        chunk.events.append(("move", head.household_id, on))


def _age(birth: dt.date, on: dt.date) -> int:
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


def age(birth: dt.date, on: dt.date) -> int:
    """Age in whole years on a date."""
    return _age(birth, on)
