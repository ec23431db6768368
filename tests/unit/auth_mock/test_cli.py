"""`mock-card`: the flows the demo and the counter staff use."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from cryptography import x509

from auth_mock.cli import CliEnvironment, main
from auth_mock.issuer import CardKind, Issuer, certified_facts
from auth_mock.reader import JPKIReader, VirtualCardTransport
from auth_mock.registry import Registry
from tests.unit.auth_mock.conftest import NOW, PASSWORD, PIN, Pki


@dataclass(frozen=True)
class FakePerson:
    registry_id: str
    family_name: str
    given_name: str
    family_name_kana: str
    given_name_kana: str
    sex: str
    birth_date: date
    address: str
    municipality_code: str
    eligible: bool = True


class FakeRegistry:
    """Stands in for auth_mock.registry.Registry: get() and eligible_candidates()."""

    def __init__(self, people: list[FakePerson]) -> None:
        self.people = {person.registry_id: person for person in people}
        self.closed = False

    def get(self, registry_id: str) -> FakePerson | None:
        return self.people.get(registry_id)

    def eligible_candidates(self, limit: int) -> list[FakePerson]:
        return [person for person in self.people.values() if person.eligible][:limit]

    def close(self) -> None:
        self.closed = True


def person(registry_id: str, **overrides: Any) -> FakePerson:
    facts: dict[str, Any] = {
        "registry_id": registry_id,
        "family_name": "最上",
        "given_name": "太郎",
        "family_name_kana": "モガミ",
        "given_name_kana": "タロウ",
        "sex": "male",
        "birth_date": date(1945, 4, 3),
        "address": "山形県尾花沢市大字尾花沢1番地",
        "municipality_code": "062120",
    }
    facts.update(overrides)
    return FakePerson(**facts)


@pytest.fixture
def registry() -> FakeRegistry:
    return FakeRegistry(
        [
            person("R-1001", eligible=False, given_name="次郎"),
            person("R-1002"),
            person("R-1003", given_name="三郎"),
        ]
    )


@pytest.fixture
def run(own_issuer: Issuer, registry: FakeRegistry) -> Any:
    environment = CliEnvironment(clock=lambda: NOW, open_registry=lambda _path: registry)

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(
            main, ["--issuer-dir", str(own_issuer.directory), *args], obj=environment, catch_exceptions=False
        )

    return invoke


def issue_face_card(run: Any, out: Path, *extra: str) -> dict[str, Any]:
    result = run("issue", "--out", str(out), "--kind", "face-recognition", "--json", *extra)
    assert result.exit_code == 0, result.output
    card: dict[str, Any] = json.loads(result.output)
    return card


def test_issue_without_resident_picks_an_eligible_resident(
    run: Any, tmp_path: Path, registry: FakeRegistry
) -> None:
    card = issue_face_card(run, tmp_path / "a.card")
    assert card["registry_id"] == "R-1002"  # R-1001 is not eligible
    assert JPKIReader(VirtualCardTransport(tmp_path / "a.card")).read_user_certificate()
    assert registry.closed


def test_next_issue_picks_a_resident_without_a_card(run: Any, tmp_path: Path) -> None:
    issue_face_card(run, tmp_path / "a.card")
    assert issue_face_card(run, tmp_path / "b.card")["registry_id"] == "R-1003"


def test_issue_for_a_named_resident_certifies_their_facts(run: Any, tmp_path: Path) -> None:
    out = tmp_path / "saburo.card"
    result = run("issue", "--out", str(out), "--pin", PIN, "--password", PASSWORD, "--resident", "R-1003")
    assert result.exit_code == 0, result.output
    assert "カードを発行しました" in result.output
    der = JPKIReader(VirtualCardTransport(out)).read_signature_certificate(PASSWORD)
    facts = certified_facts(x509.load_der_x509_certificate(der))
    assert facts.name == "最上\u3000三郎"
    assert facts.sex == "male"


def test_issue_for_an_unknown_resident_is_refused(run: Any, tmp_path: Path) -> None:
    result = run(
        "issue", "--out", str(tmp_path / "x.card"), "--kind", "face-recognition", "--resident", "R-9"
    )
    assert result.exit_code != 0
    assert "住民が見つかりません" in result.output
    assert not (tmp_path / "x.card").exists()


def test_issue_with_pin_needs_pin_and_password(run: Any, tmp_path: Path) -> None:
    result = run("issue", "--out", str(tmp_path / "x.card"), "--pin", PIN)
    assert result.exit_code == 2
    assert "--password" in result.output


def test_issue_with_a_bad_pin_explains_the_rule(run: Any, tmp_path: Path) -> None:
    result = run("issue", "--out", str(tmp_path / "x.card"), "--pin", "12", "--password", PASSWORD)
    assert result.exit_code == 1
    assert "数字4桁" in result.output


def test_issue_from_holder_json_needs_no_registry(own_issuer: Issuer, tmp_path: Path) -> None:
    holder = tmp_path / "holder.json"
    holder.write_text(
        json.dumps(
            {
                "registry_id": "R-7",
                "family_name": "銀山",
                "given_name": "温子",
                "sex": "female",
                "birth_date": "1950-01-20",
                "address": "山形県尾花沢市大字銀山新畑1番地",
                "municipality_code": "062120",
            }
        ),
        encoding="utf-8",
    )

    def no_registry(_path: Path) -> FakeRegistry:
        raise AssertionError("the registry must not be opened")

    result = CliRunner().invoke(
        main,
        [
            *("--issuer-dir", str(own_issuer.directory), "issue", "--out", str(tmp_path / "x.card")),
            *("--kind", "face_recognition", "--holder-json", str(holder)),
        ],
        obj=CliEnvironment(clock=lambda: NOW, open_registry=no_registry),
    )
    assert result.exit_code == 0, result.output
    assert own_issuer.cards_of("R-7")


def test_issue_creates_the_issuer_when_there_is_none(tmp_path: Path, registry: FakeRegistry) -> None:
    environment = CliEnvironment(clock=lambda: NOW, open_registry=lambda _path: registry)
    result = CliRunner().invoke(
        main,
        ["issue", "--out", str(tmp_path / "a.card"), "--kind", "face-recognition"],
        obj=environment,
        env={"MOCK_ISSUER_DIR": str(tmp_path / "issuer")},
    )
    assert result.exit_code == 0, result.output
    assert Issuer.load(tmp_path / "issuer").cards_of("R-1002")


def test_list_shows_every_card(run: Any, pki: Pki) -> None:
    result = run("list", "--json")
    assert {card["card_id"] for card in json.loads(result.output)} == {c.card_id for c in pki.cards.values()}
    assert "revoked" in run("list").output


def test_show_reads_the_try_counters_from_the_card(run: Any, pki: Pki) -> None:
    data = json.loads(run("show", pki.cards[CardKind.LOCKED].card_id, "--json").output)
    assert data["user_pin_tries_left"] == 0
    assert data["signature_password_tries_left"] == 5
    assert data["certified_facts"]["name"] == "尾花沢\u3000花子"


def test_show_accepts_the_card_file_path(run: Any, pki: Pki) -> None:
    result = run("show", str(pki.cards[CardKind.FACE_RECOGNITION].path))
    assert result.exit_code == 0, result.output
    assert "顔認証" in result.output


def test_show_of_an_unknown_card_is_refused(run: Any) -> None:
    result = run("show", "card-none")
    assert result.exit_code == 1
    assert "カードが見つかりません" in result.output


def test_lock_then_unlock_as_the_counter_does(run: Any, tmp_path: Path) -> None:
    out = tmp_path / "c.card"
    card = json.loads(run("issue", "--out", str(out), "--pin", PIN, "--password", PASSWORD, "--json").output)
    assert run("lock", card["card_id"]).exit_code == 0
    reader = JPKIReader(VirtualCardTransport(out))
    assert reader.user_pin_tries_left() == 0
    assert run("unlock", card["card_id"]).exit_code == 0
    assert reader.user_pin_tries_left() == 3
    assert run("reset-pin", card["card_id"], "--new-pin", "8642").exit_code == 0
    reader.verify_user_pin("8642")


def test_unlock_of_a_face_recognition_card_explains_there_is_no_pin(run: Any, pki: Pki) -> None:
    result = run("unlock", pki.cards[CardKind.FACE_RECOGNITION].card_id)
    assert result.exit_code == 1
    assert "顔認証" in result.output


def test_expire_makes_the_card_expired(run: Any, tmp_path: Path) -> None:
    card = issue_face_card(run, tmp_path / "e.card")
    assert run("expire", card["card_id"]).exit_code == 0
    data = json.loads(run("show", card["card_id"], "--json").output)
    assert data["status"] == "expired"


def test_revoke_for_loss_makes_the_card_revoked(run: Any, tmp_path: Path) -> None:
    card = issue_face_card(run, tmp_path / "r.card")
    result = run("revoke", card["card_id"], "--reason", "loss")
    assert result.exit_code == 0, result.output
    assert json.loads(run("show", card["card_id"], "--json").output)["status"] == "revoked"
    assert "既に失効" in run("revoke", card["card_id"], "--reason", "loss").output


def test_revoke_by_certificate_serial(run: Any, pki: Pki) -> None:
    serial = pki.cards[CardKind.STANDARD].sign_cert_serial
    result = run("revoke", str(serial), "--reason", "fact_change")
    assert result.exit_code == 0, result.output
    assert "署名用" in result.output


def test_revoke_with_an_unknown_reason_is_refused(run: Any, pki: Pki) -> None:
    result = run("revoke", pki.cards[CardKind.STANDARD].card_id, "--reason", "moved")
    assert result.exit_code == 2


def test_init_refuses_an_existing_issuer(run: Any) -> None:
    result = run("init")
    assert result.exit_code == 1
    assert "既に作成" in result.output


def test_issue_uses_the_generated_registry(own_issuer: Issuer, tmp_path: Path) -> None:
    registry_path = tmp_path / "registry.sqlite3"
    Registry.generate(registry_path, size=60, seed=7).close()
    with Registry.open(registry_path) as registry:
        first_eligible = registry.eligible_candidates(limit=1)[0]
    result = CliRunner().invoke(
        main,
        [
            *("--issuer-dir", str(own_issuer.directory), "--registry", str(registry_path)),
            *("issue", "--out", str(tmp_path / "r.card"), "--kind", "face-recognition", "--json"),
        ],
        obj=CliEnvironment(clock=lambda: NOW),
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["registry_id"] == first_eligible.registry_id
    assert json.loads(result.output)["municipality_code"] == first_eligible.municipality_code


def test_missing_registry_file_is_explained(own_issuer: Issuer, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        [
            *("--issuer-dir", str(own_issuer.directory), "--registry", str(tmp_path / "none.sqlite3")),
            *("issue", "--out", str(tmp_path / "r.card"), "--kind", "face-recognition"),
        ],
        obj=CliEnvironment(clock=lambda: NOW),
    )
    assert result.exit_code == 1
    assert "住民基本台帳がありません" in result.output


def test_issue_command_and_python_callers_share_one_code_path(
    run: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`mock-card issue` is `issue_card_file` (which the demo calls): nothing else issues cards."""
    import auth_mock.cli as mock_card

    seen: list[dict[str, Any]] = []
    issue = mock_card.issue_card_file

    def recording(*args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs)
        return issue(*args, **kwargs)

    monkeypatch.setattr(mock_card, "issue_card_file", recording)
    out = tmp_path / "saburo.card"
    result = run("issue", "--out", str(out), "--pin", PIN, "--password", PASSWORD, "--resident", "R-1003")
    assert result.exit_code == 0, result.output
    assert [(call["resident_id"], call["out"]) for call in seen] == [("R-1003", out)]


def test_issue_card_file_issues_like_the_command(
    own_issuer: Issuer, registry: FakeRegistry, tmp_path: Path
) -> None:
    from auth_mock.cli import issue_card_file

    card = issue_card_file(
        own_issuer.directory,
        out=tmp_path / "py.card",
        pin=PIN,
        password=PASSWORD,
        resident_id="R-1002",
        now=NOW,
        open_registry=lambda _path: registry,
    )
    assert card.registry_id == "R-1002"
    assert own_issuer.get_card(card.card_id) is not None
    assert registry.closed
