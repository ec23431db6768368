"""What the driver reads, and says to the passenger, for each refusal the terminal itself decides and for
each sync result explained afterwards. Japanese first; English for the switch.

Refusals the API decides come with the API's own sentence (`title`, already in the reader's language);
the terminal shows it as it is unless it has a sentence of its own for that code below.
"""

from __future__ import annotations

from typing import Any, Final

# code -> (ja, en): a sentence the driver can read out to the passenger.
RIDER_MESSAGES: Final[dict[str, tuple[str, str]]] = {
    "offline.no_snapshot": (
        "通信がつながらず、車内でカードを確認するためのデータもありません。"
        "今回は通常料金になります。通信が戻ってからもう一度カードをかざしてください。",
        "No connection, and no data on board to check the card. The normal fare applies this time. "
        "Please hold the card again when the connection is back.",
    ),
    "offline.snapshot_expired": (
        "通信がつながらず、車内の確認用データの期限も切れています。今回は通常料金になります。",
        "No connection, and the data on board to check cards has expired. The normal fare applies this time.",
    ),
    "offline.card_gone": (
        "カードが離れたため確認できませんでした。もう一度カードをかざしてください。",
        "The card was taken away too early. Please hold it on the reader again.",
    ),
    "card.not_bound": (
        "このカードは利用の登録が確認できません。今回は通常料金になります。"
        "市役所の窓口で登録の確認をお願いします。",
        "This card is not registered for the taxi subsidy. The normal fare applies this time. "
        "Please ask at the city hall counter.",
    ),
    "entitlement.none": (
        "使える利用券がありません。今回は通常料金になります。市役所にご相談ください。",
        "No usable taxi subsidy. The normal fare applies this time. Please contact city hall.",
    ),
    "entitlement.exhausted": (
        "今年度の利用回数(残高)を使い切っています。今回は通常料金になります。",
        "The subsidy for this year is used up. The normal fare applies this time.",
    ),
    "limit.offline_per_day": (
        "通信できない間に使える回数(1日{limit}回)を超えています。今回は通常料金になります。",
        "More rides than allowed in a day while offline ({limit}). The normal fare applies this time.",
    ),
    "card.tap_not_allowed": (
        "この制度では暗証番号の入力が必要です。カードをかざして暗証番号を入力してください。",
        "This program needs the PIN. Please hold the card and enter the PIN.",
    ),
    "card.revoked": (
        "このカードの電子証明書は失効しています。今回は通常料金になります。市役所にご相談ください。",
        "This card's certificate has been revoked. The normal fare applies this time. "
        "Please contact city hall.",
    ),
    "card.expired": (
        "カードの電子証明書の有効期限が切れています。今回は通常料金になります。市役所で更新してください。",
        "The card's certificate has expired. The normal fare applies this time. "
        "Please renew it at city hall.",
    ),
    "card.unknown_issuer": (
        "このカードは確認できません。マイナンバーカードをお持ちか確認してください。",
        "This card cannot be checked. Please make sure it is a My Number card.",
    ),
    "card.malformed": (
        "カードを読み取れませんでした。もう一度カードをかざしてください。",
        "The card could not be read. Please hold it on the reader again.",
    ),
    "signature.invalid": (
        "カードの確認ができませんでした。もう一度カードをかざしてください。",
        "The card could not be checked. Please hold it on the reader again.",
    ),
    "ride.already_on_board": (
        "この方はすでに乗車中として記録されています(二重には記録していません)。",
        "This rider is already recorded as on board (nothing was recorded twice).",
    ),
    "ride.still_checking": (
        "このカードの前回の乗車を確認しています。少し待ってから、もう一度カードをかざしてください。",
        "The previous boarding with this card is still being checked. Please wait and hold the card again.",
    ),
    "ride.void_window_passed": (
        "取り消しができる時間を過ぎています。事業者の管理者にご連絡ください。",
        "The time to void this ride has passed. Please contact the operator's office.",
    ),
    "ride.voided": ("この乗車は取り消されています。", "This ride was voided."),
    "ride.already_completed": (
        "この乗車はすでに料金が確定しています。",
        "This ride's fare is already recorded.",
    ),
    "ride.not_found": ("この乗車は見つかりません。", "This ride was not found."),
    "shift.none": ("乗務が始まっていません。", "No shift has been started."),
    "shift.unknown_driver": (
        "運転者コードが見つかりません。番号を確かめてもう一度入力してください。",
        "Driver code not found. Please check it and enter it again.",
    ),
    "terminal.unreachable": (
        "サーバーに接続できません。通信が戻ると自動で送信します。",
        "The server cannot be reached. Records are sent automatically when the connection is back.",
    ),
}

# How a sync result is explained to the driver afterwards: (heading ja, heading en, what to do ja, en).
SYNC_EXPLANATIONS: Final[dict[str, tuple[str, str, str, str]]] = {
    "conflict": (
        "記録しましたが、市の確認が必要です",
        "Recorded, but the city will review it",
        "乗車は記録されています。市が確認しますので、運転者の対応は必要ありません。",
        "The ride is recorded. The city reviews it; nothing for you to do.",
    ),
    "rejected": (
        "記録できませんでした",
        "Could not be recorded",
        "この記録はサーバーで確認できませんでした(記録は市に保管されています)。事業者の管理者に連絡してください。",
        "The server could not verify this record (it is kept for the city). "
        "Please tell the operator's office.",
    ),
}


def rider_message(code: str, lang: str = "ja", *, title: str | None = None, **params: Any) -> str:
    """The sentence for a refusal: the terminal's own wording, else the API's title, else the code."""
    pair = RIDER_MESSAGES.get(code)
    if pair is None:
        return title or code
    text = pair[1] if lang == "en" else pair[0]
    try:
        return text.format(**params)
    except (KeyError, IndexError, ValueError):
        return text


def sync_explanation(status: str, lang: str = "ja") -> tuple[str, str] | None:
    """(heading, what to do) for a sync result the driver must read; None for accepted/duplicate."""
    entry = SYNC_EXPLANATIONS.get(status)
    if entry is None:
        return None
    return (entry[1], entry[3]) if lang == "en" else (entry[0], entry[2])
