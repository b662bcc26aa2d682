from __future__ import annotations

from typing import Any

from django.apps import AppConfig


class ConsentConfig(AppConfig):
    name = "consent"
    verbose_name = "Consent"

    def ready(self) -> None:
        from references.signals import (
            reference_material_changed,
            reference_parties_changed,
            reference_publication_changed,
        )

        reference_material_changed.connect(_material_changed, dispatch_uid="consent.material_changed")
        reference_parties_changed.connect(_parties_changed, dispatch_uid="consent.parties_changed")
        reference_publication_changed.connect(_publication_changed, dispatch_uid="consent.publication_changed")

    def seed_demo(self, *, organization: Any, members: dict[str, Any], stdout: Any) -> None:
        """``manage.py seed_demo`` hook: months of consent history through the services (idempotent)."""
        from .demo import seed_consent

        counts = seed_consent(organization=organization, members=members)
        if counts:
            stdout.write("  + consent: " + ", ".join(f"{count} {name}" for name, count in sorted(counts.items())))


def _material_changed(*, organization: Any, reference: Any, scope: str, actor: Any, **_: Any) -> None:
    """New wording of a quote, case study or logo voids the consent given to the old one."""
    from .services import consent_material_changed

    consent_material_changed(organization=organization, reference=reference, scope=scope, actor=actor)


def _parties_changed(
    *, organization: Any, reference: Any, advocate_changed: bool, account_changed: bool, actor: Any, **_: Any
) -> None:
    """A new advocate or account voids the consent the previous ones gave."""
    from .services import consent_parties_changed

    consent_parties_changed(
        organization=organization,
        reference=reference,
        advocate_changed=advocate_changed,
        account_changed=account_changed,
        actor=actor,
    )


def _publication_changed(*, organization: Any, reference: Any, actor: Any, **_: Any) -> None:
    """A manager may narrow how a reference is published, never widen it past the customers' choice."""
    from .services import consent_publication_check

    consent_publication_check(organization=organization, reference=reference)
