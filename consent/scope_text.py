"""Each use explained in plain words for the customer: what it means and who sees it.

Kept here, beside the consent page, rather than in references' ``Scope``
labels: these sentences are part of the notice the customer agrees to, so
they belong with the consent app and its translations.
"""

from __future__ import annotations

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from references.models import Scope

SCOPE_EXPLANATIONS: dict[str, Promise] = {
    Scope.CALL: _(
        "A prospective customer may phone you to hear about your experience; "
        "we always ask you before passing on your contact details."
    ),
    Scope.QUOTE: _(
        "The words shown below, exactly as written, may appear in our sales material "
        "and on our website, where anyone can read them."
    ),
    Scope.LOGO: _(
        "Your company's logo may appear on our website and in presentations, "
        "where anyone can see it. Your company gives this, through someone who may sign for it."
    ),
    Scope.CASE_STUDY: _(
        "The story shown below, exactly as written, may be published on our website "
        "and shared with prospective customers."
    ),
    Scope.SITE_VISIT: _(
        "A prospective customer may visit you, by appointment you agree to, to see how you use our product."
    ),
    Scope.VIDEO: _("A recorded video of you talking about your experience may be shown on our website and at events."),
    Scope.NAME_IN_LIST: _(
        "Your company's name may appear in lists of our customers, on our website and in presentations. "
        "Your company gives this, through someone who may sign for it."
    ),
}


def scope_explanation(scope: str) -> str:
    """The plain-words sentence for ``scope`` (empty for an unknown one)."""
    text = SCOPE_EXPLANATIONS.get(scope)
    return str(text) if text is not None else ""
