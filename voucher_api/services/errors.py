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
    "terminal.revoke_reason": (
        "使えなくする理由を200文字以内で入力してください。",
        "Give the reason for revoking the terminal, in at most 200 characters.",
    ),
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
    "payment_file.nothing_to_pay": (
        "この月には、振込ファイルに載せる精算書(承認済みで未払い、支払額が 0 円を超えるもの)がありません。",
        "This month has no statement to put in a transfer file (approved, not yet paid, amount above zero).",
    ),
    "payment_file.refused": (
        "振込ファイルを作成できません。理由を確認してください。",
        "The transfer file cannot be made; see the reason.",
    ),
    "statement.bad_transition": (
        "この精算書はその状態に変更できません。",
        "The statement cannot move to that state.",
    ),
    "statement.not_closed": (
        "この月の精算をまだ実行していないため確認できません。先に月次精算を実行してください。",
        "This month has not been closed yet; run the monthly settlement first.",
    ),
    "statement.same_person": (
        "確認した人とは別の人が承認してください。",
        "A statement must be approved by someone other than the person who confirmed it.",
    ),
    "statement.not_confirmed": (
        "この精算書はまだ確定していません。市が確認した後に回答・調整できます。",
        "The statement is still a draft; it can be answered or adjusted once finance has confirmed it.",
    ),
    "statement.already_acknowledged": (
        "この精算書は事業者確認済みのため、異議を申し立てられません。市の担当者にご連絡ください。",
        "The statement has been acknowledged, so it can no longer be disputed. Please contact the city.",
    ),
    "adjustment.amount_due_negative": (
        "調整すると翌月以降の請求額(現在{amount_due}円)がマイナスになります。"
        "その月の精算後に調整するか、金額を分けてください。",
        "The adjustment would take the later statement's amount due (now ¥{amount_due}) below zero. "
        "Adjust after that month is closed, or split the amount.",
    ),
    # reports
    "report.range_reversed": (
        "集計の開始月が終了月より後になっています。",
        "The report's first month is after its last month.",
    ),
    "report.range_too_long": (
        "集計できる期間は最長{max_months}か月です。期間を短くしてください。",
        "A report covers at most {max_months} months; shorten the range.",
    ),
    # reconciliation against an operator's own ride log
    "reconciliation.too_large": (
        "ファイルが大きすぎます({max_mib} MB まで)。月や車両で分けて送ってください。",
        "The file is too large (at most {max_mib} MB). Split it by month or vehicle.",
    ),
    "reconciliation.too_many_rows": (
        "行数が多すぎます({max_rows}行まで)。月や車両で分けて送ってください。",
        "The file has too many rows (at most {max_rows}). Split it by month or vehicle.",
    ),
    "reconciliation.empty": (
        "CSV ファイルが空か、送られていません。",
        "The CSV file is empty or missing.",
    ),
    "reconciliation.unsupported_media_type": (
        "CSV ファイルを送ってください(text/csv、またはフォームの file 欄)。",
        "Send a CSV file (text/csv, or the form field `file`).",
    ),
    "reconciliation.not_csv": (
        "Excel のブック形式です。Excel で「CSV」形式で保存してから送ってください。",
        "This is an Excel workbook; save it as CSV in Excel and send that.",
    ),
    "reconciliation.bad_encoding": (
        "文字コードを読み取れません。UTF-8 または Shift_JIS の CSV で保存してください。",
        "The file's character encoding is not readable; save it as UTF-8 or Shift_JIS CSV.",
    ),
    "reconciliation.no_header": (
        "見出し行が見つかりません。次の列が必要です: {missing}",
        "No header row found. These columns are needed: {missing}",
    ),
    "reconciliation.statement_changed": (
        "照合中に精算書が作り直されました。もう一度照合してください。",
        "The statement was rebuilt while it was being compared; please run the comparison again.",
    ),
    "reconciliation.row.unreadable": ("この行は CSV として読み取れません。", "This row is not readable CSV."),
    "reconciliation.row.missing_boarded_at": ("乗車日時がありません。", "The boarding time is missing."),
    "reconciliation.row.bad_boarded_at": (
        "乗車日時「{value}」を読み取れません(例: 2026/10/03 14:05)。",
        "The boarding time “{value}” is not readable (e.g. 2026/10/03 14:05).",
    ),
    "reconciliation.row.missing_vehicle": ("車両番号がありません。", "The vehicle is missing."),
    "reconciliation.row.missing_meter_fare": ("メーター料金がありません。", "The meter fare is missing."),
    "reconciliation.row.bad_meter_fare": (
        "メーター料金「{value}」は円の整数ではありません。",
        "The meter fare “{value}” is not a whole number of yen.",
    ),
    "reconciliation.row.bad_subsidy": (
        "助成額「{value}」は円の整数ではありません。",
        "The subsidy “{value}” is not a whole number of yen.",
    ),
    "reconciliation.row.bad_ride_id": (
        "乗車番号「{value}」は精算書の乗車番号(数字)ではありません。",
        "The ride number “{value}” is not a ride number from the statement (digits).",
    ),
    "reconciliation.extra.not_found": (
        "この乗車の記録は見つかりません。",
        "No record of this ride was found.",
    ),
    "reconciliation.extra.voided": (
        "この乗車は取り消されています。",
        "This ride was voided.",
    ),
    "reconciliation.extra.other_statement": (
        "この乗車は別の精算書({number}、{period})に計上されています。",
        "This ride is on another statement ({number}, {period}).",
    ),
    "reconciliation.extra.not_on_a_statement": (
        "この乗車はまだ精算書に計上されていません(料金未入力か、締め後の同期で次回計上)。",
        "This ride is on no statement yet (no fare yet, or synced after the close: it goes on the next one).",
    ),
    "reconciliation.extra.already_matched": (
        "この乗車は{row}行目と照合済みです(ログの重複の可能性があります)。",
        "This ride is already matched to row {row} (the log may list it twice).",
    ),
    "reconciliation.extra.duplicate_in_log": (
        "同じ乗車番号が{row}行目にもあります。",
        "The same ride number is also on row {row}.",
    ),
    "reconciliation.extra.unknown_vehicle": (
        "この事業者の車両として登録されていない車両番号です。",
        "This vehicle is not registered to the operator.",
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
