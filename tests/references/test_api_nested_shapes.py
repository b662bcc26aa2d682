"""The references API builds its nested account and advocate objects by hand (issue 6, speed):
they must keep exactly the fields of the serializers the schema documents them with."""

from __future__ import annotations

from references.api.serializers import AccountBriefSerializer, AdvocateSerializer, ReferenceOutputSerializer
from references.models import Account, Contact, Publication, Reference


def _reference(publication: str) -> Reference:
    account = Account(pk=7, name="Fjord Freight", industry="Logistics", region="Nordics", size_band="")
    advocate = Contact(pk=9, name="Ada", title="CIO", email="ada@example.com", phone="+47 1")
    return Reference(pk=3, account=account, advocate=advocate, publication=publication)


def test_account_has_the_brief_serializers_fields_and_values() -> None:
    reference = _reference(Publication.ATTRIBUTED)
    shown = ReferenceOutputSerializer(context={}).get_account(reference)
    assert shown == dict(AccountBriefSerializer(reference.account).data)


def test_anonymised_account_hides_identity_only() -> None:
    reference = _reference(Publication.ANONYMISED)
    shown = ReferenceOutputSerializer(context={}).get_account(reference)
    assert set(shown) == set(AccountBriefSerializer().fields)
    assert (shown["id"], shown["name"], shown["industry"]) == (None, None, "Logistics")
    revealed = ReferenceOutputSerializer(context={"reveal_account": True}).get_account(reference)
    assert revealed["name"] == "Fjord Freight"


def test_advocate_has_the_advocate_serializers_fields_and_values() -> None:
    reference = _reference(Publication.ATTRIBUTED)
    shown = ReferenceOutputSerializer(context={"all_contact_details": True}).get_advocate(reference)
    assert shown == dict(AdvocateSerializer(reference.advocate).data)
    assert ReferenceOutputSerializer(context={}).get_advocate(reference) is None
