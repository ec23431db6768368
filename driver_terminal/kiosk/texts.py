"""Every word on the kiosk's screens, Japanese first and English for the switch.

Short, concrete sentences: the driver is often elderly and reads them at a glance; the rider may be read
the refusal sentences aloud (those live in driver_terminal.messages).
"""

from __future__ import annotations

from typing import Final

TEXTS: Final[dict[str, tuple[str, str]]] = {
    "title": ("タクシー利用券 車載端末", "Taxi voucher terminal"),
    "lang_switch": ("English", "日本語"),
    "online": ("通信: 接続中", "Online"),
    "offline": ("通信: 圏外(記録は端末に保存)", "Offline (records kept on the terminal)"),
    "pending_count": ("未送信 {n}件", "{n} waiting to send"),
    "attention_count": ("確認が必要 {n}件", "{n} to check"),
    "ok": ("OK", "OK"),
    "back": ("もどる", "Back"),
    "cancel": ("やめる", "Cancel"),
    "delete": ("訂正", "Delete"),
    "enter": ("決定", "Enter"),
    "checking": ("確認しています…", "Checking…"),
    # set-up
    "setup_heading": ("端末の登録", "Set up this terminal"),
    "setup_help": (
        "事業者の管理画面に表示された登録コードを入力してください。",
        "Enter the one-time code shown in the operator's admin page.",
    ),
    "setup_code": ("登録コード", "Enrolment code"),
    "setup_button": ("この端末を登録する", "Enrol this terminal"),
    "setup_done": ("登録しました(端末番号 {terminal_id})", "Enrolled (terminal {terminal_id})"),
    # shift
    "signin_heading": ("乗務開始", "Start of shift"),
    "signin_help": ("運転者コードを入力してください。", "Enter your driver code."),
    "signin_again": ("{name} さんで乗務を始める", "Start as {name}"),
    "signin_button": ("乗務を始める", "Start shift"),
    "signin_offline": (
        "圏外のため、乗務開始は通信が戻ってから送ります。",
        "Offline: the start of the shift is sent when the connection is back.",
    ),
    "signout_button": ("乗務終了", "End shift"),
    "signout_heading": ("乗務を終了しますか", "End the shift?"),
    "signout_confirm": ("乗務を終了する", "End shift"),
    "signout_done": ("おつかれさまでした", "Thank you"),
    "signout_summary": ("この乗務の乗車: {rides}件", "Rides in this shift: {rides}"),
    "signout_pending": (
        "未送信の記録 {n}件は、通信が戻ると自動で送信します。電源は切ってかまいません。",
        "{n} records wait to be sent; they go automatically when the connection is back. You may switch off.",
    ),
    "driver": ("運転者", "Driver"),
    # waiting for a card
    "hold_card": ("カードをかざしてください", "Please hold the card to the reader"),
    "hold_card_help": (
        "マイナンバーカードを読み取り部に置いてください。",
        "Place the My Number card on the reader.",
    ),
    "shared_on": ("相乗り受付中(まとめて降車できます)", "Shared ride: boarding several riders"),
    "shared_start": ("相乗り", "Shared ride"),
    "shared_end": ("相乗り終了", "End shared ride"),
    "on_board": ("乗車中のお客様", "Riders on board"),
    "nobody": ("乗車中のお客様はいません", "Nobody on board"),
    "alight": ("降車・料金", "Alight / fare"),
    "alight_trip": ("相乗りの降車・料金", "Shared ride fare"),
    "void_button": ("乗車取消", "Void a ride"),
    "sync_button": ("送信状況", "Sending"),
    # PIN
    "pin_heading": ("暗証番号の入力", "PIN"),
    "pin_help": (
        "お客様に、数字4桁の暗証番号を押していただいてください。",
        "Please ask the rider to enter the 4-digit PIN.",
    ),
    # boarding result
    "boarded_confirmed": ("乗車を受け付けました", "Boarding accepted"),
    "boarded_pending": ("仮受付しました(未送信)", "Accepted offline (pending)"),
    "boarded_already": ("すでに乗車中です", "Already on board"),
    "chip_confirmed": ("確定", "Confirmed"),
    "chip_pending": ("未送信・仮", "Pending"),
    "pending_help": (
        "圏外のため端末に保存しました。通信が戻ると自動で送信します。",
        "Kept on the terminal while offline; sent automatically when the connection is back.",
    ),
    "check_face": ("お顔とお名前・年代をご確認ください", "Check the rider's name and age band"),
    "name_suffix": ("様", ""),
    "age_band": ("年代", "Age band"),
    "program": ("制度", "Program"),
    "balance": ("残り", "Remaining"),
    "balance_provisional": ("残り(仮)", "Remaining (provisional)"),
    # refusal
    "refused_heading": ("ご利用いただけません", "Cannot be used"),
    "refused_tell": ("お客様にお伝えください:", "Please tell the rider:"),
    "try_pin_again": ("もう一度入力する", "Enter the PIN again"),
    # fare
    "fare_heading": ("メーター料金を入力", "Enter the meter fare"),
    "fare_trip_help": (
        "相乗りの{n}人分の合計です。等分して一人ずつの料金にします。",
        "The total for the {n} riders of the shared ride; it is divided equally.",
    ),
    "yen": ("円", "yen"),
    "pay_heading": ("お客様のお支払い", "The rider pays"),
    "pay_each": ("お一人ずつのお支払い", "Each rider pays"),
    "meter": ("メーター料金", "Meter fare"),
    "subsidy": ("助成", "Subsidy"),
    "pay_provisional": (
        "圏外のため仮の金額です。通信が戻ると確定します。",
        "Provisional while offline; confirmed when the connection is back.",
    ),
    "pay_unknown": (
        "圏外のため金額を計算できません。メーター料金どおりお受け取りください。",
        "Offline: the split cannot be computed. Collect the meter fare.",
    ),
    # void
    "void_heading": ("取り消す乗車を選んでください", "Choose the ride to void"),
    "void_none": ("取り消せる乗車はありません", "No ride can be voided now"),
    "void_reason_heading": ("取り消す理由", "Reason"),
    "void_reason_mistake": ("まちがえて受け付けた", "Accepted by mistake"),
    "void_reason_rider": ("お客様が乗車をやめた", "The rider did not travel"),
    "void_reason_other": ("その他", "Other"),
    "voided": ("取り消しました", "Voided"),
    # sync
    "sync_heading": ("送信状況", "Sending"),
    "sync_pending": ("未送信の記録: {n}件", "Records waiting to be sent: {n}"),
    "sync_last": ("最後の送信: {at}", "Last sent: {at}"),
    "sync_never": ("まだ送信していません", "Nothing sent yet"),
    "sync_now": ("今すぐ送信", "Send now"),
    "sync_snapshot": ("車内確認用データ: {until} まで有効", "Offline data valid until {until}"),
    "sync_snapshot_none": ("車内確認用データ: なし", "Offline data: none"),
    "attention_heading": ("確認が必要な記録", "Records to check"),
    "attention_none": ("確認が必要な記録はありません", "Nothing to check"),
    "attention_ack": ("確認しました", "I have read this"),
    "attention_ride": ("{time} 乗車 {name}", "{time} boarding {name}"),
    "sequence": ("通し番号", "No."),
}


def text(key: str, lang: str = "ja", **params: object) -> str:
    """One text in the language, with its parameters filled in."""
    ja, en = TEXTS[key]
    chosen = en if lang == "en" else ja
    return chosen.format(**params) if params else chosen


def catalogue(lang: str) -> dict[str, str]:
    """All texts in one language, for the page's script."""
    return {key: (en if lang == "en" else ja) for key, (ja, en) in TEXTS.items()}
