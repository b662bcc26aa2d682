"""Signals other apps listen to, so references never imports them (DESIGN.md "Dependencies point one way")."""

from __future__ import annotations

from django.dispatch import Signal

# Sent inside the writing transaction whenever the material a customer approves
# for a scope (a quote's words, a case study, a logo) is added, changed or removed.
# Keyword arguments: organization, reference, scope, actor. The consent app
# voids a consent given to other wording and proposes a new request.
reference_material_changed = Signal()
