"""The HTTP API: one blueprint per resource, each with routes.py and schemas.py."""

from __future__ import annotations

from flask_smorest import Api


def register_blueprints(api: Api) -> None:
    from voucher_api.api.applications.routes import blp as applications
    from voucher_api.api.audit.routes import blp as audit
    from voucher_api.api.auth.routes import blp as auth
    from voucher_api.api.entitlements.routes import blp as entitlements
    from voucher_api.api.health.routes import blp as health
    from voucher_api.api.identity.routes import blp as identity
    from voucher_api.api.mobile_office.routes import blp as mobile_office
    from voucher_api.api.operators.routes import blp as operators
    from voucher_api.api.programs.routes import blp as programs
    from voucher_api.api.reconciliation.routes import blp as reconciliation
    from voucher_api.api.reports.routes import blp as reports
    from voucher_api.api.resident_records.routes import blp as resident_records
    from voucher_api.api.residents.routes import blp as residents
    from voucher_api.api.rides.routes import blp as rides
    from voucher_api.api.settlement.routes import blp as settlement
    from voucher_api.api.slips.routes import blp as slips
    from voucher_api.api.terminals.routes import blp as terminals

    blueprints = [
        health,
        auth,
        identity,
        residents,
        programs,
        applications,
        entitlements,
        operators,
        terminals,
        rides,
        settlement,
        audit,
        mobile_office,
        slips,
        resident_records,
        reports,
        reconciliation,
    ]
    for blp in blueprints:
        api.register_blueprint(blp, url_prefix=f"/api/v1{blp.url_prefix or ''}")
