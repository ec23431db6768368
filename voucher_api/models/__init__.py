"""All tables of the system. Importing this package registers every model on `Base.metadata`."""

from voucher_api.models.audit import AuditEntry
from voucher_api.models.entitlements import (
    Entitlement,
    EntitlementStatus,
    EntitlementUnit,
    LedgerEntry,
    LedgerKind,
)
from voucher_api.models.idempotency import IdempotencyRecord
from voucher_api.models.identity import BindingMethod, BindingStatus, CardBinding, CardChallenge
from voucher_api.models.mobile_office import MobileRound, MobileStop, QueueTicket, StopStatus, TicketStatus
from voucher_api.models.municipality import District, Municipality, StaffRole, StaffUser
from voucher_api.models.offline import DriverShift, RecordStatus, TerminalRecord
from voucher_api.models.operators import Driver, Operator, Terminal, TerminalStatus, Vehicle
from voucher_api.models.programs import (
    Application,
    ApplicationChannel,
    ApplicationStatus,
    Program,
    ProgramExclusion,
)
from voucher_api.models.residents import Resident, ResidentStatus
from voucher_api.models.rides import Ride, RideStatus
from voucher_api.models.settlement import (
    OperatorResponse,
    RunStatus,
    SettlementRun,
    Statement,
    StatementAdjustment,
    StatementLine,
    StatementLineKind,
    StatementStatus,
)

__all__ = [
    "Application",
    "ApplicationChannel",
    "ApplicationStatus",
    "AuditEntry",
    "BindingMethod",
    "BindingStatus",
    "CardBinding",
    "CardChallenge",
    "District",
    "Driver",
    "DriverShift",
    "Entitlement",
    "EntitlementStatus",
    "EntitlementUnit",
    "IdempotencyRecord",
    "LedgerEntry",
    "LedgerKind",
    "MobileRound",
    "MobileStop",
    "Municipality",
    "Operator",
    "OperatorResponse",
    "Program",
    "ProgramExclusion",
    "QueueTicket",
    "RecordStatus",
    "Resident",
    "ResidentStatus",
    "Ride",
    "RideStatus",
    "RunStatus",
    "SettlementRun",
    "StaffRole",
    "StaffUser",
    "Statement",
    "StatementAdjustment",
    "StatementLine",
    "StatementLineKind",
    "StatementStatus",
    "StopStatus",
    "Terminal",
    "TerminalRecord",
    "TerminalStatus",
    "TicketStatus",
    "Vehicle",
]
