"""Every word the staff pages and the display show, in Japanese (default) and English.

The pages get the current language's table twice: in the templates (`t[key]`) and, as JSON, in the
scripts. Card troubles are explained in plain words with what to do next, never as an error code.
"""

from __future__ import annotations

from typing import Final

LANGUAGES: Final = ("ja", "en")

TEXT: Final[dict[str, tuple[str, str]]] = {
    # --- frame ---
    "app.title": ("タクシー助成 窓口", "Taxi subsidy counter"),
    "nav.queue": ("受付待ち", "Queue"),
    "nav.apply": ("申請受付", "Application"),
    "nav.residents": ("住民照会", "Residents"),
    "nav.mobile": ("移動市役所", "Mobile office"),
    "nav.sign_out": ("サインアウト", "Sign out"),
    "nav.main": ("メインメニュー", "Main menu"),
    "lang.switch": ("English", "日本語"),
    "lang.switch_label": ("Switch to English", "日本語に切り替え"),
    "skip": ("本文へ移動", "Skip to content"),
    "outbox.pending": (
        "送信待ち {n}件(電波が戻ると自動で送ります)",
        "{n} waiting to be sent (sent when back online)",
    ),
    "outbox.sent": ("送信待ちの申請を送りました", "Waiting items were sent"),
    "network.offline": (
        "通信できません。申請は端末に保存し、電波が戻ったら自動で送ります。",
        "No network. The application is kept and sent when the network is back.",
    ),
    "loading": ("読み込み中…", "Loading…"),
    "error.generic": (
        "うまくいきませんでした。もう一度お試しください。",
        "Something went wrong. Please try again.",
    ),
    "yes": ("はい", "Yes"),
    "no": ("いいえ", "No"),
    "back": ("戻る", "Back"),
    "cancel": ("やめる", "Cancel"),
    # --- sign-in ---
    "signin.title": ("職員サインイン", "Staff sign-in"),
    "signin.username": ("ユーザー名", "Username"),
    "signin.password": ("パスワード", "Password"),
    "signin.submit": ("サインイン", "Sign in"),
    "signin.expired": (
        "サインインの有効期限が切れました。もう一度サインインしてください。",
        "Please sign in again.",
    ),
    # --- queue ---
    "queue.title": ("本日の受付", "Today's queue"),
    "queue.place": ("受付場所", "Where"),
    "queue.counter": ("市役所 窓口", "City-hall counter"),
    "queue.no_stop": (
        "本日受付中の移動市役所はありません。市役所窓口として受け付けます。",
        "No mobile-office stop is open today; applications are taken as the city-hall counter.",
    ),
    "queue.stops_today": ("本日の停車場所", "Today's stops"),
    "queue.waiting": ("お待ちの方", "Waiting"),
    "queue.people": ("{n}人", "{n}"),
    "queue.calling": ("呼び出し中", "Now calling"),
    "queue.wait": ("待ち時間の目安", "Estimated wait"),
    "queue.minutes": ("約{n}分", "about {n} min"),
    "queue.issue": ("番号札を渡す", "Hand out a number"),
    "queue.issued": ("{n}番の番号札をお渡しください", "Hand out number {n}"),
    "queue.call_next": ("次の方を呼ぶ", "Call the next person"),
    "queue.nobody": ("お待ちの方はいません", "Nobody is waiting"),
    "queue.start": ("申請受付を始める", "Start an application"),
    "queue.display": ("待ち状況の表示画面を開く", "Open the residents' display"),
    "queue.select": ("この場所で受け付ける", "Take applications here"),
    "queue.number": ("{n}番", "No. {n}"),
    "queue.open": ("受付中", "Open"),
    "queue.planned": ("受付前", "Not yet open"),
    "queue.closed": ("受付終了", "Closed"),
    "queue.closed_note": (
        "受付は終了しました。番号札をお持ちの方はそのままお待ちください。",
        "Closed. People holding a number are still served.",
    ),
    # --- application flow ---
    "apply.title": ("申請受付", "Application"),
    "apply.ticket": ("番号札 {n}番の方", "Number {n}"),
    "apply.step.card": ("カード", "Card"),
    "apply.step.pin": ("暗証番号", "PIN"),
    "apply.step.password": ("パスワード", "Password"),
    "apply.step.resident": ("申請内容", "Details"),
    "apply.step.done": ("交付", "Granted"),
    "apply.steps": ("手続きの進み具合", "Progress"),
    "card.place": (
        "マイナンバーカードをカードリーダーに置いてください",
        "Please place the My Number card on the card reader",
    ),
    "card.waiting": ("カードを待っています…", "Waiting for the card…"),
    "card.mock": ("模擬カード(デモ用)をリーダーに置く", "Place a mock card (demo)"),
    "card.no_card_help": (
        "顔認証マイナンバーカードの方・パスワードを忘れた方",
        "Face-recognition card, or forgotten password",
    ),
    "pin.title": ("暗証番号の入力", "Enter the PIN"),
    "pin.prompt": (
        "ご本人が、利用者証明用の暗証番号(数字4桁)を入力してください",
        "The cardholder enters the user PIN (4 digits)",
    ),
    "pin.entered": ("{n}桁入力しました", "{n} digits entered"),
    "pin.tries": ("あと{n}回まちがえるとロックされます", "{n} tries left before it locks"),
    "pad.label": ("暗証番号の入力ボタン", "PIN pad"),
    "pad.keyboard": ("パスワードの入力ボタン", "Password keyboard"),
    "pad.delete": ("1文字消す", "Delete"),
    "pad.clear": ("全部消す", "Clear"),
    "pad.ok": ("決定", "OK"),
    "pad.entry": ("入力した文字(伏せ字)", "What was entered (hidden)"),
    "password.title": ("署名用パスワードの入力", "Enter the signature password"),
    "password.prompt": (
        "ご本人が、署名用電子証明書のパスワード(英大文字と数字 6〜16文字)を入力してください",
        "The cardholder enters the signature password (6-16 capital letters and digits)",
    ),
    "password.forgot": ("パスワードを忘れた", "Forgot the password"),
    "checking": ("カードを確認しています…", "Checking the card…"),
    "resident.title": (
        "申請内容(カードと住民票から自動入力)",
        "Application (filled from the card and registry)",
    ),
    "resident.name": ("氏名", "Name"),
    "resident.kana": ("ふりがな", "Kana"),
    "resident.birth": ("生年月日", "Date of birth"),
    "resident.age": ("{n}歳", "{n} years"),
    "resident.sex": ("性別", "Sex"),
    "resident.address": ("住所", "Address"),
    "resident.district": ("地区", "District"),
    "resident.licence": ("運転免許", "Driving licence"),
    "resident.disability": ("障害者手帳", "Disability certificate"),
    "resident.identity": ("本人確認", "Identity check"),
    "resident.place": ("受付場所", "Taken at"),
    "sex.female": ("女性", "Female"),
    "sex.male": ("男性", "Male"),
    "licence.none": ("なし", "None"),
    "licence.held": ("あり", "Held"),
    "licence.returned": ("返納済み", "Returned"),
    "disability.none": ("なし", "None"),
    "disability.physical": ("身体障害者手帳", "Physical disability certificate"),
    "disability.intellectual": ("療育手帳", "Intellectual disability certificate"),
    "disability.mental": ("精神障害者保健福祉手帳", "Mental disability certificate"),
    "disability.grade": ("{kind} {grade}級", "{kind}, grade {grade}"),
    "identity.signature_certificate": (
        "マイナンバーカード(署名用電子証明書と暗証番号)",
        "My Number card (signature certificate and PIN)",
    ),
    "identity.staff_attested": ("職員による本人確認", "Checked in person by staff"),
    "identity.pin_signature": ("マイナンバーカード(暗証番号)", "My Number card (PIN)"),
    "eligibility.title": ("制度ごとの判定", "Eligibility for each program"),
    "eligibility.yes": ("対象です", "Eligible"),
    "eligibility.no": ("対象外です", "Not eligible"),
    "eligibility.entitled": ("交付済みです", "Already granted"),
    "eligibility.met": ("満たしています", "met"),
    "eligibility.unmet": ("満たしていません", "not met"),
    "grant.button": ("{name} を交付する", "Grant {name}"),
    "grant.sending": ("送信しています…", "Sending…"),
    "grant.pending": (
        "通信できないため、この申請は送信待ちです。電波が戻ったら自動で送り、交付通知を印刷します。",
        "No network: this application waits and is sent when the network is back; the slip prints then.",
    ),
    "already.enrolled": (
        "このカードは登録済みです。交付済みの制度は下のとおりです。",
        "This card is already registered. Programs already granted are shown below.",
    ),
    "done.title": ("交付しました", "Granted"),
    "done.summary": ("{name} 様 ・ {program}: {amount}", "{name}: {program}, {amount}"),
    "done.valid": ("使える期間 {from} 〜 {to}", "Valid {from} to {to}"),
    "done.print": ("交付通知をもう一度印刷する", "Print the slip again"),
    "done.printing": ("交付通知を印刷しています", "Printing the hand-over slip"),
    "done.next": ("次の方へ", "Next person"),
    "done.rejected": ("今回は対象外でした", "Not eligible this time"),
    "unit.ride": ("{n}回分", "{n} rides"),
    "unit.ticket": ("利用券 {n}枚", "{n} tickets"),
    "unit.yen": ("{n}円分", "¥{n}"),
    "restart": ("最初からやり直す", "Start over"),
    # --- attested path ---
    "attested.title": ("職員による本人確認", "Identity check by staff"),
    "attested.face_recognition_card": (
        "顔認証マイナンバーカードです。暗証番号がないため、職員が顔写真とご本人を見比べて確認します。",
        "A face-recognition card: no PIN. Staff compare the photo with the person.",
    ),
    "attested.forgotten_password": (
        "パスワードを忘れた方は、職員が顔写真とご本人を見比べて確認します。",
        "Forgotten password: staff compare the card's photo with the person.",
    ),
    "attested.password_locked": (
        "署名用パスワードがロックされています。職員が顔写真とご本人を見比べて確認します"
        "(パスワードの再設定は市民課で行えます)。",
        "The signature password is locked. Staff check the person in person "
        "(the password can be reset at the citizens' desk).",
    ),
    "attested.search": ("住民票を検索", "Search the registry"),
    "attested.kana": ("ふりがな(カタカナ・ひらがな、姓から)", "Name in kana (family name first)"),
    "attested.birth": ("生年月日", "Date of birth"),
    "attested.find": ("検索する", "Search"),
    "attested.none": (
        "該当する方が見つかりません。ふりがなと生年月日を確かめてください。",
        "Nobody found. Check the kana and the date of birth.",
    ),
    "attested.choose": ("この方を選ぶ", "Choose"),
    "attested.confirm": (
        "カードの顔写真とご本人が同じ方であることを確認しました",
        "I checked the card's photo against the person",
    ),
    "attested.reason": ("理由", "Reason"),
    # --- PIN locked ---
    "locked.title": ("暗証番号がロックされています", "The PIN is locked"),
    "locked.guide": (
        "3回まちがえたため、暗証番号がロックされています。カードの顔写真でご本人と確認できたら、"
        "この場で新しい暗証番号を設定して解除できます。",
        "The PIN locked after three wrong tries. Once the photo matches the person, a new PIN can be "
        "set here to unlock it.",
    ),
    "locked.reset": ("暗証番号を再設定する", "Reset the PIN"),
    "locked.new": ("新しい暗証番号(数字4桁)を入力してください", "Enter a new PIN (4 digits)"),
    "locked.again": ("確認のため、もう一度入力してください", "Enter it again to confirm"),
    "locked.mismatch": (
        "1回目と2回目が違います。もう一度入力してください。",
        "The two entries differ. Try again.",
    ),
    "locked.done": (
        "暗証番号を再設定しました。新しい暗証番号で続けます。",
        "The PIN was reset. Continue with the new PIN.",
    ),
    # --- troubles (plain words, never a code) ---
    "trouble.title": ("手続きを続けられません", "Cannot continue"),
    "trouble.card.revoked": (
        "このカードの電子証明書は失効しています(紛失の届出や、住所・氏名の変更などによるもの)。"
        "市民課のマイナンバーカード窓口で電子証明書の再発行をご案内ください。",
        "This card's certificate has been revoked (reported lost, or a change of address or name). "
        "Please guide the person to the My Number card desk to have it reissued.",
    ),
    "trouble.card.expired": (
        "このカードの電子証明書は有効期限が切れています。市民課のマイナンバーカード窓口で更新をご案内ください。",
        "This card's certificate has expired. Please guide the person to the My Number card desk "
        "to renew it.",
    ),
    "trouble.card.unknown_issuer": (
        "このカードは確認できません。マイナンバーカードかどうか確かめてください。",
        "This card cannot be checked. Make sure it is a My Number card.",
    ),
    "trouble.card.revocation_unknown": (
        "カードの失効確認ができませんでした。少し時間をおいて、もう一度お試しください。",
        "The revocation check did not answer. Please try again in a moment.",
    ),
    "trouble.resident.not_found": (
        "カードの方が本市の住民基本台帳に見つかりません。転入の届出がお済みか確認してください"
        "(他の市町村にお住まいの方は対象外です)。",
        "The cardholder is not in this city's resident registry. Check that the move-in was registered "
        "(residents of other municipalities are not eligible).",
    ),
    "trouble.enrolment.facts_mismatch": (
        "カードの住所・氏名などが住民票と一致しません。住所変更後にカードの電子証明書を更新したか確認してください。",
        "The card's address or name differs from the registry. Check whether the card was updated after "
        "a change of address.",
    ),
    "trouble.resident.not_resident": (
        "この方は現在、本市の住民ではありません(転出・死亡など)。",
        "This person is no longer a resident of the city.",
    ),
    "trouble.card.bound_to_other": (
        "このカードは別の方の登録に使われています。カードの持ち主を確かめてください。",
        "This card is registered to someone else. Check who the card belongs to.",
    ),
    "trouble.card.already_bound": (
        "この方には別のカードが登録されています。カードを紛失・再発行した場合は、新しいカードに差し替えます"
        "(古いカードは使えなくなります)。",
        "Another card is registered to this person. If the card was lost and reissued, replace it with the "
        "new card (the old card stops working).",
    ),
    "trouble.rebind": ("新しいカードに差し替えて続ける", "Replace with the new card and continue"),
    "trouble.challenge.expired": (
        "時間がかかったため、確認が切れました。もう一度、暗証番号から入力してください。",
        "The check timed out. Please enter the PIN again.",
    ),
    "trouble.signature.invalid": (
        "カードの署名を確認できませんでした。カードを置き直して、もう一度お試しください。",
        "The card's signature could not be checked. Place the card again and retry.",
    ),
    "trouble.card.absent": (
        "カードがリーダーから外れました。カードをリーダーに置いて、もう一度お試しください。",
        "The card left the reader. Place it again and retry.",
    ),
    "trouble.card.error": (
        "カードを読み取れませんでした。カードを置き直して、もう一度お試しください。",
        "The card could not be read. Place it again and retry.",
    ),
    "trouble.reader.unavailable": (
        "カードリーダーにつながりません。リーダーの接続と、窓口端末のカード連携ソフトを確かめてください。",
        "The card reader cannot be reached. Check the reader and the card agent on this PC.",
    ),
    "trouble.application.identity_required": (
        "本人確認がまだです。カードで確認するか、職員による本人確認を行ってください。",
        "No identity check yet. Use the card or a staff check.",
    ),
    "trouble.auth.forbidden": ("この操作の権限がありません。", "You are not allowed to do this."),
    "trouble.generic": (
        "手続きを続けられませんでした。最初からやり直すか、担当者に相談してください。",
        "The procedure could not continue. Start over or ask a colleague.",
    ),
    "trouble.attested": ("職員による本人確認で手続きする", "Continue with a staff identity check"),
    # --- resident look-up ---
    "residents.title": ("住民照会", "Resident look-up"),
    "residents.entitlements": ("利用資格と残り", "Entitlements and balances"),
    "residents.rides": ("乗車の記録", "Ride history"),
    "residents.bindings": ("登録カード", "Registered cards"),
    "residents.applications": ("申請の記録", "Applications"),
    "residents.none": ("ありません", "None"),
    "residents.program": ("制度", "Program"),
    "residents.balance": ("残り", "Balance"),
    "residents.granted": ("交付", "Granted"),
    "residents.status": ("状態", "Status"),
    "residents.valid": ("期間", "Valid"),
    "residents.actions": ("操作", "Actions"),
    "residents.suspend": ("停止する", "Suspend"),
    "residents.resume": ("再開する", "Resume"),
    "residents.end": ("終了する", "End"),
    "residents.reason": ("理由", "Reason"),
    "residents.reason_other": ("その他の理由(入力)", "Other reason (type)"),
    "residents.confirm": ("この理由で実行する", "Do it with this reason"),
    "residents.changed": ("状態を変更しました(記録されます)", "Status changed (audited)"),
    "residents.boarded": ("乗車日時", "Boarded"),
    "residents.operator": ("事業者", "Operator"),
    "residents.fare": ("運賃", "Fare"),
    "residents.subsidy": ("助成", "Subsidy"),
    "residents.paid": ("本人負担", "Paid"),
    "residents.card_serial": ("証明書番号", "Certificate serial"),
    "residents.method": ("確認方法", "Method"),
    "residents.bound_at": ("登録日", "Registered"),
    "residents.decided": ("受付日", "Decided"),
    "residents.slip": ("交付通知を印刷", "Print slip"),
    "reason.moved_out": ("転出のため", "Moved out"),
    "reason.deceased": ("死亡のため", "Deceased"),
    "reason.request": ("本人の申し出", "At the person's request"),
    "reason.misuse": ("不正利用の疑い(調査中)", "Suspected misuse (under review)"),
    "reason.hospital": ("長期入院のため", "Long hospital stay"),
    "status.active": ("利用中", "Active"),
    "status.suspended": ("停止中", "Suspended"),
    "status.ended": ("終了", "Ended"),
    "status.expired": ("期限切れ", "Expired"),
    "status.replaced": ("差し替え済み", "Replaced"),
    "status.boarded": ("乗車中", "On board"),
    "status.completed": ("完了", "Completed"),
    "status.voided": ("取消", "Voided"),
    "status.approved": ("交付", "Approved"),
    "status.rejected": ("対象外", "Rejected"),
    "channel.counter": ("市役所窓口", "City-hall counter"),
    "channel.mobile_office": ("移動市役所", "Mobile office"),
    "channel.online": ("オンライン", "Online"),
    # --- mobile office ---
    "mobile.title": ("移動市役所 ルートと停車場所", "Mobile office: route and stops"),
    "mobile.rounds": ("巡回ルート", "Rounds"),
    "mobile.new_round": ("新しい巡回ルート", "New round"),
    "mobile.round_name": ("ルートの名前", "Round name"),
    "mobile.create": ("作成する", "Create"),
    "mobile.stops": ("停車場所", "Stops"),
    "mobile.add_stop": ("停車場所を追加", "Add a stop"),
    "mobile.place": ("場所", "Place"),
    "mobile.district": ("地区", "District"),
    "mobile.date": ("日付", "Date"),
    "mobile.start": ("開始時刻", "Starts"),
    "mobile.end": ("終了時刻", "Ends"),
    "mobile.window": ("時間", "Time"),
    "mobile.add": ("追加する", "Add"),
    "mobile.open": ("受付を始める", "Open"),
    "mobile.close": ("受付を終える", "Close"),
    "mobile.figures": ("集計を見る", "Figures"),
    "mobile.display": ("表示画面", "Display"),
    "mobile.none": ("巡回ルートはまだありません", "No rounds yet"),
    "figures.title": ("移動市役所の集計", "Mobile office figures"),
    "figures.by_stop": ("停車場所ごと", "By stop"),
    "figures.by_district": ("地区ごと", "By district"),
    "figures.total": ("合計", "Total"),
    "figures.tickets": ("番号札", "Numbers"),
    "figures.served": ("対応済み", "Served"),
    "figures.applications": ("申請", "Applications"),
    "figures.approved": ("交付", "Granted"),
    "figures.rejected": ("対象外", "Not eligible"),
    "figures.residents": ("申請者数", "Applicants"),
    "figures.minutes": ("1人あたり(分)", "Minutes per person"),
    # --- residents' display ---
    "display.calling": ("ただいまの番号", "Now serving"),
    "display.waiting": ("お待ちの方", "Waiting"),
    "display.wait": ("待ち時間の目安", "Estimated wait"),
    "display.none": ("ー", "-"),
    "display.note": (
        "番号札をお持ちになって、お近くでお待ちください。番号をお呼びします。",
        "Keep your number and wait nearby; we will call it.",
    ),
    "display.closed": (
        "本日の受付は終了しました。番号札をお持ちの方はお待ちください。",
        "Closed for today. People holding a number will be served.",
    ),
}


def texts(lang: str) -> dict[str, str]:
    """The table for one language (Japanese unless `lang` is "en")."""
    index = 1 if lang == "en" else 0
    return {key: pair[index] for key, pair in TEXT.items()}
