"""Logging filters: secrets that travel in URLs never reach the logs."""

from __future__ import annotations

import logging
import re

# /consent/<token>/…: the token is the customer's credential (consent.selectors).
CONSENT_TOKEN_IN_PATH = re.compile(r"(/consent/)[^/\s?\"']+")


class RedactConsentTokens(logging.Filter):
    """Replace the token in any logged consent-page path (Django's "Bad Request: /consent/…" lines)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return True
        redacted = CONSENT_TOKEN_IN_PATH.sub(r"\1[token]", message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True
