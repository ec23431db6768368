"""Domain errors. Each has a stable machine `code`; the API maps them to RFC 9457 problem details.

Messages are kept here in Japanese (default) and English, written for the person who reads them:
a clerk at the counter, a driver, a finance officer.
"""

from __future__ import annotations

from typing import Any

MESSAGES: dict[str, tuple[str, str]] = {
    "not_found": ("見つかりません。", "Not found."),
    "validation": ("入力内容に誤りがあります。", "The request is not valid."),
    "conflict": (
        "他の操作と競合しました。もう一度お試しください。",
        "The request conflicts with another change.",
    ),
    "auth.required": ("サインインが必要です。", "Sign-in required."),
    "auth.invalid_token": (
        "サインインの有効期限が切れたか、無効です。",
        "The access token is invalid or expired.",
    ),
    "auth.bad_credentials": ("ユーザー名またはパスワードが違います。", "Wrong username or password."),
    "auth.forbidden": ("この操作の権限がありません。", "You are not allowed to do this."),
    "idempotency.key_required": (
        "Idempotency-Key ヘッダーが必要です。",
        "An Idempotency-Key header is required.",
    ),
    "idempotency.key_reused": (
        "同じ Idempotency-Key が別の内容で使われています。",
        "This Idempotency-Key was used for a different request.",
    ),
    "challenge.expired": (
        "カード確認の有効時間が過ぎました。もう一度カードをかざしてください。",
        "The card check timed out. Please hold the card again.",
    ),
    "challenge.replayed": ("このカード確認はすでに使われています。", "This card check was already used."),
    "challenge.unknown": ("カード確認の情報が見つかりません。", "Unknown card challenge."),
    "challenge.mismatch": (
        "カード確認の用途が違います。",
        "The card challenge was issued for another purpose.",
    ),
    "signature.invalid": (
        "カードの署名を確認できませんでした。もう一度お試しください。",
        "The card's signature could not be verified.",
    ),
    "card.unknown_issuer": (
        "このカードは確認できません(発行元が不明です)。",
        "This card was not issued by a trusted authority.",
    ),
    "card.expired": (
        "カードの電子証明書の有効期限が切れています。市役所で更新してください。",
        "The card's certificate has expired. Please renew it at city hall.",
    ),
    "card.revoked": (
        "このカードの電子証明書は失効しています。市役所にご相談ください。",
        "This card's certificate has been revoked. Please contact city hall.",
    ),
    "card.not_bound": (
        "このカードはまだ登録されていません。市役所の窓口で登録してください。",
        "This card is not registered yet. Please register it at city hall.",
    ),
    "card.bound_to_other": (
        "このカードは別の方に登録されています。",
        "This card is registered to another person.",
    ),
    "card.already_bound": (
        "この方にはすでにカードが登録されています。",
        "This resident already has a card registered.",
    ),
    "card.malformed": ("カードの証明書を読み取れませんでした。", "The card's certificate could not be read."),
    "card.tap_not_allowed": (
        "この制度では暗証番号の入力が必要です。",
        "This program requires the PIN; tap-only use is not allowed.",
    ),
    "resident.not_found": ("住民が見つかりません。", "Resident not found."),
    "enrolment.facts_mismatch": (
        "カードの記載事項が住民票の記録と一致しません。住所や氏名の変更手続きがお済みか確認してください。",
        "The card's facts do not match the resident registry (a change of address or name may be pending).",
    ),
    "card.revocation_unknown": (
        "カードの失効確認ができませんでした。しばらくしてからお試しください。",
        "The card's revocation status could not be checked. Please try again shortly.",
    ),
    "pin.wrong": (
        "暗証番号が違います。あと{tries_left}回間違えるとロックされます。",
        "Wrong PIN. {tries_left} tries left before the card locks.",
    ),
    "pin.locked": (
        "暗証番号がロックされています。市役所の窓口で解除してください。",
        "The PIN is locked. It can be reset at the city-hall counter.",
    ),
    "resident.not_resident": (
        "この方は現在、市の住民ではありません。",
        "This person is not a current resident.",
    ),
    "program.not_found": ("制度が見つかりません。", "Program not found."),
    "program.invalid_rules": ("制度のルールに誤りがあります。", "The program's rules are not valid."),
    "application.not_eligible": ("この制度の対象ではありません。", "Not eligible for this program."),
    "application.already_entitled": (
        "すでにこの制度の利用資格があります。",
        "Already entitled in this program.",
    ),
    "application.identity_required": (
        "本人確認(カードの登録または職員の確認)が必要です。",
        "An identity check (card binding or staff attestation) is required.",
    ),
    "entitlement.none": (
        "使える利用券がありません。市役所にご相談ください。",
        "No usable entitlement. Please contact city hall.",
    ),
    "entitlement.exhausted": (
        "今年度の利用回数(残高)を使い切っています。今回は通常料金になります。",
        "The entitlement is used up for this year; the normal fare applies.",
    ),
    "entitlement.suspended": (
        "利用資格が停止されています。市役所にご相談ください。",
        "The entitlement is suspended.",
    ),
    "limit.per_day": ("本日の利用回数の上限に達しています。", "The daily ride limit has been reached."),
    "limit.per_month": ("今月の利用回数の上限に達しています。", "The monthly ride limit has been reached."),
    "limit.per_year": ("今年度の利用回数の上限に達しています。", "The yearly ride limit has been reached."),
    "ride.not_found": ("乗車記録が見つかりません。", "Ride not found."),
    "ride.already_completed": (
        "この乗車はすでに料金が確定しています。",
        "This ride's fare is already recorded.",
    ),
    "ride.voided": ("この乗車は取り消されています。", "This ride was voided."),
    "ride.void_window_passed": (
        "取り消しができる時間を過ぎています。事業者の管理者にご連絡ください。",
        "The time to void this ride has passed.",
    ),
    "ride.settled": ("この乗車は精算済みのため取り消せません。", "This ride is already settled."),
    "limit.offline_per_day": (
        "通信できない間に受け付けられる回数を超えていました。市役所で確認します。",
        "More offline rides than the program allows in a day; the city will review it.",
    ),
    "ride.sequence_reused": (
        "端末の通し番号が重複しています。",
        "This terminal sequence number was already used for another ride.",
    ),
    "terminal.enrolment_invalid": (
        "登録コードが正しくないか、有効期限が切れています。",
        "The enrolment code is wrong or expired.",
    ),
    "terminal.not_active": ("この端末は利用できません。", "This terminal is not active."),
    "terminal.bad_assertion": ("端末の認証に失敗しました。", "The terminal's signed assertion is not valid."),
    # mobile office
    "round.not_found": ("巡回ルートが見つかりません。", "Round not found."),
    "stop.not_found": ("停車場所が見つかりません。", "Stop not found."),
    "stop.window_invalid": (
        "終了時刻は開始時刻より後にしてください。",
        "The stop's time window must end after it starts.",
    ),
    "stop.district_unknown": ("地区が見つかりません。", "Unknown district."),
    "stop.not_open": (
        "この停車場所は受付中ではありません。先に受付を開始してください。",
        "This stop is not open.",
    ),
    "stop.closed": ("この停車場所の受付は終了しています。", "This stop is already closed."),
    "stop.other_open": (
        "同じルートの別の停車場所が受付中です。先にそちらを終了してください。",
        "Another stop of this round is open; close it first.",
    ),
    "ticket.not_found": ("番号札が見つかりません。", "Queue ticket not found."),
    "ticket.finished": ("この番号札の受付はすでに終わっています。", "This ticket is already finished."),
    "settlement.period_open": (
        "対象月がまだ終わっていないため精算できません。",
        "The period has not ended yet.",
    ),
    "settlement.already_running": (
        "この月の精算はすでに実行中です。",
        "A settlement run for this period is already in progress.",
    ),
    "statement.not_found": ("精算書が見つかりません。", "Statement not found."),
    "statement.bad_transition": (
        "この精算書はその状態に変更できません。",
        "The statement cannot move to that state.",
    ),
    "statement.same_person": (
        "確認した人とは別の人が承認してください。",
        "A statement must be approved by someone other than the person who confirmed it.",
    ),
}


def message_for(code: str, lang: str = "ja", **params: Any) -> str:
    """The human message for a code, with its parameters filled in (e.g. tries left)."""
    ja, en = MESSAGES.get(code, (code, code))
    text = en if lang == "en" else ja
    try:
        return text.format(**params)
    except (KeyError, IndexError, ValueError):
        return text


class DomainError(Exception):
    """A refusal by a business rule. `status` is the HTTP status the API should use."""

    status: int = 400

    def __init__(self, code: str, *, status: int | None = None, **params: Any) -> None:
        super().__init__(code)
        self.code = code
        if status is not None:
            self.status = status
        self.params = params

    def message(self, lang: str = "ja") -> str:
        return message_for(self.code, lang, **self.params)


class NotFound(DomainError):
    status = 404


class Conflict(DomainError):
    status = 409


class Forbidden(DomainError):
    status = 403


class Unauthorized(DomainError):
    status = 401


class Refused(DomainError):
    """The request is understood but a rule forbids it (422)."""

    status = 422
