"""Pages of the references app, under /o/<slug>/references/."""

from __future__ import annotations

from .urls_access import urlpatterns as access_patterns
from .urls_catalogue import urlpatterns as catalogue_patterns
from .urls_manage import urlpatterns as manage_patterns
from .urls_review import urlpatterns as review_patterns

app_name = "references"
urlpatterns = [*catalogue_patterns, *manage_patterns, *access_patterns, *review_patterns]
