"""Signals other apps listen to, so references never imports them (DESIGN.md "Dependencies point one way")."""

from __future__ import annotations

from django.dispatch import Signal

# Sent inside the writing transaction whenever the material a customer approves
# for a scope (a quote's words, a case study, a logo) is added, changed or removed.
# Keyword arguments: organization, reference, scope, actor. The consent app
# voids a consent given to other wording and proposes a new request.
reference_material_changed = Signal()

# Sent inside the writing transaction when a reference's advocate or account changes.
# Keyword arguments: organization, reference, advocate_changed, account_changed, actor.
# Consent given by the previous person, or for the previous company, is voided.
reference_parties_changed = Signal()

# Sent inside the writing transaction when a manager changes how a reference may be
# published. Keyword arguments: organization, reference, actor. Consent refuses a
# publication wider than the customers agreed to (ApplicationError on "publication").
reference_publication_changed = Signal()
