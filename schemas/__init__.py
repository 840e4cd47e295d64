"""Beckon's public contract as code: events in, rules, invitations and decisions out.

events       ClickEvent (one model per type), the hot-path parser, the DLQ reasons
rules        Rule, RulesFile, RuleSet and their loaders
invitations  Invitation and Decision, the worker's outputs, the suppression reasons
capacity     Capacity, a chat queue's capacity on ``beckon.capacity``
instants     epoch milliseconds <-> RFC 3339 text
templates    the ``{name|default}`` message template syntax
errors       the exception tree
generate     ``python -m schemas.generate`` writes the JSON Schema files in json/
"""

from schemas.capacity import Capacity, parse_capacity
from schemas.errors import (
    BeckonError,
    BrokerError,
    ConfigError,
    InvalidCapacity,
    InvalidEvent,
    InvalidInput,
    InvalidRules,
)
from schemas.events import (
    CLICK_EVENT,
    DLQ_REASONS,
    EVENT_TYPES,
    PAGE_EVENT_TYPES,
    ClickEvent,
    Custom,
    DeadLetterReason,
    ExitIntent,
    Identify,
    InvitationResponse,
    PageLeave,
    PagePing,
    PageView,
    Scroll,
    event_to_json,
    parse_event,
    validate_event,
)
from schemas.instants import format_instant, parse_instant
from schemas.invitations import (
    DECISION,
    INVITATION,
    SUPPRESSION_REASONS,
    Decision,
    Invitation,
    Suppression,
    decision_to_json,
    invitation_to_json,
    parse_decision,
    parse_invitation,
)
from schemas.rules import (
    EMPTY_RULES,
    CapacityNeed,
    Frequency,
    Location,
    Message,
    PredicateOps,
    Rule,
    RuleSet,
    RulesFile,
    Timeframe,
    Trigger,
    load_rules,
    load_rules_file,
    parse_rule_message,
    rule_to_json,
)
from schemas.templates import Placeholder, parse_template, render_template

__all__ = [
    "CLICK_EVENT",
    "DECISION",
    "DLQ_REASONS",
    "EMPTY_RULES",
    "EVENT_TYPES",
    "INVITATION",
    "PAGE_EVENT_TYPES",
    "SUPPRESSION_REASONS",
    "BeckonError",
    "BrokerError",
    "Capacity",
    "CapacityNeed",
    "ClickEvent",
    "ConfigError",
    "Custom",
    "DeadLetterReason",
    "Decision",
    "ExitIntent",
    "Frequency",
    "Identify",
    "InvalidCapacity",
    "InvalidEvent",
    "InvalidInput",
    "InvalidRules",
    "Invitation",
    "InvitationResponse",
    "Location",
    "Message",
    "PageLeave",
    "PagePing",
    "PageView",
    "Placeholder",
    "PredicateOps",
    "Rule",
    "RuleSet",
    "RulesFile",
    "Scroll",
    "Suppression",
    "Timeframe",
    "Trigger",
    "decision_to_json",
    "event_to_json",
    "format_instant",
    "invitation_to_json",
    "load_rules",
    "load_rules_file",
    "parse_capacity",
    "parse_decision",
    "parse_event",
    "parse_instant",
    "parse_invitation",
    "parse_rule_message",
    "parse_template",
    "render_template",
    "rule_to_json",
    "validate_event",
]
